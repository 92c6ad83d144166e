// A .gguf file as the engine sees a Hugging Face folder: a config from the `<arch>.*` metadata, a
// TensorSource that answers Hugging Face tensor names from GGUF names, and the embedded tokenizer.
// The llama.cpp architectures read here map onto our model types: llama (Llama, Mistral, and
// Mixtral when it has experts), qwen2, qwen3, qwen2moe, qwen3moe, deepseek2 (DeepSeek-V2/V3:
// gguf-deepseek.ts reads its metadata).
//
// Experts. llama.cpp's converter merges a layer's experts into one tensor per projection,
// blk.N.ffn_{gate,up,down}_exps with dims [cols, rows, n_expert]: expert e's matrix is the e-th
// contiguous slice of it, so a Hugging Face per-expert name (…experts.e.w1 / .gate_proj) maps to a
// slice with its own address and file offset: no copy, and the streamer fetches it alone.
// Older Mixtral files keep one tensor per expert (blk.N.ffn_gate.e.weight); both are read.
//
// RoPE layout. For the llama architecture, llama.cpp's converters (convert_hf_to_gguf.py
// LlamaModel.permute) store q_proj and k_proj rows permuted per head, from Hugging Face's
// rotate-half layout to Meta's original interleaved one:
//   gguf = hf.reshape(n_head, 2, head_dim / 2, cols).swapaxes(1, 2).reshape(rows, cols)
// (n_head = head_count_kv for k). Within head h, GGUF row h·hd + 2i + j holds HF row
// h·hd + j·hd/2 + i (i < hd/2, j ∈ {0, 1}). So rotary pair i is rows (2i, 2i+1) in the file and
// rows (i, i + hd/2) in HF. The rows are not un-permuted here (that would copy every q/k weight,
// and quantized blocks straddle rows' halves); instead `ropeInterleaved: true` tells the engine to
// rotate adjacent pairs (x[2i], x[2i+1]) by θ_i, which yields the same attention scores since
// q·k is invariant under applying the same permutation to both. v, o and the MLP are unpermuted.
// The Qwen converters do not permute (their models use the rotate-half "NEOX" layout).

import type { DType } from "../backend/backend.ts";
import type { HostTensor, TensorSource } from "../engine/tensor-source.ts";
import { ModelFormatError } from "../errors.ts";
import { GgufFile, type GgufValue } from "../formats/gguf.ts";
import { GgufTokenizer } from "../tokenizer/gguf-tokenizer.ts";
import type { TextTokenizer } from "../tokenizer/text-tokenizer.ts";
import { checkFinite, checkId, checkInt, own, quote, show } from "../util/validate.ts";
import { architectureFor } from "./arch/index.ts";
import { CONFIG_LIMITS } from "./config-reader.ts";
import type { ModelConfig, RopeScaling } from "./config.ts";
import { deepseekGgufConfig } from "./gguf-deepseek.ts";

/** GGUF type name → our dtype name (GgufFile refuses every other type by name). */
const GGUF_DTYPES: Record<string, DType> = {
  F32: "f32", F16: "f16", BF16: "bf16",
  Q8_0: "q8_0", Q4_0: "q4_0", Q4_1: "q4_1", Q5_0: "q5_0", Q5_1: "q5_1",
  Q2_K: "q2_k", Q3_K: "q3_k", Q4_K: "q4_k", Q5_K: "q5_k", Q6_K: "q6_k",
  IQ2_XXS: "iq2_xxs", IQ2_XS: "iq2_xs", IQ2_S: "iq2_s", IQ3_XXS: "iq3_xxs", IQ3_S: "iq3_s", IQ1_S: "iq1_s", IQ1_M: "iq1_m",
  IQ4_NL: "iq4_nl", IQ4_XS: "iq4_xs", TQ1_0: "tq1_0", TQ2_0: "tq2_0",
};

/** llama.cpp architectures, the model type each runs as, and what llama.cpp fixes for it. */
interface GgufArch {
  /** Our model type (llama with experts is Mixtral). */
  readonly modelType: (experts: number) => string;
  /** q/k rows permuted into interleaved rotary pairs by the converter. */
  readonly ropeInterleaved: boolean;
  /** Top-k weights renormalized: llama.cpp's graph fixes it per architecture (build_moe_ffn norm_w). */
  readonly normTopk: boolean;
}

