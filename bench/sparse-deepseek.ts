// A DeepSeek-R1-671B-shaped GGUF whose weights are file holes (see sparse-model.ts): the metadata
// llama.cpp's converter writes for DeepSeek-R1 (deepseek2, 61 blocks, 3 leading dense, 256 experts
// of which 8 are used, 8 groups of which 4, sigmoid gating with exp_probs_b, routed scale 2.5,
// normalized weights, MLA with q LoRA 1536 and kv LoRA 512, YaRN ×40 from 4096) and a per-tensor
// type mix after unsloth's description of its dynamic 1.58-bit quant (DeepSeek-R1-UD-IQ1_S, January
// 2025; the per-tensor list itself is not published, so this mix is an approximation): routed
// gate/up experts IQ1_S, routed down experts IQ2_XXS in the first three MoE layers and IQ1_S after
// ("2.06/1.56 bit"), shared experts Q6_K, attention and the dense layers Q4_K (their down
// projections Q6_K), the embedding Q4_K and the head Q6_K, norms, routers and biases F32. That file
// predates llama.cpp's split attn_k_b / attn_v_b, so kv_b_proj is one attn_kv_b tensor.
// All-zero weights decode to zeros, so a pass is well defined (every router ties: the lowest ids
// win); for shapes, plans and bytes only — never for numerics.
import { closeSync, ftruncateSync, openSync, writeSync } from "node:fs";
import { tensorBytes } from "../src/backend/backend.ts";
import { encode, writeGguf, type GgufKv, type GgufTensor } from "../test/fuzz/gguf-bytes.ts";

export interface SparseDeepseekSpec {
  readonly layers: number;
  readonly leadingDense: number;
  readonly hidden: number;
  readonly ffn: number;
  readonly heads: number;
  readonly qLoraRank: number;
  readonly kvLoraRank: number;
  readonly nope: number;
  readonly rope: number;
  readonly vHeadDim: number;
  readonly experts: number;
  readonly used: number;
  readonly groups: number;
  readonly groupsUsed: number;
  readonly expertFfn: number;
  readonly vocab: number;
  /** MoE layers (from the first) whose routed down projections are IQ2_XXS rather than IQ1_S. */
  readonly downIq2Layers: number;
}

/** DeepSeek-R1 (and V3): the real shape. */
export const DEEPSEEK_R1_671B: SparseDeepseekSpec = {
  layers: 61, leadingDense: 3, hidden: 7168, ffn: 18432, heads: 128, qLoraRank: 1536, kvLoraRank: 512, nope: 128, rope: 64,
  vHeadDim: 128, experts: 256, used: 8, groups: 8, groupsUsed: 4, expertFfn: 2048, vocab: 129280, downIq2Layers: 3,
};

/**
 * The same structure scaled down: all 61 blocks (3 dense), all 256 experts with 8 used, narrow
 * rows (still whole 256-weight blocks). Its 300-odd norms, routers and biases are more than the
 * reader queues at once, as the real model's are.
 */
export const DEEPSEEK_SCALED: SparseDeepseekSpec = {
  layers: 61, leadingDense: 3, hidden: 256, ffn: 512, heads: 4, qLoraRank: 256, kvLoraRank: 256, nope: 64, rope: 32,
  vHeadDim: 64, experts: 256, used: 8, groups: 8, groupsUsed: 4, expertFfn: 256, vocab: 512, downIq2Layers: 3,
};

/** GGML type codes (ggml.h) of the types the mix uses. */
const GGML = { f32: 0, q4_k: 12, q6_k: 14, iq2_xxs: 16, iq1_s: 19 } as const;
type SparseDType = keyof typeof GGML;

export interface SparseTensor {
  readonly name: string;
  /** Row-major [.., rows, cols] (GGUF dims reversed). */
  readonly shape: readonly number[];
  readonly dtype: SparseDType;
  readonly bytes: number;
}

