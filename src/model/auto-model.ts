// AutoModel.from_pretrained (AirLLM's entry point): read config and tokenizer, map the weights,
// build the architecture and check the weights against it, pick a backend, plan the memory, build
// the engine.
import { freemem } from "node:os";
import type { Backend, KvDType } from "../backend/backend.ts";
import { selectBackend, type DeviceChoice } from "../backend/select.ts";
import { Engine } from "../engine/engine.ts";
import { PREFILL_CHUNK } from "../engine/generate.ts";
import { DEFAULT_PAGE_SIZE, KvPool } from "../engine/kv/kv-pool.ts";
import { LayerStreamer } from "../engine/layer-streamer.ts";
import type { MemoryPlan } from "../engine/memory-plan.ts";
import { checkPlanShapes, HostMappedWeights, type WeightProvider } from "../engine/weight-provider.ts";
import { UsageError } from "../errors.ts";
import type { Compression, SplitProgress } from "../split/split-model.ts";
import { parseSize } from "../util/size.ts";
import type { TextTokenizer } from "../tokenizer/text-tokenizer.ts";
import { chatTemplateFromFile } from "../tokenizer/chat-template.ts";
import { architectureNamed } from "./arch/index.ts";
import { CausalLM } from "./causal-lm.ts";
import { planLoad, type DeviceKind, type MoeStreaming } from "./load-plan.ts";
import { openModelSource } from "./model-source.ts";
import { rowNorms } from "./row-norms.ts";

export interface FromPretrainedOptions {
  /** "auto" (default): CUDA when a GPU and driver are present, else the CPU with a notice. */
  readonly device?: DeviceChoice;
  /** CPU threads (default: all cores). */
  readonly threads?: number;
  /**
   * Positions one sequence may hold: the KV pool is sized for it (default: min(max_position_embeddings,
   * 4096)). Under a budget too small for it the context shrinks to what fits.
   */
  readonly max_seq_len?: number;
  /** The fewest positions acceptable when the context has to shrink (default 1). */
  readonly min_seq_len?: number;
  /** Element type of the KV cache: "f16" (default, as llama.cpp), "bf16" or "f32". */
  readonly kv_dtype?: KvDType;
  /** Token slots per KV page (default 16). */
  readonly kv_page_size?: number;
  /** Device memory budget ("4GiB" or bytes): weights, KV cache and activations all inside it. */
  readonly max_gpu_memory?: number | string;
  /**
   * CPU only: RAM budget ("256MiB" or bytes) for resident weights, the streaming ring, KV cache and
   * activations; what does not fit is read from the weight files on every pass. Without it the
   * CPU reads the file mapping directly (the whole model resident in the page cache).
   */
  readonly max_memory?: number | string;
  /** Pinned host RAM for streamed weights (default: half the free RAM). */
  readonly max_host_cache?: number | string;
  /** Streaming slot size ("64MiB" or bytes) instead of the planner's choice. */
  readonly chunk_size?: number | string;
  /** Memory for the LRU expert cache of MoE models instead of the planner's default. */
  readonly expert_cache?: number | string;
  /**
   * MoE: guess the next layer's experts from this layer's hidden state and fetch them early
   * (mixtral-offloading's speculative loading). A wrong guess costs bytes and may evict a cached
   * expert. Default: on where uploads run asynchronously beside compute (CUDA); off on the CPU,
   * whose reads share the cores with compute — measured there, guessing made decode 20% slower
   * (bench/RESULTS.md, MoE streaming).
   */
  readonly expert_prediction?: boolean;
  /**
   * MoE: "experts" (default) fetches only the experts a pass routes to; "layers" streams every
   * expert with its layer, as AirLLM does (for comparison).
   */
  readonly moe_streaming?: MoeStreaming;
  /** AirLLM's `prefetching` (default true): upload the next chunk while this one computes. */
  readonly prefetching?: boolean;
  /** Chunks fetched ahead when prefetching (default 1). */
  readonly prefetch_depth?: number;
  /**
   * AirLLM's compression: "4bit" (NF4, blocks of 64) or "8bit" (blockwise 8-bit, a linear map
   * over blocks of 64 — more accurate than AirLLM's dynamic map over 2048) for every 2-D weight. Uses `splitted_model.4bit|8bit/`, creating it first if needed.
   */
  readonly compression?: Compression;
  /** Folder for the compressed split (AirLLM's layer_shards_saving_path); default: the model folder. */
  readonly layer_shards_saving_path?: string;
  /** Progress of a compressed split being written. */
  readonly onSplitProgress?: (p: SplitProgress) => void;
  /** One-line notices (backend fallback); default: none are shown. */
  readonly onNotice?: (line: string) => void;
  /** A tokenizer already loaded for this model (it is not read again). */
  readonly tokenizer?: TextTokenizer;
  /** A Jinja chat template file to use instead of the model's own. */
  readonly chat_template?: string;
  /**
   * Requests that run at once, and the KV pool is sized for this many full contexts. Default: a
   * pool of one context, with up to 16 requests running while their pages last (the latest is
   * preempted and recomputed when they run out).
   */
  readonly parallel?: number;
  /** Reuse the KV pages of prompts that share a prefix (default true). */
  readonly prefix_cache?: boolean;
}

const DEFAULT_MAX_SEQ = 4096;
/** Device memory kept free for the driver, the module and fragmentation when no budget is given. */
const DEVICE_MARGIN = 256 * 2 ** 20;
const KV_DTYPES: readonly KvDType[] = ["f16", "bf16", "f32"];

export const AutoModel = {
  async from_pretrained(path: string, options: FromPretrainedOptions = {}): Promise<CausalLM> {
    return loadModel(path, options);
  },
};