const GGUF_ARCHS: Record<string, GgufArch> = {
  llama: { modelType: (e) => (e > 0 ? "mixtral" : "llama"), ropeInterleaved: true, normTopk: true },
  qwen2: { modelType: () => "qwen2", ropeInterleaved: false, normTopk: false },
  qwen3: { modelType: () => "qwen3", ropeInterleaved: false, normTopk: false },
  qwen2moe: { modelType: () => "qwen2_moe", ropeInterleaved: false, normTopk: false },
  qwen3moe: { modelType: () => "qwen3_moe", ropeInterleaved: false, normTopk: true },
  // Its converter keeps DeepSeek's interleaved rotary rows unpermuted (llama.cpp's "norm" rope);
  // the model type, routing and norms come from gguf-deepseek.ts.
  deepseek2: { modelType: () => "deepseek_v3", ropeInterleaved: false, normTopk: false },
};

export const SUPPORTED_GGUF_ARCHS = Object.keys(GGUF_ARCHS);

/** Hugging Face names inside a layer → llama.cpp's LLM_TENSOR_NAMES. */
const LAYER_NAMES: Record<string, string> = {
  "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v", "self_attn.o_proj": "attn_output",
  "self_attn.q_norm": "attn_q_norm", "self_attn.k_norm": "attn_k_norm",
  "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down",
  input_layernorm: "attn_norm", post_attention_layernorm: "ffn_norm",
  "block_sparse_moe.gate": "ffn_gate_inp", "mlp.gate": "ffn_gate_inp",
  "mlp.shared_expert.gate_proj": "ffn_gate_shexp", "mlp.shared_expert.up_proj": "ffn_up_shexp",
  "mlp.shared_expert.down_proj": "ffn_down_shexp", "mlp.shared_expert_gate": "ffn_gate_inp_shexp",
  // DeepSeek (deepseek2): multi-head latent attention, shared experts, the router's selection bias.
  "self_attn.q_a_proj": "attn_q_a", "self_attn.q_a_layernorm": "attn_q_a_norm", "self_attn.q_b_proj": "attn_q_b",
  "self_attn.kv_a_proj_with_mqa": "attn_kv_a_mqa", "self_attn.kv_a_layernorm": "attn_kv_a_norm",
  "self_attn.kv_b_proj": "attn_kv_b", "self_attn.k_b_proj": "attn_k_b", "self_attn.v_b_proj": "attn_v_b",
  "mlp.shared_experts.gate_proj": "ffn_gate_shexp", "mlp.shared_experts.up_proj": "ffn_up_shexp", "mlp.shared_experts.down_proj": "ffn_down_shexp",
};
/** An expert's projection (Mixtral's w1/w3/w2, Qwen's gate/up/down_proj) → the merged tensor's stem. */
const EXPERT_NAMES: Record<string, string> = {
  w1: "ffn_gate", w3: "ffn_up", w2: "ffn_down", gate_proj: "ffn_gate", up_proj: "ffn_up", down_proj: "ffn_down",
};
const GLOBAL_NAMES: Record<string, string> = {
  "model.embed_tokens.weight": "token_embd.weight",
  "model.norm.weight": "output_norm.weight",
  "lm_head.weight": "output.weight",
};

/** Where a Hugging Face tensor is in a GGUF file: a tensor, or expert `expert` of a merged one. */
export interface GgufLocation {
  readonly name: string;
  /** Expert slice of a merged [n_expert, rows, cols] tensor, or -1 for the whole tensor. */
  readonly expert: number;
  /** The per-expert tensor older files keep instead (Mixtral before merged experts). */
  readonly single?: string;
}

