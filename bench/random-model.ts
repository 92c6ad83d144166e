// Writes a random-weight Llama model folder (config.json, model.safetensors in BF16/F16/F32,
// stories260K's tokenizer so the vocabulary is 512) for benchmarks and large-model tests. Values
// are small random numbers with random signs, so activations stay finite through many layers.
import { closeSync, copyFileSync, existsSync, mkdirSync, openSync, writeFileSync, writeSync } from "node:fs";
import { join } from "node:path";

export interface RandomLlamaSpec {
  readonly hidden: number;
  readonly intermediate: number;
  readonly layers: number;
  readonly heads: number;
  readonly kvHeads: number;
  readonly dtype: "BF16" | "F16" | "F32";
  readonly seed?: number;
}

/** ~1B parameters with a 512-token vocabulary (Llama-3.2-1B's body). */
export const LLAMA_1B: RandomLlamaSpec = { hidden: 2048, intermediate: 8192, layers: 16, heads: 32, kvHeads: 8, dtype: "BF16" };

const VOCAB = 512;

/** Every tensor of a Llama checkpoint of this shape, in the order a checkpoint lists them. */
export function llamaTensorShapes(s: { hidden: number; intermediate: number; layers: number; heads: number; kvHeads: number; vocab: number }): [string, number[]][] {
  const hd = s.hidden / s.heads;
  const t: [string, number[]][] = [["model.embed_tokens.weight", [s.vocab, s.hidden]]];
  for (let l = 0; l < s.layers; l++) {
    const p = `model.layers.${l}`;
    t.push(
      [`${p}.input_layernorm.weight`, [s.hidden]],
      [`${p}.self_attn.q_proj.weight`, [s.heads * hd, s.hidden]],
      [`${p}.self_attn.k_proj.weight`, [s.kvHeads * hd, s.hidden]],
      [`${p}.self_attn.v_proj.weight`, [s.kvHeads * hd, s.hidden]],
      [`${p}.self_attn.o_proj.weight`, [s.hidden, s.heads * hd]],
      [`${p}.post_attention_layernorm.weight`, [s.hidden]],
      [`${p}.mlp.gate_proj.weight`, [s.intermediate, s.hidden]],
      [`${p}.mlp.up_proj.weight`, [s.intermediate, s.hidden]],
      [`${p}.mlp.down_proj.weight`, [s.hidden, s.intermediate]],
    );
  }
  t.push(["model.norm.weight", [s.hidden]], ["lm_head.weight", [s.vocab, s.hidden]]);
  return t;
}

const ELEM = { BF16: 2, F16: 2, F32: 4 } as const;

/** Bits of a random value of magnitude ~2^-7..2^-4 (norm weights: ~1). */
function fill(buf: Uint8Array, dtype: RandomLlamaSpec["dtype"], norm: boolean, state: { s: number }): void {
  const n = buf.length / ELEM[dtype];
  let x = state.s;
  const u16 = dtype === "F32" ? null : new Uint16Array(buf.buffer, buf.byteOffset, n);
  const f32 = dtype === "F32" ? new Float32Array(buf.buffer, buf.byteOffset, n) : null;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    const r = x >>> 0;
    const mant = (r & 0x3ff) / 1024;
    const v = norm ? 1 + (mant - 0.5) * 0.2 : (r & 0x80000000 ? -1 : 1) * (1 + mant) * 2 ** (-7 + ((r >>> 10) & 3));
    if (f32) f32[i] = v;
    else if (dtype === "BF16") {
      tmp[0] = v;
      u16![i] = tmpU[0] >>> 16;
    } else u16![i] = toF16(v);
  }
  state.s = x;
}
const tmp = new Float32Array(1);
const tmpU = new Uint32Array(tmp.buffer);
function toF16(v: number): number {
  tmp[0] = v;
  const b = tmpU[0];
  const sign = (b >>> 16) & 0x8000;
  const e = ((b >>> 23) & 0xff) - 127 + 15;
  if (e <= 0) return sign;
  return sign | (e << 10) | ((b >>> 13) & 0x3ff);
}

/** Writes the model into `dir` (skipped when a complete one is there). Returns the weight bytes. */
export function writeRandomLlama(dir: string, spec: RandomLlamaSpec, tokenizerDir: string): number {
  const config = {
    architectures: ["LlamaForCausalLM"], model_type: "llama", hidden_size: spec.hidden, intermediate_size: spec.intermediate,
    num_hidden_layers: spec.layers, num_attention_heads: spec.heads, num_key_value_heads: spec.kvHeads, vocab_size: VOCAB,
    max_position_embeddings: 2048, rms_norm_eps: 1e-5, rope_theta: 10000, tie_word_embeddings: false, bos_token_id: 1, eos_token_id: 2,
  };
  return writeRandomModel(dir, llamaTensorShapes({ ...spec, vocab: VOCAB }), config, spec.dtype, tokenizerDir, spec.seed);
}

/**
 * Writes `tensors` with random values into `dir`/model.safetensors, with `config` (its torch_dtype
 * set from `dtype`) and the tokenizer files of `tokenizerDir`. A complete folder is reused.
 */
export function writeRandomModel(
  dir: string, tensors: readonly [string, number[]][], config: Record<string, unknown>, dtype: RandomLlamaSpec["dtype"], tokenizerDir: string, seed?: number,
): number {
  const header: Record<string, unknown> = {};
  let off = 0;
  for (const [name, shape] of tensors) {
    const bytes = shape.reduce((a, b) => a * b, 1) * ELEM[dtype];
    header[name] = { dtype, shape, data_offsets: [off, off + bytes] };
    off += bytes;
  }
  const done = join(dir, ".complete");
  if (existsSync(done)) return off;
  mkdirSync(dir, { recursive: true });
  const json = new TextEncoder().encode(JSON.stringify(header));
  const fd = openSync(join(dir, "model.safetensors"), "w");
  const len = new Uint8Array(8);
  new DataView(len.buffer).setBigUint64(0, BigInt(json.length), true);
  writeSync(fd, len);
  writeSync(fd, json);
  const state = { s: seed ?? 0x9e3779b9 };
  const chunk = new Uint8Array(64 << 20);
  for (const [name, shape] of tensors) {
    let left = shape.reduce((a, b) => a * b, 1) * ELEM[dtype];
    while (left > 0) {
      const n = Math.min(left, chunk.length);
      const part = chunk.subarray(0, n);
      fill(part, dtype, name.endsWith("norm.weight"), state);
      writeSync(fd, part);
      left -= n;
    }
  }
  closeSync(fd);
  const torchDtype = { BF16: "bfloat16", F16: "float16", F32: "float32" }[dtype];
  writeFileSync(join(dir, "config.json"), JSON.stringify({ ...config, torch_dtype: torchDtype }, null, 1));
  for (const f of ["tokenizer.json", "tokenizer_config.json"]) copyFileSync(join(tokenizerDir, f), join(dir, f));
  writeFileSync(done, "");
  return off;
}