/** A positive integer option, or its default. */
function positiveInt(value: number | undefined, fallback: number, what: string): number {
  const v = value ?? fallback;
  if (!(Number.isInteger(v) && v > 0)) throw new UsageError(`${what} ${v} must be a positive integer`);
  return v;
}

export async function loadModel(path: string, o: FromPretrainedOptions): Promise<CausalLM> {
  if (o.compression !== undefined && o.compression !== "4bit" && o.compression !== "8bit") {
    throw new UsageError(`compression ${JSON.stringify(o.compression)} is not one of "4bit", "8bit"`);
  }
  const kvDtype = o.kv_dtype ?? "f16";
  if (!KV_DTYPES.includes(kvDtype)) throw new UsageError(`kv_dtype ${JSON.stringify(kvDtype)} is not one of ${KV_DTYPES.join(", ")}`);
  if (o.moe_streaming !== undefined && o.moe_streaming !== "experts" && o.moe_streaming !== "layers") {
    throw new UsageError(`moe_streaming ${JSON.stringify(o.moe_streaming)} is not one of "experts", "layers"`);
  }
  const source = openModelSource(path, { compression: o.compression, splitDir: o.layer_shards_saving_path, onSplitProgress: o.onSplitProgress });
  const { config, generationConfig, tensors: files } = source;
  let backend: Backend | null = null;
  try {
    const maxPos = config.maxPositionEmbeddings;
    const wanted = positiveInt(o.max_seq_len, Math.min(maxPos, DEFAULT_MAX_SEQ), "max_seq_len");
    const minContext = Math.min(wanted, positiveInt(o.min_seq_len, 1, "min_seq_len"));
    const pageSize = positiveInt(o.kv_page_size, DEFAULT_PAGE_SIZE, "kv_page_size");
    const parallel = positiveInt(o.parallel, 1, "parallel");
    const prefetchDepth = o.prefetching === false ? 0 : (o.prefetch_depth ?? 1);
    if (!(Number.isInteger(prefetchDepth) && prefetchDepth >= 0)) throw new UsageError(`prefetch_depth ${prefetchDepth} must be a non-negative integer`);
    const arch = architectureNamed(config.arch).build(config, {
      has: (n) => files.has(n),
      rowNorms: (n) => rowNorms(files.get(n)),
      ropeInterleaved: source.ropeInterleaved,
      ropeFreqFactors: source.ropeFreqFactors,
    });
    checkPlanShapes(arch.plan, files);

    const selected = selectBackend(o.device ?? "auto", { threads: o.threads });
    const be = selected.backend;
    backend = be;
    if (selected.notice) o.onNotice?.(selected.notice);
    const freeAtLoad = be.memInfo?.().free ?? null;
    const onHost = be.caps.readsHostMemory;

    let context = wanted;
    let plan: MemoryPlan | null = null;
    let pool: KvPool;
    let weights: WeightProvider;
    if (onHost && o.max_memory === undefined) {
      pool = new KvPool(be, { layers: arch.kv.layers, width: arch.kv.width, dtype: kvDtype, pageSize, pages: parallel * Math.ceil(context / pageSize) });
      weights = new HostMappedWeights(files, arch.plan);
    } else {
      const device: DeviceKind = onHost ? "cpu" : "cuda";
      const budget = onHost
        ? parseSize(o.max_memory!, "max_memory")
        : o.max_gpu_memory !== undefined
          ? parseSize(o.max_gpu_memory, "max_gpu_memory")
          : (be.memInfo?.().free ?? Number.POSITIVE_INFINITY) - DEVICE_MARGIN;
      const { units, memory } = planLoad(arch, files, {
        device,
        budget,
        hostCacheBudget: onHost ? 0 : o.max_host_cache !== undefined ? parseSize(o.max_host_cache, "max_host_cache") : freemem() / 2,
        prefetchDepth,
        context: { wanted, min: minContext, max: maxPos },
        kvDtype,
        pageSize,
        sequences: parallel,
        chunkBytes: o.chunk_size !== undefined ? parseSize(o.chunk_size, "chunk_size") : undefined,
        expertCacheBytes: o.expert_cache !== undefined ? parseSize(o.expert_cache, "expert_cache") : undefined,
        moeStreaming: o.moe_streaming,
        budgetFlag: onHost ? "--max-memory" : "--max-gpu-memory",
      });
      plan = memory;
      context = memory.context;
      pool = new KvPool(be, { layers: arch.kv.layers, width: arch.kv.width, dtype: kvDtype, pageSize, pages: memory.kvPages });
      try {
        weights = new LayerStreamer(be, files, arch.plan, units, memory, { rowCapacity: Math.min(PREFILL_CHUNK, context), predictExperts: o.expert_prediction ?? be.caps.asyncUpload });
      } catch (e) {
        pool.dispose();
        throw e;
      }
    }
    const engine = new Engine(be, arch, weights, pool, context);
    const given = o.tokenizer;
    const model = new CausalLM({
      config,
      generationConfig,
      loadTokenizer: given ? () => given : source.tokenizer,
      chatTemplate: o.chat_template !== undefined ? chatTemplateFromFile(o.chat_template) : source.chatTemplate(),
      engine,
      backend: be,
      closeFiles: () => source.close(),
      // Under a budget a pass carries no more tokens than its activations were planned for.
      scheduler: { maxRunning: o.parallel, prefixCache: o.prefix_cache, maxPassTokens: plan?.passRows ?? PREFILL_CHUNK },
    });
    if (!onHost) model.deviceFreeAtLoad = freeAtLoad;
    model.memoryPlan = plan;
    return model;
  } catch (e) {
    backend?.destroy();
    source.close();
    throw e;
  }
}