/** Every tensor of the model, in file order, with its type. */
export function deepseekTensors(s: SparseDeepseekSpec): SparseTensor[] {
  const out: SparseTensor[] = [];
  const add = (name: string, shape: number[], dtype: SparseDType) =>
    out.push({ name, shape, dtype, bytes: dtype === "f32" ? shape.reduce((a, b) => a * b, 4) : tensorBytes(dtype, shape) });
  const h = s.hidden;
  add("token_embd.weight", [s.vocab, h], "q4_k");
  for (let i = 0; i < s.layers; i++) {
    const b = `blk.${i}`;
    add(`${b}.attn_norm.weight`, [h], "f32");
    add(`${b}.attn_q_a.weight`, [s.qLoraRank, h], "q4_k");
    add(`${b}.attn_q_a_norm.weight`, [s.qLoraRank], "f32");
    add(`${b}.attn_q_b.weight`, [s.heads * (s.nope + s.rope), s.qLoraRank], "q4_k");
    add(`${b}.attn_kv_a_mqa.weight`, [s.kvLoraRank + s.rope, h], "q4_k");
    add(`${b}.attn_kv_a_norm.weight`, [s.kvLoraRank], "f32");
    add(`${b}.attn_kv_b.weight`, [s.heads * (s.nope + s.vHeadDim), s.kvLoraRank], "q4_k");
    add(`${b}.attn_output.weight`, [h, s.heads * s.vHeadDim], "q4_k");
    add(`${b}.ffn_norm.weight`, [h], "f32");
    if (i < s.leadingDense) {
      add(`${b}.ffn_gate.weight`, [s.ffn, h], "q4_k");
      add(`${b}.ffn_up.weight`, [s.ffn, h], "q4_k");
      add(`${b}.ffn_down.weight`, [h, s.ffn], "q6_k");
      continue;
    }
    add(`${b}.ffn_gate_inp.weight`, [s.experts, h], "f32");
    add(`${b}.exp_probs_b.bias`, [s.experts], "f32");
    add(`${b}.ffn_gate_exps.weight`, [s.experts, s.expertFfn, h], "iq1_s");
    add(`${b}.ffn_up_exps.weight`, [s.experts, s.expertFfn, h], "iq1_s");
    add(`${b}.ffn_down_exps.weight`, [s.experts, h, s.expertFfn], i - s.leadingDense < s.downIq2Layers ? "iq2_xxs" : "iq1_s");
    add(`${b}.ffn_gate_shexp.weight`, [s.expertFfn, h], "q6_k");
    add(`${b}.ffn_up_shexp.weight`, [s.expertFfn, h], "q6_k");
    add(`${b}.ffn_down_shexp.weight`, [h, s.expertFfn], "q6_k");
  }
  add("output_norm.weight", [h], "f32");
  add("output.weight", [s.vocab, h], "q6_k");
  return out;
}

function metadata(s: SparseDeepseekSpec): GgufKv[] {
  const a = "deepseek2";
  const kv: [string, [number, Uint8Array]][] = [
    ["general.architecture", encode.string(a, true)],
    ["general.name", encode.string(s === DEEPSEEK_R1_671B ? "DeepSeek R1 (sparse, shape only)" : "DeepSeek (scaled, sparse)", true)],
    [`${a}.block_count`, encode.u32(s.layers)],
    [`${a}.context_length`, encode.u32(163840)],
    [`${a}.embedding_length`, encode.u32(s.hidden)],
    [`${a}.feed_forward_length`, encode.u32(s.ffn)],
    [`${a}.attention.head_count`, encode.u32(s.heads)],
    [`${a}.attention.head_count_kv`, encode.u32(s.heads)],
    [`${a}.rope.freq_base`, encode.f32(10000)],
    [`${a}.attention.layer_norm_rms_epsilon`, encode.f32(1e-6)],
    [`${a}.expert_used_count`, encode.u32(s.used)],
    [`${a}.leading_dense_block_count`, encode.u32(s.leadingDense)],
    [`${a}.vocab_size`, encode.u32(s.vocab)],
    [`${a}.attention.q_lora_rank`, encode.u32(s.qLoraRank)],
    [`${a}.attention.kv_lora_rank`, encode.u32(s.kvLoraRank)],
    [`${a}.attention.key_length`, encode.u32(s.nope + s.rope)],
    [`${a}.attention.value_length`, encode.u32(s.vHeadDim)],
    [`${a}.expert_feed_forward_length`, encode.u32(s.expertFfn)],
    [`${a}.expert_count`, encode.u32(s.experts)],
    [`${a}.expert_shared_count`, encode.u32(1)],
    [`${a}.expert_weights_scale`, encode.f32(2.5)],
    [`${a}.expert_weights_norm`, encode.bool(true)],
    [`${a}.expert_gating_func`, encode.u32(2)],
    [`${a}.expert_group_count`, encode.u32(s.groups)],
    [`${a}.expert_group_used_count`, encode.u32(s.groupsUsed)],
    [`${a}.rope.dimension_count`, encode.u32(s.rope)],
    [`${a}.rope.scaling.type`, encode.string("yarn", true)],
    [`${a}.rope.scaling.factor`, encode.f32(40)],
    [`${a}.rope.scaling.original_context_length`, encode.u32(4096)],
    [`${a}.rope.scaling.yarn_log_multiplier`, encode.f32(0.1)],
    ["tokenizer.ggml.bos_token_id", encode.u32(0)],
    ["tokenizer.ggml.eos_token_id", encode.u32(1)],
  ];
  return kv.map(([key, [type, value]]) => ({ key, type, value }));
}

const ALIGN = 32;

/** Writes the sparse file at `path` (header, then holes to the end); returns its tensors. */
export function writeSparseDeepseekGguf(path: string, s: SparseDeepseekSpec): SparseTensor[] {
  const tensors = deepseekTensors(s);
  const infos: GgufTensor[] = [];
  let offset = 0;
  for (const t of tensors) {
    infos.push({ name: t.name, dims: [...t.shape].reverse().map(BigInt), type: GGML[t.dtype], offset: BigInt(offset) });
    offset += Math.ceil(t.bytes / ALIGN) * ALIGN;
  }
  const header = writeGguf({ version: 3, kvs: metadata(s), tensors: infos, alignment: ALIGN, data: new Uint8Array(0) });
  const fd = openSync(path, "w");
  try {
    writeSync(fd, header);
    ftruncateSync(fd, header.length + offset);
  } finally {
    closeSync(fd);
  }
  return tensors;
}

