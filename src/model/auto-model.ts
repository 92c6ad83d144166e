// AutoModel.from_pretrained (AirLLM's entry point): read config and tokenizer, map the weights,
// build the architecture and check the weights against it, pick a backend, plan the memory, build
// the engine.
import { freemem, totalmem } from "node:os";
import type { Backend, KvDType } from "../backend/backend.ts";
import { selectBackend, type DeviceChoice } from "../backend/select.ts";
import { Engine } from "../engine/engine.ts";
import { PREFILL_CHUNK } from "../engine/generate.ts";
import { DEFAULT_PAGE_SIZE, KvPool } from "../engine/kv/kv-pool.ts";
import { LayerStreamer } from "../engine/layer-streamer.ts";
import type { MemoryPlan } from "../engine/memory-plan.ts";
import { HostMappedWeights, type WeightProvider } from "../engine/weight-provider.ts";
import { HostCopiedWeights } from "../engine/host-copied-weights.ts";
import { UsageError } from "../errors.ts";
import type { Compression, SplitProgress } from "../split/split-model.ts";
import { formatBytes, parseSize } from "../util/size.ts";
import { show } from "../util/validate.ts";
import type { TextTokenizer } from "../tokenizer/text-tokenizer.ts";
import { chatTemplateFromFile } from "../tokenizer/chat-template.ts";
import { buildArchitecture } from "./arch/index.ts";
import { CausalLM } from "./causal-lm.ts";
import { planLoad, type DeviceKind, type MoeStreaming } from "./load-plan.ts";
import { openModelSource } from "./model-source.ts";
import { diskLine } from "../hub/fit-check.ts";
import { resolveModel } from "../hub/resolve-model.ts";
import { rowNorms } from "./row-norms.ts";
import { explainNonFinite } from "./weight-scan.ts";

export interface FromPretrainedOptions {
  /** "auto" (default): CUDA when a GPU and driver are present, else the CPU with a notice. */
  readonly device?: DeviceChoice;
  /** CPU threads (default: all cores). */
  readonly threads?: number;
  /**
   * CPU: GGUF legacy and K-quant weights, and 4bit / 8bit compressed ones, multiply the
   * activations in f32 as given, instead of quantizing them to int8 first as llama.cpp does
   * (the default: faster, logits within llama.cpp's own rounding). For comparisons with
   * transformers on a file's exact weights.
   */
  readonly exact_activations?: boolean;
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
   * CPU copies the weights into RAM at load when they fit in 3/4 of the available memory beside
   * the KV cache, else reads the file mapping directly (the whole model in the page cache).
   */
  readonly max_memory?: number | string;
  /**
   * CPU without max_memory: always read the weights from the file mapping, never copy them at
   * load (slower to stream: 4 KiB pages; as llama.cpp's use_mmap without its repacking).
   */
  readonly use_mmap?: boolean;
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
  /** Hugging Face token for a gated or private hub id (AirLLM's name; default: HF_TOKEN, else the token file). */
  readonly hf_token?: string;
  /** A hub id is looked up in the cache only, never downloaded (as HF_HUB_OFFLINE=1). */
  readonly offline?: boolean;
  /**
   * A small model with the same vocabulary that drafts tokens for speculative decoding
   * (`speculate: "draft"`). Loaded whole on the same device, outside the memory budget.
   */
  readonly draft_model?: string;
}

const DEFAULT_MAX_SEQ = 4096;
/** Device memory kept free for the driver, the module and fragmentation when no budget is given. */
const DEVICE_MARGIN = 256 * 2 ** 20;
const KV_DTYPES: readonly KvDType[] = ["f16", "bf16", "f32"];
/** CPU without a budget: the share of the available RAM the weight copies and KV cache may take. */
const COPY_FRACTION = 0.75;

export const AutoModel = {
  /** `path`: a model folder, a .gguf file, or a hub id (ORG/NAME[@REVISION][:QUANT]) from the cache or downloaded. */
  async from_pretrained(path: string, options: FromPretrainedOptions = {}): Promise<CausalLM> {
    const local = await resolveModel(path, { token: options.hf_token, offline: options.offline, onFitCheck: (fit) => options.onNotice?.(diskLine(fit.disk)) });
    return loadModel(local, options);
  },
};

/** A positive integer option, or its default. */
function positiveInt(value: number | undefined, fallback: number, what: string): number {
  const v = value ?? fallback;
  if (!(Number.isSafeInteger(v) && v > 0)) throw new UsageError(`${what} ${show(v)} must be a positive integer`, "see the options of AutoModel.from_pretrained (airllm run --help)");
  return v;
}

