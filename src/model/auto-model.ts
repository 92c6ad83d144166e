// AutoModel.from_pretrained (AirLLM's entry point): read config and tokenizer, map the weights,
// check them against the config, pick a backend, decide residency, build the engine.
import { freemem } from "node:os";
import type { Backend } from "../backend/backend.ts";
import { selectBackend, type DeviceChoice } from "../backend/select.ts";
import { Engine } from "../engine/engine.ts";
import { LayerStreamer } from "../engine/layer-streamer.ts";
import { PREFILL_CHUNK } from "../engine/generate.ts";
import { layoutEntry } from "../engine/residency-plan.ts";
import { Scratch } from "../engine/scratch.ts";
import { Sequence, type KvGeometry } from "../engine/sequence.ts";
import { checkEntryShapes, HostMappedWeights, type WeightProvider } from "../engine/weight-provider.ts";
import { UsageError } from "../errors.ts";
import type { TensorSource } from "../engine/tensor-source.ts";
import { parseSize } from "../util/size.ts";
import { CausalLM } from "./causal-lm.ts";
import type { ModelConfig } from "./config.ts";
import { openModelSource } from "./model-source.ts";
import type { Compression, SplitProgress } from "../split/split-model.ts";
import { buildLayerPlan, type PlanEntry } from "./layer-plan.ts";
import type { LlamaDims } from "./llama.ts";
import { computeRope } from "./rope.ts";
import { expectedShape } from "./shapes.ts";

export interface FromPretrainedOptions {
  /** "auto" (default): CUDA when a GPU and driver are present, else the CPU with a notice. */
  readonly device?: DeviceChoice;
  /** CPU threads (default: all cores). */
  readonly threads?: number;
  /** Context length to allocate the KV cache for (default: min(max_position_embeddings, 4096)). */
  readonly max_seq_len?: number;
  /** Device memory budget ("4GiB" or bytes): weights, KV cache and activations all inside it. */
  readonly max_gpu_memory?: number | string;
  /**
   * CPU only: RAM budget ("256MiB" or bytes) for resident weights, the streaming ring, KV cache and
   * activations; entries beyond it are read from the weight files on every pass. Without it the
   * CPU reads the file mapping directly (the whole model resident in the page cache).
   */
  readonly max_memory?: number | string;
  /** Pinned host RAM for streamed layers (default: half the free RAM). */
  readonly max_host_cache?: number | string;
  /** AirLLM's `prefetching` (default true): upload the next layer while this one computes. */
  readonly prefetching?: boolean;
  /** Layers fetched ahead when prefetching (default 1). */
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
}

const DEFAULT_MAX_SEQ = 4096;
/** Device memory kept free for the driver, the module and fragmentation. */
const DEVICE_MARGIN = 256 * 2 ** 20;
/** cuMemAlloc hands out whole 2 MiB pages for large blocks: the device budget counts what is taken. */
const DEVICE_GRANULE = 2 * 2 ** 20;
/** Host RAM is taken (and counted in RSS) a page at a time. */
const HOST_GRANULE = 4096;

export const AutoModel = {
  async from_pretrained(path: string, options: FromPretrainedOptions = {}): Promise<CausalLM> {
    return loadModel(path, options);
  },
};

function dimsOf(c: ModelConfig, attnFactor: number, ropeInterleaved: boolean): LlamaDims {
  return {
    hidden: c.hiddenSize,
    intermediate: c.intermediateSize,
    numHeads: c.numHeads,
    numKvHeads: c.numKvHeads,
    headDim: c.headDim,
    vocab: c.vocabSize,
    rmsNormEps: c.rmsNormEps,
    layerWindows: c.layerWindows,
    bias: { qkv: c.attentionBias, out: c.attentionOutBias, mlp: c.mlpBias },
    ropeAttnFactor: attnFactor,
    ropeInterleaved,
  };
}

