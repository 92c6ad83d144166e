// The one small interface every compute backend implements (ggml-backend style): buffers,
// uploads, and the ops a decoder layer needs. The engine and the streamer only ever see this;
// they branch on `caps`, never on `name`.
//
// Conventions shared by every backend (the CPU backend is the reference):
// - Addresses are plain numbers: host addresses on the CPU backend, CUdeviceptr on CUDA. Both
//   fit in 53 bits on x86-64 Linux. Address arithmetic (base + byte offset) is the caller's.
// - Activations are f32, row-major, tokens along the rows: x[T, n] is T rows of n floats.
// - Weights are row-major [rows, cols] in f32, f16 or bf16 (Hugging Face `nn.Linear` layout:
//   out_features rows, in_features cols), or in a GGUF block-quantized type (each row a whole
//   number of blocks, decoded where it is used); every op accumulates in f32.
// - Ops are enqueued in order; `sync()` waits for all of them. A download is synchronous.

/** Element types with a size per element. */
export type FloatDType = "f32" | "f16" | "bf16";
/** GGUF (ggml) block-quantized types: blocks of 32 (legacy, iq4_nl) or 256 (K-quants, i-quants) weights. */
export type GgufQuantDType = "q8_0" | "q4_0" | "q4_1" | "q5_0" | "q5_1" | "q2_k" | "q3_k" | "q4_k" | "q5_k" | "q6_k" | IQuantDType;
/** llama.cpp's i-quants (lattice codebooks, non-linear levels) and ternary types (zig-src/cpu/quant_iq.zig). */
export type IQuantDType = "iq2_xxs" | "iq2_xs" | "iq2_s" | "iq3_xxs" | "iq3_s" | "iq1_s" | "iq1_m" | "iq4_nl" | "iq4_xs" | "tq1_0" | "tq2_0";
/**
 * AirLLM's compression in bitsandbytes' layouts (zig-src/cpu/quant_bnb.zig): nf4 = 64-weight
 * blocks of f32 absmax + 32 bytes of NF4 nibbles; q8_block = 64-weight blocks of f32 absmax +
 * 64 codes of a linear map (symmetric int8 + 128). Blocks run over the flattened tensor (a block
 * may span rows, the last may be short), exactly like bitsandbytes', so any shape compresses.
 */
export type BnbDType = "nf4" | "q8_block";
export type QuantDType = GgufQuantDType | BnbDType;
export type DType = FloatDType | QuantDType;

/** Numeric codes passed across the native boundary (zig-src/dtype.zig has the same values). */
export const DTYPE_CODE: Record<DType, number> = {
  f32: 0, f16: 1, bf16: 2,
  q8_0: 8, q4_0: 9, q4_1: 10, q5_0: 11, q5_1: 12, q2_k: 13, q3_k: 14, q4_k: 15, q5_k: 16, q6_k: 17,
  nf4: 20, q8_block: 21,
  iq2_xxs: 30, iq2_xs: 31, iq2_s: 32, iq3_xxs: 33, iq3_s: 34, iq1_s: 35, iq1_m: 36, iq4_nl: 37, iq4_xs: 38, tq1_0: 39, tq2_0: 40,
};

/** Bytes per element; only float types have one (quantized ones: see `blockLayout`). */
export const DTYPE_BYTES: Record<FloatDType, number> = { f32: 4, f16: 2, bf16: 2 };

/** Weights per block and bytes per block (ggml's GGML_QUANT_SIZES). */
export const QUANT_BLOCKS: Record<QuantDType, { readonly elements: number; readonly bytes: number }> = {
  q8_0: { elements: 32, bytes: 34 },
  q4_0: { elements: 32, bytes: 18 },
  q4_1: { elements: 32, bytes: 20 },
  q5_0: { elements: 32, bytes: 22 },
  q5_1: { elements: 32, bytes: 24 },
  q2_k: { elements: 256, bytes: 84 },
  q3_k: { elements: 256, bytes: 110 },
  q4_k: { elements: 256, bytes: 144 },
  q5_k: { elements: 256, bytes: 176 },
  q6_k: { elements: 256, bytes: 210 },
  nf4: { elements: 64, bytes: 36 },
  q8_block: { elements: 64, bytes: 68 },
  iq2_xxs: { elements: 256, bytes: 66 },
  iq2_xs: { elements: 256, bytes: 74 },
  iq2_s: { elements: 256, bytes: 82 },
  iq3_xxs: { elements: 256, bytes: 98 },
  iq3_s: { elements: 256, bytes: 110 },
  iq1_s: { elements: 256, bytes: 50 },
  iq1_m: { elements: 256, bytes: 56 },
  iq4_nl: { elements: 32, bytes: 18 },
  iq4_xs: { elements: 256, bytes: 136 },
  tq1_0: { elements: 256, bytes: 54 },
  tq2_0: { elements: 256, bytes: 66 },
};