/** The GGUF location of a Hugging Face tensor name, or undefined when it has none. */
export function ggufLocation(hfName: string): GgufLocation | undefined {
  const global = own(GLOBAL_NAMES, hfName);
  if (global !== undefined) return { name: global, expert: -1 };
  // DeepSeek-V3's router bias is a buffer without a .weight/.bias suffix.
  const bias = /^model\.layers\.(\d+)\.mlp\.gate\.e_score_correction_bias$/.exec(hfName);
  if (bias !== null) return { name: `blk.${bias[1]}.exp_probs_b.bias`, expert: -1 };
  const m = /^model\.layers\.(\d+)\.(.+)\.(weight|bias)$/.exec(hfName);
  if (m === null) return undefined;
  const [, layer, inner, kind] = m;
  const x = /^(?:block_sparse_moe|mlp)\.experts\.(\d+)\.(\w+)$/.exec(inner!);
  if (x !== null) {
    const stem = own(EXPERT_NAMES, x[2]!);
    if (stem === undefined || kind !== "weight") return undefined;
    return { name: `blk.${layer}.${stem}_exps.weight`, expert: Number(x[1]), single: `blk.${layer}.${stem}.${x[1]}.weight` };
  }
  const mapped = own(LAYER_NAMES, inner!);
  return mapped === undefined ? undefined : { name: `blk.${layer}.${mapped}.${kind}`, expert: -1 };
}

/** The GGUF name of a Hugging Face tensor that is a whole GGUF tensor, or undefined. */
export function ggufTensorName(hfName: string): string | undefined {
  const at = ggufLocation(hfName);
  return at === undefined || at.expert >= 0 ? undefined : at.name;
}

export interface GgufModel {
  readonly config: ModelConfig;
  /** Where the config came from, for messages: the file's metadata. */
  readonly configName: string;
  /** Answers Hugging Face names; shapes are [rows, cols] (GGUF dims reversed). */
  readonly source: TensorSource;
  /** Built on first call from the file's metadata. */
  tokenizer(): TextTokenizer;
  /** q/k rows are in the interleaved-pairs layout: rotate (x[2i], x[2i+1]), not (x[i], x[i+hd/2]). */
  readonly ropeInterleaved: boolean;
  readonly chatTemplate: string | null;
  /**
   * `rope_freqs.weight` (head_dim/2 f32 divisors of the rotary frequencies, written for Llama-3.1
   * style scaling), or null. The engine must divide inv_freq[i] by it when present.
   */
  readonly ropeFreqFactors: Float32Array | null;
  close(): void;
}

export function loadGgufModel(path: string): GgufModel {
  const file = GgufFile.open(path);
  try {
    const config = ggufConfig(file);
    let tok: GgufTokenizer | undefined;
    const tokenizer = () => (tok ??= new GgufTokenizer(file));
    const template = file.get("tokenizer.chat_template");
    let ropeFreqFactors: Float32Array | null = null;
    if (file.has(ROPE_FREQS)) {
      const t = file.tensor(ROPE_FREQS);
      if (t.typeName !== "F32" || t.dims.length !== 1 || t.dims[0] !== config.headDim / 2) {
        throw new ModelFormatError(`${quote(path, 200)}: ${ROPE_FREQS} is ${t.typeName} [${t.dims.join(", ")}], expected F32 [${config.headDim / 2}]`, "The file is corrupt; download it again.");
      }
      ropeFreqFactors = new Float32Array(file.tensorBytes(ROPE_FREQS).slice().buffer);
      // Each divides a rotary frequency: a zero or NaN factor turns every rotation into NaN.
      const bad = ropeFreqFactors.findIndex((f) => !(Number.isFinite(f) && f > 0));
      if (bad >= 0) {
        throw new ModelFormatError(`${quote(path, 200)}: ${ROPE_FREQS}[${bad}] is ${ropeFreqFactors[bad]}, but every rotary frequency divisor must be a finite positive number`, "The file is corrupt; download or convert it again.");
      }
    }
    return {
      config,
      configName: `the metadata of ${quote(path, 200)}`,
      source: new GgufTensorSource(file),
      tokenizer,
      ropeInterleaved: own(GGUF_ARCHS, file.get("general.architecture"))!.ropeInterleaved,
      chatTemplate: typeof template === "string" ? template : null,
      ropeFreqFactors,
      close: () => file.close(),
    };
  } catch (e) {
    file.close();
    throw e;
  }
}

/** Read by the model loader itself (the rotary divisors), not by any plan entry. */
const ROPE_FREQS = "rope_freqs.weight";

/** TensorSource over a GgufFile, by Hugging Face name. `close()` closes the file. */
export class GgufTensorSource implements TensorSource {
  readonly #file: GgufFile;

  constructor(file: GgufFile) {
    this.#file = file;
  }