export async function loadModel(path: string, o: FromPretrainedOptions): Promise<CausalLM> {
  if (o.compression !== undefined && o.compression !== "4bit" && o.compression !== "8bit") {
    throw new UsageError(`compression ${JSON.stringify(o.compression)} is not one of "4bit", "8bit"`);
  }
  const source = openModelSource(path, { compression: o.compression, splitDir: o.layer_shards_saving_path, onSplitProgress: o.onSplitProgress });
  const { config, generationConfig, tensors: files } = source;
  let backend: Backend | null = null;
  try {
    const maxSeq = o.max_seq_len ?? Math.min(config.maxPositionEmbeddings, DEFAULT_MAX_SEQ);
    if (!(Number.isInteger(maxSeq) && maxSeq > 0)) throw new UsageError(`max_seq_len ${maxSeq} must be a positive integer`);
    const tied = config.tieWordEmbeddings || !files.has("lm_head.weight");
    const plan = buildLayerPlan({
      numLayers: config.numLayers,
      bias: { qkv: config.attentionBias, out: config.attentionOutBias, mlp: config.mlpBias },
      tiedEmbeddings: tied,
    });
    for (const entry of plan) checkEntryShapes(entry, files, (n) => expectedShape(config, n));

    const selected = selectBackend(o.device ?? "auto", { threads: o.threads });
    const be = selected.backend;
    backend = be;
    if (selected.notice) o.onNotice?.(selected.notice);
    const freeAtLoad = be.memInfo?.().free ?? null;

    const rope = computeRope(config);
    if (source.ropeFreqFactors) {
      // GGUF's rope_freqs.weight divides each rotary frequency (llama.cpp's Llama-3.1 scaling).
      for (let i = 0; i < rope.invFreq.length; i++) rope.invFreq[i] /= source.ropeFreqFactors[i];
    }
    const dims = dimsOf(config, rope.attentionFactor, source.ropeInterleaved);
    const kv: KvGeometry = { numLayers: config.numLayers, kvDim: config.numKvHeads * config.headDim, maxSeq };
    const mapped = be.caps.readsHostMemory && o.max_memory === undefined;
    const weights = mapped ? new HostMappedWeights(files, plan) : streamedWeights(be, plan, files, config, kv, o);
    const engine = new Engine(be, plan, weights, dims, kv, rope.invFreq);
    const model = new CausalLM(config, generationConfig, source.tokenizer, engine, be, () => source.close());
    if (!be.caps.readsHostMemory) model.deviceFreeAtLoad = freeAtLoad;
    return model;
  } catch (e) {
    backend?.destroy();
    source.close();
    throw e;
  }
}

/**
 * Bytes the budget must hold besides the weights: the KV cache, the activations of one prefill
 * chunk and the inv_freq table, each one allocation rounded up to `granule`.
 */
export function reservedBytes(config: ModelConfig, maxSeq: number, granule: number): number {
  const kv: KvGeometry = { numLayers: config.numLayers, kvDim: config.numKvHeads * config.headDim, maxSeq };
  const scratch = Scratch.bytesFor(
    { hidden: config.hiddenSize, qDim: config.numHeads * config.headDim, kvDim: kv.kvDim, intermediate: config.intermediateSize, vocab: config.vocabSize },
    Math.min(PREFILL_CHUNK, maxSeq),
    1,
  );
  return [Sequence.cacheBytes(kv), scratch, config.headDim * 2].reduce((a, b) => a + Math.ceil(b / granule) * granule, 0);
}

/** Residency under a budget: device memory (CUDA), or RAM with --max-memory (CPU). */
function streamedWeights(
  backend: Backend,
  plan: readonly PlanEntry[],
  files: TensorSource,
  config: ModelConfig,
  kv: KvGeometry,
  o: FromPretrainedOptions,
): WeightProvider {
  const onHost = backend.caps.readsHostMemory;
  const flag = onHost ? "--max-memory" : "--max-gpu-memory";
  let budget: number;
  if (onHost) {
    budget = parseSize(o.max_memory!, "max_memory");
  } else {
    const free = backend.memInfo?.().free ?? Number.POSITIVE_INFINITY;
    budget = o.max_gpu_memory !== undefined ? parseSize(o.max_gpu_memory, "max_gpu_memory") : free - DEVICE_MARGIN;
  }
  const granule = onHost ? HOST_GRANULE : DEVICE_GRANULE;
  const fixed = reservedBytes(config, kv.maxSeq, granule);
  const weightBudget = budget - fixed;
  if (weightBudget <= 0) {
    throw new UsageError(
      `the ${onHost ? "memory" : "device"} budget of ${(budget / 2 ** 20).toFixed(0)} MiB does not hold the KV cache and activations (${(fixed / 2 ** 20).toFixed(0)} MiB)`,
      `raise ${flag} or lower --ctx (max_seq_len)`,
    );
  }
  const prefetchDepth = o.prefetching === false ? 0 : (o.prefetch_depth ?? 1);
  if (!(Number.isInteger(prefetchDepth) && prefetchDepth >= 0)) throw new UsageError(`prefetch_depth ${prefetchDepth} must be a non-negative integer`);
  const hostCacheBudget = onHost ? 0 : o.max_host_cache !== undefined ? parseSize(o.max_host_cache, "max_host_cache") : freemem() / 2;
  const layouts = plan.map((e) => layoutEntry(e, files));
  return new LayerStreamer(backend, files, layouts, { weightBudget, prefetchDepth, hostCacheBudget, granule, budgetFlag: flag });
}