/** The byte-size options, each parsed once (and checked whether or not the device uses it). */
interface Sizes {
  readonly maxGpuMemory?: number;
  readonly maxMemory?: number;
  readonly maxHostCache?: number;
  readonly chunkSize?: number;
  readonly expertCache?: number;
}

function parseSizes(o: FromPretrainedOptions): Sizes {
  const size = (v: number | string | undefined, what: string, positive: boolean) => (v === undefined ? undefined : parseSize(v, what, positive));
  return {
    maxGpuMemory: size(o.max_gpu_memory, "max_gpu_memory", true),
    maxMemory: size(o.max_memory, "max_memory", false),
    // 0 is a choice here: no pinned cache (everything read from disk), no expert cache.
    maxHostCache: size(o.max_host_cache, "max_host_cache", false),
    chunkSize: size(o.chunk_size, "chunk_size", true),
    expertCache: size(o.expert_cache, "expert_cache", false),
  };
}

export async function loadModel(path: string, o: FromPretrainedOptions): Promise<CausalLM> {
  if (o.compression !== undefined && o.compression !== "4bit" && o.compression !== "8bit") {
    throw new UsageError(`compression ${show(o.compression)} is not one of "4bit", "8bit"`);
  }
  const kvDtype = o.kv_dtype ?? "f16";
  if (!KV_DTYPES.includes(kvDtype)) throw new UsageError(`kv_dtype ${show(kvDtype)} is not one of ${KV_DTYPES.join(", ")}`);
  if (o.moe_streaming !== undefined && o.moe_streaming !== "experts" && o.moe_streaming !== "layers") {
    throw new UsageError(`moe_streaming ${show(o.moe_streaming)} is not one of "experts", "layers"`);
  }
  if (o.threads !== undefined) positiveInt(o.threads, 1, "threads");
  if (o.prefetch_depth !== undefined && !(Number.isSafeInteger(o.prefetch_depth) && o.prefetch_depth >= 0)) {
    throw new UsageError(`prefetch_depth ${show(o.prefetch_depth)} must be a non-negative integer`, "0 fetches each chunk when it is needed; 1 (the default) fetches one ahead");
  }
  const sizes = parseSizes(o);
  const source = openModelSource(path, { compression: o.compression, splitDir: o.layer_shards_saving_path, onSplitProgress: o.onSplitProgress });
  const { config, generationConfig, tensors: files } = source;
  let backend: Backend | null = null;
  try {
    const maxPos = config.maxPositionEmbeddings;
    const wanted = positiveInt(o.max_seq_len, Math.min(maxPos, DEFAULT_MAX_SEQ), "max_seq_len");
    if (wanted > maxPos) {
      throw new UsageError(
        `a context of ${wanted} positions (max_seq_len) is more than the model's ${maxPos} (max_position_embeddings in ${source.configName})`,
        `ask for at most ${maxPos} positions: a shorter prompt, fewer new tokens or a smaller --ctx`,
      );
    }
    const minContext = Math.min(wanted, positiveInt(o.min_seq_len, 1, "min_seq_len"));
    const pageSize = positiveInt(o.kv_page_size, DEFAULT_PAGE_SIZE, "kv_page_size");
    const parallel = positiveInt(o.parallel, 1, "parallel");
    const prefetchDepth = o.prefetching === false ? 0 : (o.prefetch_depth ?? 1);
    const arch = buildArchitecture(source, (n) => rowNorms(files.get(n)));

    const selected = selectBackend(o.device ?? "auto", { threads: o.threads, exactActivations: o.exact_activations });
    const be = selected.backend;
    backend = be;
    if (selected.notice) o.onNotice?.(selected.notice);
    const freeAtLoad = be.memInfo?.().free ?? null;
    const onHost = be.caps.readsHostMemory;

    let context = wanted;
    let plan: MemoryPlan | null = null;
    let pool: KvPool;
    let weights: WeightProvider;
    if (onHost && sizes.maxGpuMemory !== undefined) o.onNotice?.("--max-gpu-memory (max_gpu_memory) budgets CUDA device memory; on the CPU it does nothing (--max-memory budgets RAM)");
    if (onHost && o.max_memory === undefined) {
      const shape = { ...arch.kv, dtype: kvDtype, pageSize, pages: parallel * Math.ceil(context / pageSize) };
      // Without a budget nothing else bounds the cache: refuse one the machine cannot hold before asking for it.
      if (KvPool.bytes(shape) > totalmem()) {
        throw new UsageError(
          `the KV cache for ${parallel > 1 ? `${parallel} contexts` : "a context"} of ${context} positions needs ${formatBytes(KvPool.bytes(shape))}, more than this machine's ${formatBytes(totalmem())} of RAM`,
          "lower the context (--ctx, max_seq_len), or give --max-memory (max_memory) so the context shrinks to fit",
        );
      }
      pool = new KvPool(be, shape);
      // Copies in huge pages are faster to stream than the file mapping; they are made when they
      // leave a quarter of the available RAM free beside the KV cache (else the page cache,
      // which the OS can evict, holds the weights).
      const copyBytes = HostCopiedWeights.bytesFor(files, arch.plan);
      const copy = o.use_mmap !== true && copyBytes + KvPool.bytes(shape) <= freemem() * COPY_FRACTION;
      try {
        weights = copy ? new HostCopiedWeights(be, files, arch.plan) : new HostMappedWeights(files, arch.plan);
      } catch (e) {
        pool.dispose();
        throw e;
      }
    } else {
      const device: DeviceKind = onHost ? "cpu" : "cuda";
      const budget = onHost
        ? sizes.maxMemory!
        : (sizes.maxGpuMemory ?? (be.memInfo?.().free ?? Number.POSITIVE_INFINITY) - DEVICE_MARGIN);
      const { units, memory } = planLoad(arch, files, {
        device,
        budget,
        hostCacheBudget: onHost ? 0 : (sizes.maxHostCache ?? freemem() / 2),
        prefetchDepth,
        context: { wanted, min: minContext, max: maxPos },
        kvDtype,
        pageSize,
        sequences: parallel,
        chunkBytes: sizes.chunkSize,
        expertCacheBytes: sizes.expertCache,
        moeStreaming: o.moe_streaming,
        budgetFlag: onHost ? "--max-memory" : "--max-gpu-memory",
      });
      plan = memory;
      context = memory.context;
      pool = new KvPool(be, { ...arch.kv, dtype: kvDtype, pageSize, pages: memory.kvPages });
      try {
        weights = new LayerStreamer(be, files, arch.plan, units, memory, { rowCapacity: Math.min(PREFILL_CHUNK, context), predictExperts: o.expert_prediction ?? be.caps.asyncUpload });
      } catch (e) {
        pool.dispose();
        throw e;
      }
    }
    const engine = new Engine(be, arch, weights, pool, context);
    engine.guards = {
      beforePass: () => files.checkUnchanged(),
      explainNonFinite: () => explainNonFinite(arch.plan, files),
    };
    const given = o.tokenizer;
    const draft = o.draft_model === undefined ? undefined : await loadDraft(o.draft_model, o, context);
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
      draft,
    });
    if (draft) checkDraftVocabulary(model, draft, path, o.draft_model!);
    if (!onHost) model.deviceFreeAtLoad = freeAtLoad;
    model.memoryPlan = plan;
    return model;
  } catch (e) {
    backend?.destroy();
    source.close();
    throw e;
  }
}