  /** The GGUF tensor holding `name`, and which expert slice of it (-1: all). */
  #find(name: string): { tensor: string; expert: number } | undefined {
    const at = ggufLocation(name);
    if (at === undefined) return undefined;
    if (this.#file.has(at.name)) return { tensor: at.name, expert: at.expert };
    if (at.single !== undefined && this.#file.has(at.single)) return { tensor: at.single, expert: -1 };
    return undefined;
  }

  has(name: string): boolean {
    return this.#find(name) !== undefined;
  }

  checkUnchanged(): void {
    this.#file.checkUnchanged();
  }

  unused(used: ReadonlySet<string>): string[] {
    const read = new Set([ROPE_FREQS]);
    for (const name of used) {
      const found = this.#find(name);
      if (found !== undefined) read.add(found.tensor);
    }
    return this.#file.tensorNames.filter((n) => !read.has(n));
  }

  get(name: string): HostTensor {
    const found = this.#find(name);
    if (found === undefined) {
      const at = ggufLocation(name);
      throw new ModelFormatError(
        `${quote(this.#file.path, 200)} has no tensor for ${quote(name)}${at === undefined ? " (no GGUF name maps to it)" : ` (looked for ${quote(at.name)}${at.single ? ` and ${quote(at.single)}` : ""})`}`,
        "The file is incomplete or of another architecture; check it with gguf-dump.",
      );
    }
    const t = this.#file.tensor(found.tensor);
    const dtype = own(GGUF_DTYPES, t.typeName)!;
    let shape = [...t.dims].reverse();
    // shared_expert_gate is [1, hidden] in the checkpoint; llama.cpp stores it as a vector.
    if (name.endsWith("mlp.shared_expert_gate.weight") && shape.length === 1) shape = [1, shape[0]!];
    // attn_k_b / attn_v_b are [n_head, rows, cols]: their head blocks stacked, as one matrix.
    if (/\.(k|v)_b_proj\.weight$/.test(name) && shape.length === 3) shape = [shape[0]! * shape[1]!, shape[2]!];
    if (found.expert < 0) return { name, dtype, shape, addr: t.addr, bytes: t.bytes, file: this.#file.path, fileOffset: t.offset };
    const [experts, ...rest] = shape;
    if (found.expert >= experts!) {
      throw new ModelFormatError(`${quote(this.#file.path, 200)}: ${quote(found.tensor)} holds ${experts} experts, not expert ${found.expert}`, "The file and its expert_count disagree; convert the model again.");
    }
    const bytes = t.bytes / experts!;
    const at = found.expert * bytes;
    return { name, dtype, shape: rest, addr: t.addr + at, bytes, file: this.#file.path, fileOffset: t.offset + at };
  }

  close(): void {
    this.#file.close();
  }
}

/** The config of a GGUF file from its `<arch>.*` metadata; every missing or inconsistent key names the file. */
export function ggufConfig(file: GgufFile): ModelConfig {
  const path = file.path;
  const bad = (what: string, hint = "Convert the model again with a current llama.cpp (convert_hf_to_gguf.py)."): never => {
    throw new ModelFormatError(`${quote(path, 200)}: ${what}`, hint);
  };
  const arch = file.get("general.architecture");
  const known = own(GGUF_ARCHS, arch);
  if (known === undefined) {
    return bad(
      `general.architecture ${show(arch ?? null)} is not supported; supported: ${SUPPORTED_GGUF_ARCHS.join(", ")}`,
      "Use the model's Hugging Face folder, or a GGUF of a supported architecture (Llama, Mistral, Mixtral, Qwen2, Qwen3, Qwen2-MoE, Qwen3-MoE).",
    );
  }
  const L = CONFIG_LIMITS;
  const value = (key: string, fallback?: number): GgufValue => {
    const v = file.get(`${arch}.${key}`) ?? fallback;
    if (v === undefined) bad(`missing ${arch}.${key}`);
    return v!;
  };
  const num = (key: string, fallback?: number): number => checkFinite(value(key, fallback), `${arch}.${key}`, bad, { above: 0 });
  const int = (key: string, fallback?: number, max: number = L.dim): number => checkInt(value(key, fallback), `${arch}.${key}`, bad, { min: 1, max });

  const hiddenSize = int("embedding_length");
  const numHeads = int("attention.head_count", undefined, L.heads);
  const numKvHeads = int("attention.head_count_kv", numHeads, L.heads);
  if (numHeads % numKvHeads !== 0) bad(`${arch}.attention.head_count ${numHeads} is not a multiple of ${arch}.attention.head_count_kv ${numKvHeads}`);
  const headDim = int("attention.key_length", Math.floor(hiddenSize / numHeads));
  // deepseek2's key_length is the compressed row's (or the expanded head's): gguf-deepseek.ts.
  if (arch !== "deepseek2") {
    if (headDim % 2 !== 0) {
      bad(file.has(`${arch}.attention.key_length`) ? `${arch}.attention.key_length ${headDim} must be even (rotary pairs)` : `the head dim ${headDim} (embedding_length ${hiddenSize} / head_count ${numHeads}; the file has no ${arch}.attention.key_length) must be even (rotary pairs)`);
    }
    const rotaryDim = int("rope.dimension_count", headDim);
    if (rotaryDim !== headDim) bad(`${arch}.rope.dimension_count ${rotaryDim} differs from the head dim ${headDim}`, "Partial rotary embeddings are not implemented.");
  }

  // The layer count sizes the plan: it must be the blocks the file holds, checked before anything is built.
  const numLayers = int("block_count", undefined, L.layers);
  const blocks = new Set<number>();
  for (const n of file.tensorNames) {
    const m = /^blk\.(\d+)\./.exec(n);
    if (m !== null) blocks.add(Number(m[1]));
  }
  const present = blocks.size === 0 ? 0 : Math.max(...blocks) + 1;
  if (present !== numLayers) {
    bad(`${arch}.block_count is ${numLayers}, but the file holds tensors of ${present} block${present === 1 ? "" : "s"} (blk.0 … blk.${Math.max(0, present - 1)})`, "The metadata and the tensors disagree; convert the model again.");
  }

  let vocabSize: number;
  if (file.has("token_embd.weight")) vocabSize = checkInt(file.tensor("token_embd.weight").dims[1], "the rows of token_embd.weight", bad, { min: 1, max: L.vocab });
  else {
    const tokens = file.get("tokenizer.ggml.tokens");
    vocabSize = Array.isArray(tokens) ? tokens.length : int("vocab_size", undefined, L.vocab);
  }

  const embDtype = file.has("token_embd.weight") ? own(GGUF_DTYPES, file.tensor("token_embd.weight").typeName) : undefined;
  const tokenId = (key: string): number | null => {
    const v = file.get(`tokenizer.ggml.${key}`);
    return v === undefined ? null : checkId(v, `tokenizer.ggml.${key}`, vocabSize, bad);
  };
  const eos = tokenId("eos_token_id");
  const experts = checkInt(file.get(`${arch}.expert_count`) ?? 0, `${arch}.expert_count`, bad, { min: 0, max: L.experts });
  const modelType = known.modelType(experts);
  const ffn = int("feed_forward_length");
  // A layer is sparse where it has a router (Qwen-MoE checkpoints may keep dense layers).
  const sparseLayers = Array.from({ length: numLayers }, (_, i) => experts > 0 && file.has(`blk.${i}.ffn_gate_inp.weight`));
  // The plan lists every expert of every sparse layer: the count must be the experts the file holds.
  const first = sparseLayers.indexOf(true);
  if (first >= 0) {
    const merged = `blk.${first}.ffn_gate_exps.weight`;
    const held = file.has(merged) ? (file.tensor(merged).dims[2] ?? 1) : file.has(`blk.${first}.ffn_gate.${experts - 1}.weight`) && !file.has(`blk.${first}.ffn_gate.${experts}.weight`) ? experts : -1;
    if (held !== experts) {
      bad(`${arch}.expert_count is ${experts}, but ${held >= 0 ? `${quote(merged)} holds ${held}` : `blk.${first} does not hold experts 0 … ${experts - 1}`}`, "The metadata and the tensors disagree; convert the model again.");
    }
  }
  const common = {
    hiddenSize,
    numLayers,
    numHeads,
    vocabSize,
    maxPositionEmbeddings: int("context_length", 2048, L.positions),
    rmsNormEps: num("attention.layer_norm_rms_epsilon"),
    ropeTheta: num("rope.freq_base", 10000),
    tieWordEmbeddings: !file.has("output.weight"),
    torchDtype: embDtype === "f32" || embDtype === "f16" || embDtype === "bf16" ? embDtype : null,
    bosTokenId: tokenId("bos_token_id"),
    eosTokenIds: eos === null ? [] : [eos],
    padTokenId: tokenId("padding_token_id"),
  };
  if (arch === "deepseek2") return deepseekGgufConfig(file, common, { experts, ffn, sparseLayers, int, bad });
  const moe = experts > 0
    ? {
        numExperts: experts,
        topK: int("expert_used_count", undefined, experts),
        expertIntermediate: int("expert_feed_forward_length", ffn),
        normTopkProb: known.normTopk,
        sparseLayers,
        sharedExpertIntermediate: file.has("blk.0.ffn_up_shexp.weight") || sparseLayers.some((s, i) => s && file.has(`blk.${i}.ffn_up_shexp.weight`))
          ? int("expert_shared_feed_forward_length")
          : 0,
      }
    : undefined;
  return {
    ...common,
    modelType,
    arch: architectureFor(modelType)!.name,
    intermediateSize: ffn,
    numKvHeads,
    headDim,
    ropeScaling: ropeScaling(file, arch as string, bad),
    slidingWindow: null,
    layerWindows: new Array(numLayers).fill(0),
    attentionBias: file.has("blk.0.attn_q.bias"),
    attentionOutBias: file.has("blk.0.attn_output.bias"),
    mlpBias: file.has("blk.0.ffn_up.bias"),
    ...(moe ? { moe } : {}),
  };
}

export function ropeScaling(file: GgufFile, arch: string, bad: (what: string, hint?: string) => never, o: { readonly yarn?: boolean } = {}): RopeScaling {
  const type = file.get(`${arch}.rope.scaling.type`);
  // Files from before rope.scaling.* carry a bare linear factor.
  const legacy = file.get(`${arch}.rope.scale_linear`);
  if (type === undefined || type === "none") {
    if (legacy === undefined) return null;
    // Every frequency is divided by it: NaN, 0 or a negative factor turns the rotations into garbage.
    const factor = checkFinite(legacy, `${arch}.rope.scale_linear`, bad, { above: 0 });
    return factor === 1 ? null : { type: "linear", factor };
  }
  if (type === "yarn" && o.yarn) return yarnScaling(file, arch, bad);
  if (type !== "linear") {
    bad(`${arch}.rope.scaling.type ${show(type)} is not supported; supported: "none", "linear"${o.yarn ? ", \"yarn\"" : ""}`, "YaRN scaling is implemented for DeepSeek only; use a model without it.");
  }
  const factor = checkFinite(file.get(`${arch}.rope.scaling.factor`), `${arch}.rope.scaling.factor`, bad, { above: 0 });
  return factor === 1 ? null : { type: "linear", factor };
}

/**
 * YaRN as llama.cpp's deepseek2 reads it: factor, original_context_length, beta_fast / beta_slow
 * (32 and 1 unless given), and yarn_log_multiplier, which its converter writes as
 * 0.1 · mscale_all_dim. llama.cpp scales the softmax by mscale(factor, mscale_all_dim)² and
 * rotates unscaled, i.e. mscale = mscale_all_dim, as DeepSeek-V3 ships.
 */
function yarnScaling(file: GgufFile, arch: string, bad: (what: string, hint?: string) => never): RopeScaling {
  const positive = (key: string, fallback?: number): number =>
    checkFinite(file.get(`${arch}.rope.scaling.${key}`) ?? fallback, `${arch}.rope.scaling.${key}`, bad, { above: 0 });
  const logMul = checkFinite(file.get(`${arch}.rope.scaling.yarn_log_multiplier`) ?? 0, `${arch}.rope.scaling.yarn_log_multiplier`, bad, { min: 0 });
  const mscaleAllDim = logMul / 0.1;
  return {
    type: "yarn",
    factor: positive("factor"),
    originalMaxPositionEmbeddings: positive("original_context_length"),
    betaFast: positive("yarn_beta_fast", 32),
    betaSlow: positive("yarn_beta_slow", 1),
    mscale: mscaleAllDim,
    mscaleAllDim,
    attentionFactor: null,
    truncate: true,
  };
}
