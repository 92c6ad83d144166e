// Mutations of three GGUF files (v1 F32 stories260K, v3 F16 with a 32000-token vocabulary, v3
// Q8_0): the header's counts, every kind of metadata value (wrong types, NaN, huge counts, deep
// nesting, hostile strings), the tensor infos (dims, types, offsets, names, missing and extra
// tensors, rope_freqs), and the data (NaN, truncation, a tail). Each says whether a correct
// reader must refuse it.
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { BASES, commandArgs, pickCommand, type Command, type Expect, type Family } from "./case.ts";
import { concat, encode, parseGguf, setKv, T, tensorBytes, writeGguf, type GgufParts, type WriteOptions } from "./gguf-bytes.ts";
import type { Rng } from "./rng.ts";
import { hostileNames } from "./values.ts";

interface Base {
  readonly path: string;
  /** Blocks in the file. */
  readonly layers: number;
  /** Experts per layer (0: dense). */
  readonly experts: number;
  /** Its vocabulary encodes text (the Mixtral fixture's 128 pieces do not: it runs by ids). */
  readonly text: boolean;
}

const GGUF_BASES: readonly Base[] = [
  { path: BASES.ggufV1, layers: 5, experts: 0, text: true },
  { path: BASES.ggufV3, layers: 1, experts: 0, text: true },
  { path: BASES.ggufQ8, layers: 2, experts: 0, text: true },
  { path: BASES.ggufMixtral, layers: 2, experts: 6, text: false },
];

const cache = new Map<string, Uint8Array>();
function fresh(base: Base): GgufParts {
  let b = cache.get(base.path);
  if (b === undefined) cache.set(base.path, (b = new Uint8Array(readFileSync(base.path))));
  return parseGguf(b);
}

interface Mutation {
  what: string;
  expect: Expect;
  hugeCount?: boolean;
  /** Damage to one embedding row, maybe not read by bench's random ids. */
  inRow?: boolean;
  /** Damage to the tokenizer metadata: seen only by commands that encode text. */
  inTokenizer?: boolean;
  bytes: Uint8Array;
}

const wide = (p: GgufParts) => p.version >= 2;

function u32Kv(p: GgufParts, key: string): number {
  const kv = p.kvs.find((k) => k.key === key)!;
  return new DataView(kv.value.buffer, kv.value.byteOffset).getUint32(0, true);
}

/** head_dim of a llama GGUF: embedding_length / head_count. */
const headDim = (p: GgufParts) => u32Kv(p, "llama.embedding_length") / u32Kv(p, "llama.attention.head_count");

/**
 * Whether the tensors no longer lay out the data section as GGUF writers do (in range, no
 * overlaps, no gap or tail of a whole alignment unit). A retyped tensor whose new size still fits
 * its padded slot leaves a valid file with other values: that must be accepted or refused, either.
 */
function layoutBroken(p: GgufParts): boolean {
  const spans = p.tensors.map((t) => ({ begin: Number(t.offset), bytes: tensorBytes(t) }));
  if (spans.some((s) => s.bytes === null)) return true;
  spans.sort((a, b) => a.begin - b.begin);
  let end = 0;
  for (const s of spans) {
    if (s.begin < end || s.begin - end >= p.alignment || s.begin % p.alignment !== 0) return true;
    end = s.begin + s.bytes!;
  }
  return end > p.data.length || p.data.length - end >= p.alignment;
}

/** The data section rebuilt from the tensors left, each at the next aligned offset. */
function repack(p: GgufParts): void {
  const kept = [...p.tensors].sort((a, b) => Number(a.offset - b.offset));
  const chunks: Uint8Array[] = [];
  let at = 0;
  for (const t of kept) {
    const n = tensorBytes(t)!;
    const pad = (p.alignment - (at % p.alignment)) % p.alignment;
    chunks.push(new Uint8Array(pad), p.data.subarray(Number(t.offset), Number(t.offset) + n));
    t.offset = BigInt(at + pad);
    at += pad + n;
  }
  p.data = concat(chunks);
}