/** The draft model: whole and resident on the same device, its KV sized like the target's. */
async function loadDraft(path: string, o: FromPretrainedOptions, context: number): Promise<CausalLM> {
  const local = await resolveModel(path, { token: o.hf_token, offline: o.offline, onFitCheck: (fit) => o.onNotice?.(diskLine(fit.disk)) });
  return loadModel(local, {
    device: o.device,
    threads: o.threads,
    exact_activations: o.exact_activations,
    use_mmap: o.use_mmap,
    kv_dtype: o.kv_dtype,
    max_seq_len: context,
    min_seq_len: context,
    parallel: o.parallel,
    prefix_cache: false,
    onNotice: o.onNotice,
  });
}

/** Drafts are token ids: the draft must number its vocabulary exactly as the target does. */
function checkDraftVocabulary(target: CausalLM, draft: CausalLM, targetPath: string, draftPath: string): void {
  const a = target.tokenizer;
  const b = draft.tokenizer;
  const fail = (what: string) => {
    draft.dispose();
    throw new UsageError(
      `the draft model "${draftPath}" does not share the vocabulary of "${targetPath}": ${what}`,
      "speculative drafts are token ids, so the draft must use the same tokenizer: pick a smaller model of the same family, or use --speculate ngram (no draft model)",
    );
  };
  if (a.vocabSize !== b.vocabSize) fail(`${b.vocabSize} tokens against ${a.vocabSize}`);
  for (let id = 0; id < a.vocabSize; id++) {
    if (a.idToToken(id) !== b.idToToken(id)) fail(`token ${id} is ${JSON.stringify(b.idToToken(id))} in the draft, ${JSON.stringify(a.idToToken(id))} in the target`);
  }
}
