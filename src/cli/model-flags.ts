// The flags that say how to load a model (device, budgets, streaming, compression), shared by
// every command that loads one, and their translation into AutoModel options in one place.
import type { KvDType } from "../backend/backend.ts";
import { UsageError } from "../errors.ts";
import type { FromPretrainedOptions } from "../model/auto-model.ts";
import type { MoeStreaming } from "../model/load-plan.ts";
import { parseCompression } from "../split/split-model.ts";
import { formatBytes } from "../util/size.ts";
import { quote } from "../util/validate.ts";
import type { FlagSpec, Flags } from "./args.ts";
import { HUB_FLAGS } from "./hub-flags.ts";

export const MODEL_FLAGS: readonly FlagSpec[] = [
  { name: "device", value: "D", help: "cuda, cpu or auto (default auto: CUDA when available, else CPU)" },
  { name: "threads", value: "N", help: "CPU threads (default: all cores)" },
  { name: "exact-activations", help: "CPU, GGUF quantized and 4bit/8bit compressed weights: multiply f32 activations instead of int8-quantized ones (slower; exact to the file's weights)" },
  { name: "compression", value: "4bit|8bit", help: "AirLLM compression: use MODEL/splitted_model.4bit|8bit, creating it first" },
  { name: "max-gpu-memory", value: "SIZE", help: "device memory budget, e.g. 4GiB; layers beyond it stream from host RAM" },
  { name: "max-memory", value: "SIZE", help: "CPU: peak RSS of the whole process beyond a 64 MiB runtime overhead, e.g. 4GiB; weights beyond it are read from disk every pass" },
  { name: "mmap", help: "CPU without --max-memory: read the weights from the file mapping instead of copying them into huge-page RAM at load (the default when they fit in 3/4 of the available RAM)" },
  { name: "max-host-cache", value: "SIZE", help: "pinned host RAM for streamed layers (default: half the free RAM)" },
  { name: "prefetch", value: "N", help: "chunks fetched ahead while one computes (default 1)" },
  { name: "no-prefetch", help: "fetch each chunk only when it is needed (AirLLM prefetching=False)" },
  { name: "chunk-size", value: "SIZE", help: "streaming slot size, e.g. 64MiB (default: chosen from the budget, at most 256MiB)" },
  { name: "expert-cache", value: "SIZE", help: "memory for recently used MoE experts (default: half of what residency leaves)" },
  { name: "kv-dtype", value: "T", help: "KV cache element type: f16 (default), bf16 or f32" },
  { name: "moe-streaming", value: "M", help: "MoE: experts (default: fetch only routed experts) or layers (whole layers, as AirLLM)" },
  { name: "expert-guess", value: "on|off", help: "MoE: fetch the next layer's probable experts early (default: on with CUDA, off on the CPU)" },
  ...HUB_FLAGS,
];

export function parseKvDtype(value: string | undefined): KvDType | undefined {
  if (value === undefined || value === "f16" || value === "bf16" || value === "f32") return value;
  throw new UsageError(`--kv-dtype ${quote(value)} is not one of f16, bf16, f32`, "f16 (the default) takes half the bytes of f32; f32 keeps keys and values exactly as computed");
}

function parseOnOff(value: string | undefined, flag: string): boolean | undefined {
  if (value === undefined) return undefined;
  if (value === "on" || value === "off") return value === "on";
  throw new UsageError(`${flag} ${quote(value)} is not one of on, off`, `${flag} on, or ${flag} off`);
}

function parseMoeStreaming(value: string | undefined): MoeStreaming | undefined {
  if (value === undefined || value === "experts" || value === "layers") return value;
  throw new UsageError(`--moe-streaming ${quote(value)} is not one of experts, layers`, "experts fetches only the routed experts; layers streams whole layers");
}

/** The --device value checked: cuda, cpu or auto (the default). */
export function parseDevice(f: Flags): "auto" | "cpu" | "cuda" {
  const device = f.string("device") ?? "auto";
  if (device !== "auto" && device !== "cpu" && device !== "cuda") {
    throw new UsageError(`--device ${quote(device)} is not one of cuda, cpu, auto`, "auto (the default) uses CUDA when a GPU is there, else the CPU");
  }
  return device;
}

/**
 * AutoModel options from the model flags, every value checked here whether or not the device
 * will use it (a --max-gpu-memory of "garbage" on the CPU is still an error); `err` receives
 * notices and compression progress.
 */
export function modelOptions(f: Flags, err: (s: string) => void): FromPretrainedOptions {
  if (f.has("no-prefetch") && f.has("prefetch")) throw new UsageError("give only one of --prefetch, --no-prefetch", "--no-prefetch is --prefetch 0");
  return {
    device: parseDevice(f),
    threads: f.number("threads", { integer: true, min: 1, max: 256 }),
    exact_activations: f.has("exact-activations") || undefined,
    max_gpu_memory: f.size("max-gpu-memory"),
    max_memory: f.size("max-memory"),
    use_mmap: f.has("mmap") || undefined,
    // 0 is meaningful: no pinned cache, every streamed layer read from disk.
    max_host_cache: f.size("max-host-cache", false),
    prefetching: !f.has("no-prefetch"),
    prefetch_depth: f.number("prefetch", { integer: true, min: 0, max: 64 }),
    chunk_size: f.size("chunk-size"),
    expert_cache: f.size("expert-cache", false),
    kv_dtype: parseKvDtype(f.string("kv-dtype")),
    moe_streaming: parseMoeStreaming(f.string("moe-streaming")),
    expert_prediction: parseOnOff(f.string("expert-guess"), "--expert-guess"),
    compression: parseCompression(f.string("compression")),
    onSplitProgress: (p) => {
      if (!p.kept) err(`airllm: compressing ${p.done}/${p.total} ${p.name} (${formatBytes(p.bytes)})\n`);
    },
    onNotice: (line) => err(`airllm: ${line}\n`),
  };
}