function write(p: GgufParts, o?: WriteOptions): Uint8Array {
  return writeGguf(p, o);
}

/** A metadata mutation: key, value and what must happen. */
type KvChange = [string, [number, Uint8Array], string, Expect, boolean?];

function kvChanges(p: GgufParts, base: Base): KvChange[] {
  const w = wide(p);
  const L = "llama.";
  return [
    [`${L}block_count`, encode.u32(2 ** 32 - 1), "2^32-1", "error", true],
    [`${L}block_count`, encode.u32(1e9), "1e9", "error", true],
    [`${L}block_count`, encode.u64(2n ** 53n - 1n), "2^53-1 (u64)", "error", true],
    [`${L}block_count`, encode.u32(0), "0", "error"],
    [`${L}block_count`, encode.u32(base.layers - 1), `${base.layers - 1} (one block of tensors left over)`, "error"],
    [`${L}block_count`, encode.u32(base.layers + 1), `${base.layers + 1} (one block missing)`, "error"],
    [`${L}block_count`, encode.string(String(base.layers), w), `the string "${base.layers}"`, "error"],
    [`${L}embedding_length`, encode.u32(2 ** 31), "2^31", "error", true],
    [`${L}embedding_length`, encode.u32(0), "0", "error"],
    [`${L}attention.head_count`, encode.u32(0), "0", "error"],
    [`${L}attention.head_count`, encode.u32(65535), "65535", "error", true],
    [`${L}attention.head_count_kv`, encode.u32(3), "3", "error"],
    [`${L}context_length`, encode.u32(0), "0", "error"],
    [`${L}context_length`, encode.u32(2 ** 32 - 1), "2^32-1", "error", true],
    [`${L}context_length`, encode.u32(1e6), "1e6", "ok"],
    [`${L}feed_forward_length`, encode.u32(7), "7", "error"],
    [`${L}attention.layer_norm_rms_epsilon`, encode.f32(NaN), "NaN", "error"],
    [`${L}attention.layer_norm_rms_epsilon`, encode.f32(-1), "-1", "error"],
    [`${L}attention.layer_norm_rms_epsilon`, encode.f32(Infinity), "Infinity", "error"],
    [`${L}attention.layer_norm_rms_epsilon`, encode.f32(1e-3), "1e-3", "ok"],
    [`${L}rope.freq_base`, encode.f32(NaN), "NaN", "error"],
    [`${L}rope.freq_base`, encode.f32(0), "0", "error"],
    [`${L}rope.freq_base`, encode.f32(Infinity), "Infinity", "error"],
    [`${L}rope.freq_base`, encode.f32(1e6), "1e6", "ok"],
    [`${L}rope.scale_linear`, encode.f32(NaN), "NaN", "error"],
    [`${L}rope.scale_linear`, encode.f32(-2), "-2", "error"],
    [`${L}rope.scale_linear`, encode.f32(0), "0", "error"],
    [`${L}rope.scale_linear`, encode.f32(2), "2", "ok"],
    [`${L}rope.scaling.type`, encode.string("yarn", w), `"yarn"`, "error"],
    [`${L}rope.scaling.type`, encode.u32(1), "the number 1", "error"],
    ["general.alignment", encode.u32(0), "0", "error"],
    ["general.alignment", encode.u32(3), "3", "error"],
    ["general.alignment", encode.string("32", w), `the string "32"`, "error"],
    ["general.alignment", encode.u64(2n ** 40n), "2^40", "error", true],
    ["general.architecture", encode.string("toString", w), `"toString"`, "error"],
    ["general.architecture", encode.string("__proto__", w), `"__proto__"`, "error"],
    ["general.architecture", encode.string("gpt2", w), `"gpt2"`, "error"],
    ["general.architecture", encode.string("llama\u001b[2J", w), "an ESC sequence", "error"],
    ["general.architecture", encode.u32(7), "the number 7", "error"],
    ["tokenizer.ggml.model", encode.string("bert", w), `"bert"`, "error"],
    ["tokenizer.ggml.model", encode.string("constructor", w), `"constructor"`, "error"],
    ["tokenizer.ggml.model", encode.string("gpt2", w), `"gpt2" without merges`, "error"],
    ["tokenizer.ggml.tokens", encode.array(T.string, 0, new Uint8Array(0), w), "an empty list", "error"],
    ["tokenizer.ggml.tokens", encode.array(T.u32, 4, new Uint8Array(16), w), "a list of numbers", "error"],
    ["tokenizer.ggml.token_type", encode.array(T.i32, 3, new Uint8Array(12), w), "3 entries", "error"],
    ["tokenizer.ggml.scores", encode.array(T.f32, 2, new Uint8Array(8), w), "2 entries", "error"],
    ["tokenizer.ggml.bos_token_id", encode.u32(1e9), "1e9", "error"],
    ["tokenizer.ggml.bos_token_id", encode.i32(-1), "-1", "error"],
    ["tokenizer.ggml.eos_token_id", encode.string("2", w), `the string "2"`, "error"],
    ["tokenizer.ggml.add_bos_token", encode.string("yes", w), `the string "yes"`, "error"],
    ["tokenizer.ggml.add_bos_token", encode.bool(false), "false", "ok"],
    ["tokenizer.chat_template", encode.string("\u001b]52;c;aGk=\u0007{{ x }}", w), "an OSC 52 sequence", "ok"],
    ["general.name", encode.string("\u001b[31mred", w), "an ESC sequence", "ok"],
    ["\u001b[2Jnew.key", encode.u32(1), "a new key named by an ESC sequence", "ok"],
    ...(base.experts > 0
      ? ([
          [`${L}expert_count`, encode.u32(base.experts - 1), `${base.experts - 1}`, "error"],
          [`${L}expert_count`, encode.u32(base.experts + 1), `${base.experts + 1}`, "error"],
          [`${L}expert_count`, encode.u32(60_000), "60000", "error", true],
          [`${L}expert_count`, encode.u32(2 ** 32 - 1), "2^32-1", "error", true],
          [`${L}expert_used_count`, encode.u32(0), "0", "error"],
          [`${L}expert_used_count`, encode.u32(base.experts + 1), `${base.experts + 1}`, "error"],
          [`${L}expert_used_count`, encode.u32(1), "1", "ok"],
        ] satisfies KvChange[])
      : []),
  ];
}

