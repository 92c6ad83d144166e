// One `pytorch_model*.bin` (torch.save's ZIP layout, PyTorch >= 1.6): `<archive>/data.pkl`, the
// pickled state dict, and one STORED record `<archive>/data/<key>` per storage. The pickle is read
// by the restricted reader in torch-pickle.ts (nothing in it is executed); then each tensor is a
// range of its storage's record, addressed in the mapping like a safetensors tensor, so streaming,
// the memory plan and `split` read .bin weights exactly as they read safetensors.

import { DTYPE_BYTES } from "../backend/backend.ts";
import { ModelFormatError } from "../errors.ts";
import { mapTensorFile, MappedTensorFile } from "./mapped-tensor-file.ts";
import type { MappedFile } from "./mmap.ts";
import type { TensorInfo } from "./safetensors.ts";
import { PickleError, readStateDictPickle } from "./torch-pickle.ts";
import { crc32, readZipEntries, type ZipEntry } from "./zip-archive.ts";

const HINT_CORRUPT = "The file is truncated or corrupt; download it again.";
const HINT_RESAVE = "Load it with torch and save the state dict again (torch.save(model.state_dict(), path) with PyTorch >= 1.6), or convert it to safetensors.";

function fail(path: string, what: string, hint = HINT_CORRUPT): never {
  throw new ModelFormatError(`PyTorch checkpoint "${path}": ${what}`, hint);
}

/** The magic number torch.save wrote before PyTorch 1.6 (a pickled int after the protocol byte). */
const LEGACY_MAGIC = [0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19];

/** A mapped pytorch_model*.bin; refused before anything else is read when its pickle is not a
 *  plain state dict. Tensor addresses are valid until `close()`. */
export class TorchCheckpointFile extends MappedTensorFile {
  private constructor(path: string, map: MappedFile, tensors: TensorInfo[]) {
    super(path, map, tensors, (what, hint) => fail(path, what, hint));
  }

  static open(path: string): TorchCheckpointFile {
    const { map, parsed } = mapTensorFile(path, "a pytorch_model.bin file", (m) => readTensors(path, m));
    return new TorchCheckpointFile(path, map, parsed);
  }
}

function readTensors(path: string, map: MappedFile): TensorInfo[] {
  const head = new Uint8Array(map.view(0, Math.min(map.length, LEGACY_MAGIC.length)));
  if (head.length === LEGACY_MAGIC.length && LEGACY_MAGIC.every((b, i) => head[i] === b)) {
    fail(path, "is in the legacy torch.save format (before PyTorch 1.6), which is not read", HINT_RESAVE);
  }
  const entries = readZipEntries(map, path);
  const pickles = [...entries.keys()].filter((n) => /^[^/]+\/data\.pkl$/.test(n));
  if (pickles.length !== 1) fail(path, pickles.length === 0 ? "has no <archive>/data.pkl record" : `has ${pickles.length} data.pkl records`, HINT_CORRUPT);
  const prefix = pickles[0]!.slice(0, -"data.pkl".length);
  const stored = (e: ZipEntry): ZipEntry => {
    if (e.method !== 0 || e.compressedSize !== e.size) {
      fail(path, `record "${e.name}" is compressed (method ${e.method}); tensors must lie in the file as stored records`, HINT_RESAVE);
    }
    return e;
  };
  const byteorder = entries.get(`${prefix}byteorder`);
  if (byteorder !== undefined && new TextDecoder().decode(map.view(stored(byteorder).dataOffset, byteorder.size)) !== "little") {
    fail(path, "was written on a big-endian machine", HINT_RESAVE);
  }

  const pkl = stored(entries.get(pickles[0]!)!);
  const bytes = new Uint8Array(map.view(pkl.dataOffset, pkl.size));
  if (crc32(bytes) !== pkl.crc32) fail(path, `record "${pkl.name}" fails its CRC check`);
  let pickled;
  try {
    pickled = readStateDictPickle(bytes);
  } catch (e) {
    if (!(e instanceof PickleError)) throw e;
    throw new ModelFormatError(
      `PyTorch checkpoint "${path}" is refused: ${e.message}`,
      "Only plain state dicts are read, and nothing in a pickle is ever run. If the file is yours, re-save the state dict (or convert it to safetensors); otherwise do not load it with torch either.",
    );
  }

  const tensors: TensorInfo[] = [];
  for (const t of pickled) {
    const where = `tensor "${t.name}"`;
    const record = entries.get(`${prefix}data/${t.storageKey}`);
    if (record === undefined) fail(path, `${where}: its storage record "${prefix}data/${t.storageKey}" is missing`);
    const elem = DTYPE_BYTES[t.dtype];
    if (stored(record!).size < t.storageNumel * elem) fail(path, `${where}: storage "${t.storageKey}" holds ${record!.size} bytes, less than its ${t.storageNumel} ${t.dtype} elements`);
    // Row-major and dense: the stride every dimension of more than one element would have.
    let expect = 1;
    for (let d = t.shape.length - 1; d >= 0; d--) {
      if (t.shape[d]! > 1 && t.stride[d] !== expect) {
        fail(path, `${where} is not contiguous (size [${t.shape.join(", ")}], stride [${t.stride.join(", ")}])`, "Save a state dict of contiguous tensors (tensor.contiguous()), or convert the checkpoint to safetensors.");
      }
      expect *= t.shape[d]!;
    }
    const numel = expect;
    if (t.offset + numel > t.storageNumel) fail(path, `${where}: elements [${t.offset}, ${t.offset + numel}) run past its storage of ${t.storageNumel}`);
    const fileOffset = record!.dataOffset + t.offset * elem;
    tensors.push({
      name: t.name,
      dtype: t.dtype,
      shape: Object.freeze([...t.shape]),
      addr: map.addr + fileOffset,
      bytes: numel * elem,
      file: path,
      fileOffset,
    });
  }
  return tensors;
}