export function isBnb(dtype: DType): dtype is BnbDType {
  return dtype === "nf4" || dtype === "q8_block";
}

export function isQuantized(dtype: DType): dtype is QuantDType {
  return dtype in QUANT_BLOCKS;
}

/** Block geometry of any dtype (a float type is a block of one element). */
export function blockLayout(dtype: DType): { readonly elements: number; readonly bytes: number } {
  return isQuantized(dtype) ? QUANT_BLOCKS[dtype] : { elements: 1, bytes: DTYPE_BYTES[dtype] };
}

/**
 * Bytes of a row-major tensor of `shape` in `dtype`. GGUF quantized tensors store each row (the
 * last dimension) as whole blocks: a row length that is not a multiple of the block is an error.
 */
export function tensorBytes(dtype: DType, shape: readonly number[]): number {
  const { elements, bytes } = blockLayout(dtype);
  if (isBnb(dtype)) {
    // Flattened blocks; a short last block keeps its absmax and only its own codes.
    const n = shape.reduce((a, b) => a * b, 1);
    const rem = n % elements;
    return Math.floor(n / elements) * bytes + (rem === 0 ? 0 : 4 + (dtype === "nf4" ? Math.ceil(rem / 2) : rem));
  }
  const cols = shape.length === 0 ? 1 : shape[shape.length - 1]!;
  if (cols % elements !== 0) {
    throw new RangeError(`a ${dtype} tensor of shape [${shape}] has rows of ${cols} weights, not a multiple of its ${elements}-weight block`);
  }
  const count = shape.reduce((a, b) => a * b, 1);
  return (count / elements) * bytes;
}

/** A weight tensor as a backend sees it: where it lives and how to read it. */
export interface Weight {
  readonly addr: number;
  readonly dtype: DType;
  /** [rows, cols] for matrices, [n] for vectors (norm weights, biases). */
  readonly shape: readonly number[];
}

/** Uploads run on the "upload" queue, ops and device copies on the "compute" queue. */
export type Queue = "upload" | "compute";

/** Opaque event handle (a CUevent on CUDA; a counter on the synchronous CPU backend). */
export type BackendEvent = number;

export interface BackendCaps {
  /** Ops can read weights straight from host memory (an mmap of the file): no upload needed. */
  readonly readsHostMemory: boolean;
  /** `upload` returns before the copy finishes; order it with `record`/`waitOn`. */
  readonly asyncUpload: boolean;
  /** `allocHost` returns page-locked memory (faster, asynchronous uploads). */
  readonly pinnedHost: boolean;
}

/** Geometry of one attention call over one sequence's KV cache. */
export interface AttentionShape {
  /** Query tokens in this call (prefill: prompt length; decode: 1). */
  readonly T: number;
  readonly nHeads: number;
  readonly nKvHeads: number;
  readonly headDim: number;
  /** Position of the first query token; its keys are already stored at this index in the cache. */
  readonly pos0: number;
  /** Sliding window (keys at positions > p - window are visible to position p); 0 = unlimited. */
  readonly window: number;
  /** Softmax scale, usually 1/sqrt(headDim). */
  readonly scale: number;
  /**
   * ALiBi (Baichuan2-13B): device address of f32 slopes [nHeads]; query head h at position p adds
   * slopes[h] · (j - p) to its score of key j. 0 or absent: none.
   */
  readonly alibiSlopes?: number;
  /**
   * Tree attention (speculative decoding's draft trees): device address of int32 [2T], the T rows
   * being a tree in depth-first preorder (row 0 its root) — depth[0..T) (row t sits at position
   * pos0 + depth[t], depth[0] = 0), then end[0..T) (row r's subtree is rows r .. end[r]-1, end[0]
   * = T). Row t sees keys 0 .. pos0-1 and the rows r with r ≤ t < end[r] (its ancestors and
   * itself); ALiBi and the window measure positions, not slots. 0 or absent: causal rows at pos0 + t.
   */
  readonly tree?: number;
}

/** Element types a KV cache can be stored in (f16 by default, as llama.cpp). */
export type KvDType = FloatDType;

/**
 * One layer of the paged KV pool, as one sequence sees it (vLLM's PagedAttention layout). The pool
 * is cut into pages of `pageSize` token slots; this layer's key row for page p, slot s starts at
 * k + (p * pageSize + s) * width * bytes(dtype), where width = nKvHeads * headDim; value rows
 * likewise from v. Position j of the sequence lives in page pageTable[floor(j / pageSize)], slot
 * j % pageSize. One page id indexes every layer, so one table serves the whole model.
 */
export interface PagedKv {
  readonly k: number;
  readonly v: number;
  readonly dtype: KvDType;
  /** Token slots per page (≥ 1). */
  readonly pageSize: number;
  /** Address (device memory; host memory on the CPU) of the sequence's page table: int32 page ids. */
  readonly pageTable: number;
}

