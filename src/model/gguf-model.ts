// A .gguf file as the engine sees a Hugging Face folder: a ModelConfig from `llama.*` metadata, a
// TensorSource that answers Hugging Face tensor names from GGUF names, and the embedded tokenizer.
//
// RoPE layout. llama.cpp's converters (convert_hf_to_gguf.py LlamaModel.permute) store q_proj and
// k_proj rows permuted per head, from Hugging Face's rotate-half layout to Meta's original
// interleaved one:
//   gguf = hf.reshape(n_head, 2, head_dim / 2, cols).swapaxes(1, 2).reshape(rows, cols)
// (n_head = head_count_kv for k). Within head h, GGUF row h·hd + 2i + j holds HF row
// h·hd + j·hd/2 + i (i < hd/2, j ∈ {0, 1}). So rotary pair i is rows (2i, 2i+1) in the file and
// rows (i, i + hd/2) in HF. The rows are not un-permuted here (that would copy every q/k weight,
// and quantized blocks straddle rows' halves); instead `ropeInterleaved: true` tells the engine to
// rotate adjacent pairs (x[2i], x[2i+1]) by θ_i, which yields the same attention scores since
// q·k is invariant under applying the same permutation to both. v, o and the MLP are unpermuted.

import type { DType } from "../backend/backend.ts";
import type { HostTensor, TensorSource } from "../engine/tensor-source.ts";
import { ModelFormatError } from "../errors.ts";
import { GgufFile } from "../formats/gguf.ts";
import { GgufTokenizer } from "../tokenizer/gguf-tokenizer.ts";
import type { TextTokenizer } from "../tokenizer/text-tokenizer.ts";
import type { ModelConfig, RopeScaling } from "./config.ts";

export const SUPPORTED_GGUF_ARCHS = ["llama"];

/** GGUF type name → our dtype name (GgufFile refuses every other type by name). */
const GGUF_DTYPES: Record<string, DType> = {
  F32: "f32", F16: "f16", BF16: "bf16",
  Q8_0: "q8_0", Q4_0: "q4_0", Q4_1: "q4_1", Q5_0: "q5_0", Q5_1: "q5_1",
  Q2_K: "q2_k", Q3_K: "q3_k", Q4_K: "q4_k", Q5_K: "q5_k", Q6_K: "q6_k",
};

/** Hugging Face names of the llama block → GGUF names (llama.cpp's LLM_TENSOR_NAMES for llama). */
const LAYER_NAMES: Record<string, string> = {
  "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v", "self_attn.o_proj": "attn_output",
  "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down",
  input_layernorm: "attn_norm", post_attention_layernorm: "ffn_norm",
};
const GLOBAL_NAMES: Record<string, string> = {
  "model.embed_tokens.weight": "token_embd.weight",
  "model.norm.weight": "output_norm.weight",
  "lm_head.weight": "output.weight",
};

/** The GGUF name of a Hugging Face llama tensor name, or undefined when it has none. */
export function ggufTensorName(hfName: string): string | undefined {
  const global = GLOBAL_NAMES[hfName];
  if (global !== undefined) return global;
  const m = /^model\.layers\.(\d+)\.(.+)\.(weight|bias)$/.exec(hfName);
  const mapped = m === null ? undefined : LAYER_NAMES[m[2]!];
  return mapped === undefined ? undefined : `blk.${m![1]}.${mapped}.${m![3]}`;
}

export interface GgufModel {
  readonly config: ModelConfig;
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
    if (file.has("rope_freqs.weight")) {
      const t = file.tensor("rope_freqs.weight");
      if (t.typeName !== "F32" || t.dims.length !== 1 || t.dims[0] !== config.headDim / 2) {
        throw new ModelFormatError(`"${path}": rope_freqs.weight is ${t.typeName} [${t.dims.join(", ")}], expected F32 [${config.headDim / 2}]`, "The file is corrupt; download it again.");
      }
      ropeFreqFactors = new Float32Array(file.tensorBytes("rope_freqs.weight").slice().buffer);
    }
    return {
      config,
      source: new GgufTensorSource(file),
      tokenizer,
      ropeInterleaved: true,
      chatTemplate: typeof template === "string" ? template : null,
      ropeFreqFactors,
      close: () => file.close(),
    };
  } catch (e) {
    file.close();
    throw e;
  }
}

/** TensorSource over a GgufFile, by Hugging Face name. `close()` closes the file. */
export class GgufTensorSource implements TensorSource {
  readonly #file: GgufFile;

  constructor(file: GgufFile) {
    this.#file = file;
  }

  has(name: string): boolean {
    const g = ggufTensorName(name);
    return g !== undefined && this.#file.has(g);
  }

  get(name: string): HostTensor {
    const g = ggufTensorName(name);
    if (g === undefined || !this.#file.has(g)) {
      throw new ModelFormatError(
        `"${this.#file.path}" has no tensor for "${name}"${g === undefined ? " (no GGUF name maps to it)" : ` (looked for "${g}")`}`,
        "The file is incomplete or not a llama model; check it with gguf-dump.",
      );
    }
    const t = this.#file.tensor(g);
    return {
      name,
      dtype: GGUF_DTYPES[t.typeName]!,
      shape: [...t.dims].reverse(),
      addr: t.addr,
      bytes: t.bytes,
      file: this.#file.path,
      fileOffset: t.offset,
    };
  }