/** A nested array `depth` deep: each level one element, the innermost an empty u32 list. */
function nested(depth: number, w: boolean): [number, Uint8Array] {
  const parts: Uint8Array[] = [];
  const count = (n: number) => (w ? encode.u64(BigInt(n))[1] : encode.u32(n)[1]);
  for (let i = 0; i < depth; i++) parts.push(encode.u32(T.array)[1], count(1));
  parts.push(encode.u32(T.u32)[1], count(0));
  return [T.array, concat(parts)];
}

function f32At(p: GgufParts, name: string, element: number, v: number): boolean {
  const t = p.tensors.find((x) => x.name === name);
  if (t === undefined || t.type !== 0) return false;
  new DataView(p.data.buffer, p.data.byteOffset).setFloat32(Number(t.offset) + element * 4, v, true);
  return true;
}

function mutate(rng: Rng, base: Base): Mutation {
  const p = fresh(base);
  const w = wide(p);
  const r = rng.next();
  if (r < 0.3) {
    const [key, value, what, expect, huge] = rng.pick(kvChanges(p, base));
    setKv(p, key, value);
    return { what: `${key} set to ${what}`, expect, hugeCount: huge, inTokenizer: key.startsWith("tokenizer."), bytes: write(p) };
  }
  if (r < 0.4) {
    const choice = rng.pick(["tensor count -1", "tensor count +1", "tensor count huge", "kv count -1", "kv count +1", "kv count huge"]);
    const huge = w ? 2n ** 63n : 2n ** 32n - 1n;
    const o: WriteOptions =
      choice === "tensor count -1" ? { tensorCount: BigInt(p.tensors.length - 1) }
      : choice === "tensor count +1" ? { tensorCount: BigInt(p.tensors.length + 1) }
      : choice === "tensor count huge" ? { tensorCount: huge }
      : choice === "kv count -1" ? { kvCount: BigInt(p.kvs.length - 1) }
      : choice === "kv count +1" ? { kvCount: BigInt(p.kvs.length + 1) }
      : { kvCount: huge };
    return { what: choice, expect: "error", hugeCount: choice.endsWith("huge"), bytes: write(p, o) };
  }
  if (r < 0.48) {
    // v1 lengths are 32 bits: there the huge lengths are 2^32-1.
    const choice = rng.pick(["nested 100,000 deep", "nested 5 deep", "string length 2^60", "array length 2^40", "value type 99", "array of type 99", "duplicate key"]);
    const count = (n: bigint) => (w ? encode.u64(n)[1] : encode.u32(Number(BigInt.asUintN(32, n)))[1]);
    const value: [number, Uint8Array] =
      choice === "nested 100,000 deep" ? nested(100_000, w)
      : choice === "nested 5 deep" ? nested(5, w)
      : choice === "string length 2^60" ? [T.string, count(w ? 2n ** 60n : 2n ** 32n - 1n)]
      : choice === "array length 2^40" ? [T.array, concat([encode.u32(T.u32)[1], count(w ? 2n ** 40n : 2n ** 32n - 1n)])]
      : choice === "value type 99" ? [99, new Uint8Array(4)]
      : choice === "array of type 99" ? [T.array, concat([encode.u32(99)[1], count(1n), new Uint8Array(4)])]
      : [p.kvs[0]!.type, p.kvs[0]!.value];
    p.kvs.push({ key: choice === "duplicate key" ? p.kvs[0]!.key : "fuzz.value", type: value[0], value: value[1] });
    return { what: `metadata: ${choice}`, expect: "error", hugeCount: !choice.includes("5 deep") && choice !== "duplicate key", bytes: write(p) };
  }
  if (r < 0.72) {
    const t = rng.pick(p.tensors);
    const choice = rng.pick(["dims doubled", "dims huge", "5 dims", "type 99", "type Q8_K", "type Q8_0", "type F16", "offset +32", "offset of another", "offset +1", "offset huge", "hostile name", "duplicate name", "info dropped"]);
    let expect: Expect = "error";
    let hugeCount = false;
    let what: string = choice;
    switch (choice) {
      case "dims doubled": t.dims[0] = t.dims[0]! * 2n; break;
      case "dims huge": t.dims[0] = 2n ** 40n; hugeCount = true; break;
      case "5 dims": t.dims = [...t.dims, 1n, 1n, 1n, 1n].slice(0, 5); break;
      case "type 99": t.type = 99; break;
      case "type Q8_K": t.type = 15; break; // ggml's internal dot-product type: never runnable
      case "type Q8_0":
      case "type F16": {
        const type = choice === "type F16" ? 1 : 8;
        const blocks = type === 1 || Number(t.dims[0]) % 32 === 0;
        expect = t.type === type ? "ok" : blocks && !layoutBroken({ ...p, tensors: p.tensors.map((x) => (x === t ? { ...x, type } : x)) }) ? "either" : "error";
        t.type = type;
        break;
      }
      case "offset +32": t.offset += 32n; break;
      case "offset of another": {
        const other = rng.pick(p.tensors.filter((x) => x !== t));
        t.offset = other.offset;
        break;
      }
      case "offset +1": t.offset += 1n; break;
      case "offset huge": t.offset = 2n ** 50n; hugeCount = true; break;
      case "hostile name": {
        const h = rng.pick(hostileNames());
        t.name = h.name;
        what = `tensor renamed to ${h.what}`;
        hugeCount = h.huge === true;
        break;
      }
      case "duplicate name": t.name = rng.pick(p.tensors.filter((x) => x !== t)).name; break;
      case "info dropped": p.tensors.splice(p.tensors.indexOf(t), 1); break;
    }
    return { what: `tensor ${t.name.length > 40 ? "(renamed)" : t.name}: ${what}`, expect, hugeCount, bytes: write(p) };
  }
  if (r < 0.78) {
    // rope_freqs.weight divides each rotary frequency: ones are harmless, zeros or NaN are not.
    const fill = rng.pick<[number, Expect]>([[1, "ok"], [0, "error"], [NaN, "error"], [-1, "error"]]);
    const n = headDim(p) / 2;
    const end = BigInt(Math.ceil(p.data.length / 32) * 32);
    const dims = rng.chance(0.2) ? [BigInt(n + 1)] : [BigInt(n)];
    const values = new Float32Array(Number(dims[0])).fill(fill[0]);
    const data = new Uint8Array(Number(end) + values.byteLength);
    data.set(p.data);
    data.set(new Uint8Array(values.buffer), Number(end));
    p.data = data;
    p.tensors.push({ name: "rope_freqs.weight", dims, type: 0, offset: end });
    const expect: Expect = dims[0] === BigInt(n) ? fill[1] : "error";
    return { what: `rope_freqs.weight of ${dims[0]} × ${fill[0]}`, expect, bytes: write(p) };
  }
  if (r < 0.86) {
    const choice = rng.pick(["NaN in the BOS embedding row", "NaN in output_norm", "Inf in blk.0.attn_norm", "a whole block removed (consistent)"]);
    if (choice === "a whole block removed (consistent)") {
      if (base.layers < 2) return { what: "no block to remove: unchanged", expect: "ok", bytes: write(p) };
      const last = base.layers - 1;
      p.tensors = p.tensors.filter((t) => !t.name.startsWith(`blk.${last}.`));
      setKv(p, "llama.block_count", encode.u32(last));
      repack(p);
      return { what: choice, expect: "ok", bytes: write(p) };
    }
    const ok =
      choice === "NaN in the BOS embedding row" ? f32At(p, "token_embd.weight", 64 + rng.int(0, 7), NaN)
      : choice === "NaN in output_norm" ? f32At(p, "output_norm.weight", rng.int(0, 7), NaN)
      : f32At(p, "blk.0.attn_norm.weight", rng.int(0, 7), Infinity);
    return { what: choice, expect: ok ? "error" : "ok", inRow: choice.includes("row"), bytes: write(p) };
  }
  const bytes = write(p);
  const choice = rng.pick(["truncated", "64 bytes appended", "7 bytes appended", "bits flipped in the data", "bits flipped in the header"]);
  if (choice === "truncated") return { what: choice, expect: "error", bytes: bytes.slice(0, rng.int(0, bytes.length - 1)) };
  if (choice.endsWith("appended")) {
    const n = choice.startsWith("64") ? 64 : 7;
    const out = new Uint8Array(bytes.length + n);
    out.set(bytes);
    // Less than an alignment unit of tail is padding llama.cpp's writers may leave.
    return { what: choice, expect: n >= p.alignment ? "error" : "either", bytes: out };
  }
  const out = Uint8Array.from(bytes);
  const dataStart = bytes.length - p.data.length;
  for (let i = rng.int(1, 8); i > 0; i--) {
    const at = choice.includes("data") ? rng.int(dataStart, out.length - 1) : rng.int(0, dataStart - 1);
    out[at]! ^= 1 << rng.int(0, 7);
  }
  return { what: choice, expect: "either", bytes: out };
}

export const ggufFamily: Family = (rng) => {
  const base = rng.pick(GGUF_BASES);
  const m = mutate(rng, base);
  const command: Command = pickCommand(rng, { tokenizer: base.text });
  return {
    what: `${command} ${base.path.split("/").pop()}: ${m.what}`,
    expect: (m.inRow && command === "bench") || (m.inTokenizer && command !== "run") ? "either" : m.expect,
    hugeCount: m.hugeCount,
    build(dir) {
      const path = join(dir, "model.gguf");
      writeFileSync(path, m.bytes);
      return { args: commandArgs(command, path, dir) };
    },
  };
};