/** How router logits become expert scores. */
export type RouterScoring = "softmax" | "sigmoid";

/** Mixture-of-experts routing of one layer (see Backend.moeRoute for the exact rule). */
export interface RouteOptions {
  /** Experts E: the width of a row of router logits. */
  readonly experts: number;
  /** Experts chosen per row, k ≤ E. */
  readonly topK: number;
  readonly scoring: RouterScoring;
  /** Divide the k weights by (their sum + 1e-20). */
  readonly normalize: boolean;
  /** Multiplies the final weights (DeepSeek's routed_scaling_factor; 1 elsewhere). */
  readonly scale: number;
  /** f32/f16/bf16 [E], added to the scores for choosing experts only (DeepSeek-V3's e_score_correction_bias). */
  readonly selectionBias?: Weight | null;
  /**
   * Group-limited routing (DeepSeek): the E experts form `count` equal groups of consecutive ids;
   * each group's score is its largest choice score ("max", V2's group_limited_greedy) or the sum of
   * its two largest ("top2sum", V3's noaux_tc); only experts in the `topk` best groups can be chosen.
   */
  readonly groups?: { readonly count: number; readonly topk: number; readonly rule: "max" | "top2sum" } | null;
}

/**
 * Per-head products against head blocks of one matrix (a strided batched matmul; Backend.matmulHeads).
 * Head h of token t reads x at t·xStride + h·xHead floats and writes out at t·outStride + h·outHead;
 * its weight block is rows [h·wHeadRows, h·wHeadRows + rows) of w, each row `cols` wide.
 */
export interface HeadsShape {
  readonly T: number;
  readonly heads: number;
  readonly rows: number;
  readonly cols: number;
  readonly wHeadRows: number;
  /** false: out[r] = Σ_c x[c]·W[r, c] (r < rows); true: out[c] = Σ_r x[r]·W[r, c] (c < cols). */
  readonly transposed: boolean;
  readonly xStride: number;
  readonly xHead: number;
  readonly outStride: number;
  readonly outHead: number;
}

export interface Backend {
  readonly name: "cpu" | "cuda";
  readonly caps: BackendCaps;

  /** Device memory (host memory on the CPU backend). Freed with `free`. */
  alloc(bytes: number): number;
  free(addr: number): void;
  /** Host memory suited to `upload` sources (pinned where caps.pinnedHost). Freed with `freeHost`. */
  allocHost(bytes: number): number;
  freeHost(addr: number): void;

  /** Copy `bytes` from host address `src` to device address `dst`. */
  upload(dst: number, src: number, bytes: number): void;
  /** Copy `bytes` from device address `src` into `dst` (synchronous; waits for queued ops). */
  download(dst: Float32Array | Uint8Array, src: number, bytes: number): void;
  /** Device-to-device copy, ordered with the ops. */
  copy(dst: number, src: number, bytes: number): void;
  /** Copy a host typed array to device memory (small things: token ids, inv_freq). */
  write(dst: number, src: Float32Array | Int32Array): void;
  /** Wait for every queued op and upload. */
  sync(): void;

  // --- ordering between the upload queue and the compute queue (no-ops where both are one) ---
  /** An event marking everything queued so far on `queue`. Release it with `releaseEvent`. */
  record(queue: Queue): BackendEvent;
  /** Work queued on `queue` after this call starts only once `event` has completed (no host wait). */
  waitOn(queue: Queue, event: BackendEvent): void;
  /** Block the host until `event` has completed. */
  waitHost(event: BackendEvent): void;
  releaseEvent(event: BackendEvent): void;

