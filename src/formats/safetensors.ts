// One safetensors file, mapped and validated: 8-byte little-endian header length N, N bytes of
// JSON { name: { dtype, shape, data_offsets: [begin, end] }, __metadata__?: {...} }, then the
// data region, with offsets relative to its start. Every check that makes a later raw-address
// read safe happens here, once, so the backends can trust `addr` and `bytes` blindly.

import type { BnbDType, DType, FloatDType } from "../backend/backend.ts";
import { DTYPE_BYTES, tensorBytes } from "../backend/backend.ts";
import { ModelFormatError } from "../errors.ts";
import { own, quote, show } from "../util/validate.ts";
import { mapTensorFile, MappedTensorFile } from "./mapped-tensor-file.ts";
import type { MappedFile } from "./mmap.ts";

/** A tensor inside a mapped file; `addr` is an absolute host address valid until `close()`. */
export interface TensorInfo {
  readonly name: string;
  readonly dtype: DType;
  readonly shape: readonly number[];
  /** Host address of the first byte of the tensor's data in the mapping. */
  readonly addr: number;
  readonly bytes: number;
  /** The file holding the tensor and the tensor's byte offset from the start of that file. */
  readonly file: string;
  readonly fileOffset: number;
}

/** safetensors dtype names we compute with, and the DType each becomes (also read by the hub's fit check). */
export const SUPPORTED: Record<string, FloatDType> = { F32: "f32", F16: "f16", BF16: "bf16" };

// The other dtypes of the safetensors spec: named "unsupported" rather than "unknown" in errors, so a
// user can tell a quantized or integer checkpoint from a corrupt header.
const KNOWN_UNSUPPORTED = ["F64", "I64", "U64", "I32", "U32", "I16", "U16", "I8", "U8", "BOOL", "F8_E4M3", "F8_E5M2", "F8_E8M0", "F6_E2M3", "F6_E3M2", "F4"];

/** Keys of a compressed split's `__metadata__`: a U8 tensor `name` holds `airllm.dtype.<name>`
 *  (nf4 / q8_block) weights of logical shape `airllm.shape.<name>` (a JSON list). */
export const COMPRESSED_DTYPE_KEY = "airllm.dtype.";
export const COMPRESSED_SHAPE_KEY = "airllm.shape.";
const COMPRESSED: readonly BnbDType[] = ["nf4", "q8_block"];

/** The logical dtype and shape of a compressed U8 tensor, or undefined when it is not one. */
function compressedOf(path: string, name: string, meta: Record<string, unknown>): { dtype: BnbDType; shape: number[] } | undefined {
  const dt = own(meta, COMPRESSED_DTYPE_KEY + name);
  if (dt === undefined) return undefined;
  if (typeof dt !== "string" || !(COMPRESSED as readonly string[]).includes(dt)) {
    fail(path, `tensor ${quote(name)}: __metadata__ names unknown compressed dtype ${show(dt)}; known: ${COMPRESSED.join(", ")}`);
  }
  let shape: unknown;
  try {
    shape = JSON.parse(String(own(meta, COMPRESSED_SHAPE_KEY + name)));
  } catch {
    shape = undefined;
  }
  if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    fail(path, `tensor ${quote(name)}: __metadata__ ${quote(COMPRESSED_SHAPE_KEY + name)} must be a JSON list of non-negative integers`);
  }
  return { dtype: dt as BnbDType, shape: shape as number[] };
}

/** Bytes of an 8-bit tensor as airllm wrote it before the linear map: blocks of 2048 weights,
 *  each an f32 absmax and 2048 codes; a short last block keeps its absmax and its own codes. */
function legacyQ8BlockBytes(shape: readonly number[]): number {
  const n = shape.reduce((a, d) => a * d, 1);
  const rem = n % 2048;
  return Math.floor(n / 2048) * 2052 + (rem === 0 ? 0 : 4 + rem);
}

/** Same limit as the reference Rust implementation: a bigger header is corruption, not a model. */
const MAX_HEADER_BYTES = 100_000_000;

const HINT_CORRUPT = "The file is truncated or corrupt; download or convert it again.";

function fail(path: string, what: string, hint = HINT_CORRUPT): never {
  throw new ModelFormatError(`safetensors ${quote(path, 200)}: ${what}`, hint);
}