  close(): void {
    this.#file.close();
  }
}

/** ModelConfig from `llama.*` metadata; every missing or inconsistent key names the file. */
export function ggufConfig(file: GgufFile): ModelConfig {
  const path = file.path;
  const bad = (what: string, hint = "Convert the model again with a current llama.cpp (convert_hf_to_gguf.py)."): never => {
    throw new ModelFormatError(`"${path}": ${what}`, hint);
  };
  const arch = file.get("general.architecture");
  if (arch !== "llama") {
    bad(
      `general.architecture ${JSON.stringify(arch ?? null)} is not supported; supported: ${SUPPORTED_GGUF_ARCHS.join(", ")}`,
      "Use the model's Hugging Face folder, or a GGUF of a Llama-architecture model (Llama, Mistral, TinyLlama, ...).",
    );
  }
  const num = (key: string, fallback?: number): number => {
    const v = file.get(`llama.${key}`) ?? fallback;
    if (v === undefined) bad(`missing llama.${key}`);
    if (typeof v !== "number" || !Number.isFinite(v) || v <= 0) bad(`llama.${key} must be a positive number, got ${String(v)}`);
    return v as number;
  };
  const int = (key: string, fallback?: number): number => {
    const v = num(key, fallback);
    if (!Number.isSafeInteger(v)) bad(`llama.${key} must be an integer, got ${v}`);
    return v;
  };

  const hiddenSize = int("embedding_length");
  const numHeads = int("attention.head_count");
  const numKvHeads = int("attention.head_count_kv", numHeads);
  if (numHeads % numKvHeads !== 0) bad(`attention.head_count ${numHeads} is not a multiple of head_count_kv ${numKvHeads}`);
  const headDim = int("attention.key_length", Math.floor(hiddenSize / numHeads));
  if (headDim % 2 !== 0) bad(`head dim ${headDim} must be even (rotary pairs)`);
  const rotaryDim = int("rope.dimension_count", headDim);
  if (rotaryDim !== headDim) bad(`rope.dimension_count ${rotaryDim} differs from the head dim ${headDim}`, "Partial rotary embeddings are not implemented.");

  let vocabSize: number;
  if (file.has("token_embd.weight")) vocabSize = file.tensor("token_embd.weight").dims[1] ?? 0;
  else {
    const tokens = file.get("tokenizer.ggml.tokens");
    vocabSize = Array.isArray(tokens) ? tokens.length : int("vocab_size");
  }

  const embDtype = file.has("token_embd.weight") ? GGUF_DTYPES[file.tensor("token_embd.weight").typeName] : undefined;
  const tokenId = (key: string): number | null => {
    const v = file.get(`tokenizer.ggml.${key}`);
    return typeof v === "number" && Number.isSafeInteger(v) && v >= 0 ? v : null;
  };
  const eos = tokenId("eos_token_id");
  const numLayers = int("block_count");
  return {
    modelType: "llama",
    arch: "llama",
    hiddenSize,
    intermediateSize: int("feed_forward_length"),
    numLayers,
    numHeads,
    numKvHeads,
    headDim,
    vocabSize,
    maxPositionEmbeddings: int("context_length", 2048),
    rmsNormEps: num("attention.layer_norm_rms_epsilon"),
    ropeTheta: num("rope.freq_base", 10000),
    ropeScaling: ropeScaling(file, bad),
    slidingWindow: null,
    layerWindows: new Array(numLayers).fill(0),
    attentionBias: file.has("blk.0.attn_q.bias"),
    attentionOutBias: file.has("blk.0.attn_output.bias"),
    mlpBias: file.has("blk.0.ffn_up.bias"),
    tieWordEmbeddings: !file.has("output.weight"),
    torchDtype: embDtype === "f32" || embDtype === "f16" || embDtype === "bf16" ? embDtype : null,
    bosTokenId: tokenId("bos_token_id"),
    eosTokenIds: eos === null ? [] : [eos],
    padTokenId: tokenId("padding_token_id"),
  };
}

function ropeScaling(file: GgufFile, bad: (what: string, hint?: string) => never): RopeScaling {
  const type = file.get("llama.rope.scaling.type");
  // Files from before rope.scaling.* carry a bare linear factor.
  const legacy = file.get("llama.rope.scale_linear");
  if (type === undefined || type === "none") {
    return typeof legacy === "number" && legacy !== 1 ? { type: "linear", factor: legacy } : null;
  }
  if (type !== "linear") {
    bad(`llama.rope.scaling.type "${String(type)}" is not supported; supported: none, linear`, "YaRN scaling is not implemented; use a model without it.");
  }
  const factor = file.get("llama.rope.scaling.factor");
  if (typeof factor !== "number" || !(factor > 0)) bad(`llama.rope.scaling.factor must be a positive number, got ${String(factor)}`);
  return factor === 1 ? null : { type: "linear", factor: factor as number };
}