  // --- ops (all outputs f32) ---
  /** out[t, :] = table[ids[t], :] for t < ids.length (ids on the host). */
  embedding(out: number, table: Weight, ids: Int32Array): void;
  /**
   * out[T, rows] = x[T, cols] · wᵀ (T = 1 is the decode matvec). out must not alias x. Row t of
   * the output starts at out + t * ldOut floats (ldOut ≥ rows, default rows): a row chunk of a
   * larger matrix writes its columns of the whole output in place.
   */
  matmul(out: number, x: number, w: Weight, T: number, ldOut?: number): void;
  /** x[t, :] += bias for t < T. */
  addBias(x: number, bias: Weight, T: number): void;
  /** out[t, :] = x[t, :] / rms(x[t, :]) * w. out may alias x. */
  rmsnorm(out: number, x: number, w: Weight, T: number, eps: number): void;
  /**
   * Rotary embedding in place on the first `rotaryDim` elements of each head (default: all
   * headDim; ChatGLM rotates half), the rest untouched. Hugging Face rotate-half layout: pair i
   * with i + rotaryDim/2, angle = (pos0 + t) * invFreq[i] (invFreq: device f32 [rotaryDim/2],
   * scaling already folded in), then both elements are multiplied by attnFactor.
   * `interleaved`: pair 2i with 2i + 1 instead (llama.cpp's GGUF files store q/k rows that way,
   * and ChatGLM computes its rotary that way).
   */
  rope(x: number, T: number, nHeads: number, headDim: number, pos0: number, invFreq: number, attnFactor: number, interleaved?: boolean, rotaryDim?: number): void;
  /**
   * Stores k[T, width] and v[T, width] (f32 rows) at positions pos0 .. pos0+T-1 of the paged cache,
   * converted to kv.dtype (round to nearest even). The pages must already be in the page table.
   */
  storeKv(kv: PagedKv, k: number, v: number, pos0: number, T: number, width: number): void;
  /**
   * Causal grouped-query attention of q[T, nHeads*headDim] over this sequence's paged cache
   * (slots 0 .. pos0+T-1 stored, width nKvHeads*headDim), into out[T, nHeads*headDim], or tree
   * attention where shape.tree is set. Keys
   * and values are read in kv.dtype and widened to f32; the result does not depend on pageSize.
   */
  attention(out: number, q: number, kv: PagedKv, shape: AttentionShape): void;
  /** out[i] = silu(gate[i]) * up[i] for i < n. out may alias gate. */
  swiglu(out: number, gate: number, up: number, n: number): void;
  /** out[i] = a[i] + b[i]. out may alias a. */
  add(out: number, a: number, b: number, n: number): void;
  /** Row-wise softmax in place over rows × n. */
  softmax(x: number, rows: number, n: number): void;
  /** x[t, :] *= scales[t] for t < T, rows of n floats; scales: device f32 [T] (Qwen's logn query scaling). */
  scaleRows(x: number, scales: number, T: number, n: number): void;
  /** x[t, :] *= scales (one factor per column) for t < T (Baichuan2's row-normalized head). */
  scaleColumns(x: number, scales: Weight, T: number): void;

  // --- mixture of experts ---
  /**
   * Routing of N rows of router logits[N, E] (f32). Per row: scores = softmax over all E (f32) or
   * sigmoid of each logit; choice scores = scores + selectionBias (when given); with groups, the
   * experts outside the best groups are excluded; the k largest choice scores (ties: lower id
   * first) are chosen, in descending order. ids[N, k] (int32) gets their ids, weights[N, k] (f32)
   * their *scores* (without the bias), divided by (sum + 1e-20) when normalize, times scale.
   */
  moeRoute(ids: number, weights: number, logits: number, N: number, opts: RouteOptions): void;
  // --- strided ops (multi-head latent attention) ---
  /**
   * Per-head products of strided activations with head blocks of `w` (HeadsShape); f32
   * accumulation. `w` is a whole matrix (any float or GGUF dtype) starting at its head 0 block.
   */
  matmulHeads(out: number, x: number, w: Weight, shape: HeadsShape): void;
  /** dst[i·dstStride + j] = src[i·srcStride + j] for i < rows, j < width (f32 rows; must not overlap). */
  copyRows(dst: number, dstStride: number, src: number, srcStride: number, rows: number, width: number): void;

  /** out[i, :] = x[rows[i], :] for i < rows.length; rows of `width` f32 (rows on the host). */
  gatherRows(out: number, x: number, rows: Int32Array, width: number): void;
  /** x[rows[i], :] += scales[i] * src[i, :] for i < rows.length; rows distinct (host arrays). */
  scatterAddRows(x: number, src: number, rows: Int32Array, scales: Float32Array, width: number): void;

  // --- fused decode ops (optional) ---
  // Each is exactly the composition of plain ops its comment names, done in one pass over the
  // weights (on a GPU every launch has a fixed cost of a few µs, and a decode step is hundreds of
  // them). A backend returns false where it has no kernel for the arguments (weight types, T):
  // the caller then runs the plain ops. The CPU backend, the reference, has none.
  /** outs[i][T, rows_i] = x · ws[i]ᵀ for each i (q, k and v from one normed x). */
  matmulShared?(outs: readonly number[], x: number, ws: readonly Weight[], T: number): boolean;
  /** out[T, rows] += x · wᵀ (matmul into a temporary, then add). out must not alias x. */
  matmulAccumulate?(out: number, x: number, w: Weight, T: number): boolean;
  /** out[T, rows] = silu(x · gateᵀ) * (x · upᵀ) (two matmuls, then swiglu). out must not alias x. */
  swigluMatmul?(out: number, x: number, gate: Weight, up: Weight, T: number): boolean;

  /** Free and total device memory in bytes, where the backend can tell (CUDA: cuMemGetInfo). */
  memInfo?(): { free: number; total: number };

  /** Release everything this backend allocated. Idempotent. */
  destroy(): void;
}