/** Parse and validate the header of the mapped `file`; returns tensors in data order. */
function parseHeader(path: string, map: MappedFile): { tensors: TensorInfo[]; dataStart: number } {
  const size = map.length;
  if (size < 8) fail(path, `file is ${size} bytes, shorter than the 8-byte header length`);
  const n = new DataView(map.view(0, 8)).getBigUint64(0, true);
  if (n > BigInt(size - 8)) {
    fail(path, `header length ${n} runs past the end of the file (${size} bytes, at most ${size - 8} available for the header)`);
  }
  const headerBytes = Number(n);
  if (headerBytes > MAX_HEADER_BYTES) fail(path, `header length ${headerBytes} exceeds ${MAX_HEADER_BYTES} bytes`);
  const dataStart = 8 + headerBytes;
  const dataBytes = size - dataStart;

  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(map.view(8, headerBytes)));
  } catch (e) {
    fail(path, `header is not valid UTF-8 JSON (${(e as Error).message})`);
  }
  if (header === null || typeof header !== "object" || Array.isArray(header)) fail(path, "header is not a JSON object");

  const rawMeta = Object.hasOwn(header as object, "__metadata__") ? (header as Record<string, unknown>).__metadata__ : undefined;
  const meta = rawMeta !== null && typeof rawMeta === "object" ? (rawMeta as Record<string, unknown>) : {};
  const tensors: TensorInfo[] = [];
  for (const [name, raw] of Object.entries(header as Record<string, unknown>)) {
    if (name === "__metadata__") continue;
    const where = `tensor ${quote(name)}`;
    if (raw === null || typeof raw !== "object") fail(path, `${where}: entry is not an object`);
    const { dtype: dt, shape, data_offsets: offsets } = raw as Record<string, unknown>;

    if (typeof dt !== "string") fail(path, `${where}: "dtype" must be a string, got ${show(dt)}`);
    const compressed = dt === "U8" ? compressedOf(path, name, meta) : undefined;
    const dtype: DType | undefined = compressed?.dtype ?? own(SUPPORTED, dt);
    if (dtype === undefined) {
      const kind = KNOWN_UNSUPPORTED.includes(dt) ? "unsupported" : "unknown";
      fail(
        path,
        `${where} has ${kind} dtype ${kind === "unknown" ? quote(dt) : dt}; supported: ${Object.keys(SUPPORTED).join(", ")}`,
        "Convert the checkpoint to float32, float16 or bfloat16 weights (e.g. load and re-save it with transformers).",
      );
    }
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      fail(path, `${where}: "shape" must be a list of non-negative integers, got ${show(shape)}`);
    }
    if (
      !Array.isArray(offsets) ||
      offsets.length !== 2 ||
      !offsets.every((o) => Number.isSafeInteger(o) && o >= 0)
    ) {
      fail(path, `${where}: "data_offsets" must be [begin, end] non-negative integers, got ${show(offsets)}`);
    }
    const [begin, end] = offsets as [number, number];
    if (end < begin) fail(path, `${where}: data_offsets [${begin}, ${end}] end before begin`);
    if (end > dataBytes) {
      fail(path, `${where}: data_offsets [${begin}, ${end}] run past the data region (${dataBytes} bytes after the ${headerBytes}-byte header)`);
    }
    const logical = compressed?.shape ?? (shape as number[]);
    const expected = compressed !== undefined ? tensorBytes(compressed.dtype, logical) : logical.reduce((a, d) => a * d, 1) * DTYPE_BYTES[dtype as FloatDType];
    // A product of safe dims can still overflow: then no file could hold it.
    if (!Number.isSafeInteger(expected)) fail(path, `${where}: shape [${logical.join(", ")}] has more elements than any file holds`);
    if (compressed?.dtype === "q8_block" && end - begin === legacyQ8BlockBytes(logical) && end - begin !== expected) {
      fail(
        path,
        `${where}: 8-bit weights in the earlier layout (blocks of 2048, dynamic map), which this version no longer reads`,
        "delete this splitted_model.8bit folder; airllm run --compression 8bit (or airllm split) makes it again from the original weights",
      );
    }
    if (end - begin !== expected) {
      fail(
        path,
        `${where}: ${compressed?.dtype ?? dt} shape [${logical.join(", ")}] needs ${expected} bytes but data_offsets [${begin}, ${end}] hold ${end - begin}`,
      );
    }
    tensors.push({
      name,
      dtype,
      shape: Object.freeze([...logical]),
      addr: map.addr + dataStart + begin,
      bytes: end - begin,
      file: path,
      fileOffset: dataStart + begin,
    });
  }

  // As the reference implementation requires: sorted by begin, each tensor starts where the one
  // before ends and the last ends where the file does. A header length one byte short, or a tensor
  // dropped from the header, leaves bytes no tensor accounts for: every read would be shifted.
  tensors.sort((a, b) => a.fileOffset - b.fileOffset || a.bytes - b.bytes);
  const span = (x: TensorInfo) => `[${x.fileOffset - dataStart}, ${x.fileOffset - dataStart + x.bytes})`;
  let end = dataStart;
  let prev: TensorInfo | undefined;
  for (const t of tensors) {
    if (t.bytes === 0) continue; // an empty tensor occupies nothing, wherever it points
    if (t.fileOffset < end) fail(path, `tensor ${quote(t.name)} data ${span(t)} overlaps tensor ${quote(prev!.name)} data ${span(prev!)}`);
    if (t.fileOffset > end) {
      fail(path, `bytes [${end - dataStart}, ${t.fileOffset - dataStart}) of the data region belong to no tensor (before tensor ${quote(t.name)})`);
    }
    end = t.fileOffset + t.bytes;
    prev = t;
  }
  if (end !== size) {
    fail(path, `the tensors end at byte ${end - dataStart} of the data region, but it holds ${dataBytes} bytes (the header length or the header is wrong)`);
  }
  return { tensors, dataStart };
}

/** A mapped, validated safetensors file. Tensor addresses are valid until `close()`. */
export class SafetensorsFile extends MappedTensorFile {
  /** Byte offset of the data region (8 + header length). */
  readonly dataStart: number;

  private constructor(path: string, map: MappedFile, tensors: TensorInfo[], dataStart: number) {
    super(path, map, tensors, (what, hint) => fail(path, what, hint));
    this.dataStart = dataStart;
  }

  /** Map and validate `path`. Throws ModelFormatError naming the file (and tensor) on any defect. */
  static open(path: string): SafetensorsFile {
    const { map, parsed } = mapTensorFile(path, "a .safetensors file", (m) => parseHeader(path, m));
    return new SafetensorsFile(path, map, parsed.tensors, parsed.dataStart);
  }
}
