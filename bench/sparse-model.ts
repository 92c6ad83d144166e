// Model folders of real large-model shapes whose weights are holes: the safetensors header is
// written and the file is extended with ftruncate, so a 140 GB model takes no disk and reads as
// zeros (RMSNorm of zeros is zero, so a pass is well defined). For shape-only runs: memory plans,
// peak RSS under a budget, bytes streamed per pass — never for numerics.
import { closeSync, copyFileSync, existsSync, ftruncateSync, mkdirSync, openSync, readFileSync, writeFileSync, writeSync } from "node:fs";
import { join } from "node:path";
import { llamaTensorShapes } from "./random-model.ts";

export interface SparseLlamaSpec {
  readonly hidden: number;
  readonly intermediate: number;
  readonly layers: number;
  readonly heads: number;
  readonly kvHeads: number;
  readonly vocab: number;
  readonly maxPositions: number;
  readonly ropeTheta: number;
  readonly dtype: "BF16" | "F16" | "F32";
}

/** Llama-3-70B: hidden 8192, 80 layers, 64/8 heads, intermediate 28672, vocab 128256. */
export const LLAMA3_70B: SparseLlamaSpec = {
  hidden: 8192, intermediate: 28672, layers: 80, heads: 64, kvHeads: 8, vocab: 128256, maxPositions: 8192, ropeTheta: 500000, dtype: "BF16",
};

/** Llama-3.1-405B: hidden 16384, 126 layers, 128/8 heads, intermediate 53248, vocab 128256. */
export const LLAMA31_405B: SparseLlamaSpec = {
  hidden: 16384, intermediate: 53248, layers: 126, heads: 128, kvHeads: 8, vocab: 128256, maxPositions: 131072, ropeTheta: 500000, dtype: "BF16",
};

const ELEM = { BF16: 2, F16: 2, F32: 4 } as const;

/** A safetensors file of `tensors` whose data are holes; returns its data bytes and header bytes (8 + JSON). */
function writeSparseSafetensors(path: string, tensors: readonly [string, number[]][], dtype: SparseLlamaSpec["dtype"]): { dataBytes: number; headerBytes: number } {
  const header: Record<string, unknown> = {};
  let off = 0;
  for (const [name, shape] of tensors) {
    const bytes = shape.reduce((a, b) => a * b, 1) * ELEM[dtype];
    header[name] = { dtype, shape, data_offsets: [off, off + bytes] };
    off += bytes;
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  const fd = openSync(path, "w");
  try {
    const len = new Uint8Array(8);
    new DataView(len.buffer).setBigUint64(0, BigInt(json.length), true);
    writeSync(fd, len);
    writeSync(fd, json);
    ftruncateSync(fd, 8 + json.length + off);
  } finally {
    closeSync(fd);
  }
  return { dataBytes: off, headerBytes: 8 + json.length };
}

function writeLlamaConfig(dir: string, s: SparseLlamaSpec): void {
  const torchDtype = { BF16: "bfloat16", F16: "float16", F32: "float32" }[s.dtype];
  writeFileSync(
    join(dir, "config.json"),
    JSON.stringify({
      architectures: ["LlamaForCausalLM"], model_type: "llama", hidden_size: s.hidden, intermediate_size: s.intermediate,
      num_hidden_layers: s.layers, num_attention_heads: s.heads, num_key_value_heads: s.kvHeads, vocab_size: s.vocab,
      max_position_embeddings: s.maxPositions, rms_norm_eps: 1e-5, rope_theta: s.ropeTheta, tie_word_embeddings: false,
      torch_dtype: torchDtype, bos_token_id: 128000, eos_token_id: 128001,
    }, null, 1),
  );
}

/**
 * Writes `dir` (config.json, model.safetensors of holes, the tokenizer files of `tokenizerDir`),
 * reusing a complete one. Returns the weight bytes.
 */
export function writeSparseLlama(dir: string, s: SparseLlamaSpec, tokenizerDir: string): number {
  const done = join(dir, ".complete");
  const bytes = llamaTensorShapes(s).reduce((a, [, shape]) => a + shape.reduce((x, y) => x * y, 1) * ELEM[s.dtype], 0);
  if (existsSync(done)) return bytes;
  mkdirSync(dir, { recursive: true });
  writeSparseSafetensors(join(dir, "model.safetensors"), llamaTensorShapes(s), s.dtype);
  writeLlamaConfig(dir, s);
  for (const f of ["tokenizer.json", "tokenizer_config.json"]) copyFileSync(join(tokenizerDir, f), join(dir, f));
  writeFileSync(done, "");
  return bytes;
}

export interface SparseShards {
  /** Shard file names, in order (`model-00001-of-00030.safetensors`, ...). */
  readonly shards: readonly string[];
  /** Header bytes (the 8-byte length and the JSON) of each shard: what a fit check may read of it. */
  readonly headerBytes: Readonly<Record<string, number>>;
}

/**
 * Writes `dir` as the hub's big repos are laid out: config.json, shards of holes of about
 * `shardBytes` each (`model-0000i-of-0000n.safetensors`, whole tensors per shard) and
 * model.safetensors.index.json. No tokenizer. Reuses a complete one.
 */
export function writeSparseShardedLlama(dir: string, s: SparseLlamaSpec, shardBytes: number): SparseShards {
  const groups: [string, number[]][][] = [[]];
  let inGroup = 0;
  for (const t of llamaTensorShapes(s)) {
    const bytes = t[1].reduce((a, b) => a * b, 1) * ELEM[s.dtype];
    if (inGroup > 0 && inGroup + bytes > shardBytes) {
      groups.push([]);
      inGroup = 0;
    }
    groups[groups.length - 1].push(t);
    inGroup += bytes;
  }
  const name = (i: number) => `model-${String(i + 1).padStart(5, "0")}-of-${String(groups.length).padStart(5, "0")}.safetensors`;
  const shards = groups.map((_, i) => name(i));
  const done = join(dir, ".complete");
  const sizes = join(dir, ".header-bytes.json");
  if (existsSync(done)) return { shards, headerBytes: JSON.parse(readFileSync(sizes, "utf8")) };
  mkdirSync(dir, { recursive: true });
  const headerBytes: Record<string, number> = {};
  const weightMap: Record<string, string> = {};
  let total = 0;
  groups.forEach((g, i) => {
    const w = writeSparseSafetensors(join(dir, shards[i]), g, s.dtype);
    headerBytes[shards[i]] = w.headerBytes;
    total += w.dataBytes;
    for (const [t] of g) weightMap[t] = shards[i];
  });
  writeFileSync(join(dir, "model.safetensors.index.json"), JSON.stringify({ metadata: { total_size: total }, weight_map: weightMap }, null, 1));
  writeLlamaConfig(dir, s);
  writeFileSync(sizes, JSON.stringify(headerBytes));
  writeFileSync(done, "");
  return { shards, headerBytes };
}
