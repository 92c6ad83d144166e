// The flags that say how to load a model (device, budgets, streaming, compression), shared by
// every command that loads one, and their translation into AutoModel options in one place.
import { UsageError } from "../errors.ts";
import type { FromPretrainedOptions } from "../model/auto-model.ts";
import { parseCompression } from "../split/split-model.ts";
import { formatBytes } from "../util/size.ts";
import type { FlagSpec, Flags } from "./args.ts";

export const MODEL_FLAGS: readonly FlagSpec[] = [
  { name: "device", value: "D", help: "cuda, cpu or auto (default auto: CUDA when available, else CPU)" },
  { name: "threads", value: "N", help: "CPU threads (default: all cores)" },
  { name: "compression", value: "4bit|8bit", help: "AirLLM compression: use MODEL/splitted_model.4bit|8bit, creating it first" },
  { name: "max-gpu-memory", value: "SIZE", help: "device memory budget, e.g. 4GiB; layers beyond it stream from host RAM" },
  { name: "max-memory", value: "SIZE", help: "CPU: RAM budget, e.g. 256MiB; layers beyond it are read from disk every pass" },
  { name: "max-host-cache", value: "SIZE", help: "pinned host RAM for streamed layers (default: half the free RAM)" },
  { name: "prefetch", value: "N", help: "layers fetched ahead while one computes (default 1)" },
  { name: "no-prefetch", help: "fetch each layer only when it is needed (AirLLM prefetching=False)" },
];

/** AutoModel options from the model flags; `err` receives notices and compression progress. */
export function modelOptions(f: Flags, err: (s: string) => void): FromPretrainedOptions {
  const device = f.string("device") ?? "auto";
  if (device !== "auto" && device !== "cpu" && device !== "cuda") throw new UsageError(`--device ${device} is not one of cuda, cpu, auto`);
  return {
    device,
    threads: f.number("threads", { integer: true }),
    max_gpu_memory: f.string("max-gpu-memory"),
    max_memory: f.string("max-memory"),
    max_host_cache: f.string("max-host-cache"),
    prefetching: !f.has("no-prefetch"),
    prefetch_depth: f.number("prefetch", { integer: true }),
    compression: parseCompression(f.string("compression")),
    onSplitProgress: (p) => {
      if (!p.kept) err(`airllm: compressing ${p.done}/${p.total} ${p.name} (${formatBytes(p.bytes)})\n`);
    },
    onNotice: (line) => err(`airllm: ${line}\n`),
  };
}
