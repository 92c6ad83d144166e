// What a model needs in memory under a budget, from the architecture and the tensor headers alone:
// the inputs of the memory plan (units, activation and KV sizes) and the plan itself. Shared by
// loading (AutoModel) and by `airllm plan`, which runs it without a GPU and without reading weights.
import type { KvDType } from "../backend/backend.ts";
import { Activations } from "../engine/activations.ts";
import { PREFILL_CHUNK } from "../engine/generate.ts";
import { KvPool } from "../engine/kv/kv-pool.ts";
import { planMemory, type MemoryPlan } from "../engine/memory-plan.ts";
import type { TensorSource } from "../engine/tensor-source.ts";
import { planUnits, tableRowBytes, type PlanUnits } from "../engine/units.ts";
import type { ModelArch } from "./architecture.ts";

export type DeviceKind = "cpu" | "cuda";

/** cuMemAlloc hands out whole 2 MiB pages for large blocks: the device budget counts what is taken. */
export const DEVICE_GRANULE = 2 * 2 ** 20;
/** Host RAM is taken (and counted in RSS) a page at a time. */
export const HOST_GRANULE = 4096;
/**
 * Device memory the CUDA backend allocates for itself: its 4 MiB pinned staging ring's device
 * side and the split-attention partials (4 · SMs · 258 floats: 0.5 MiB on 132 SMs), each a whole
 * granule. The CUDA context and the kernel module are not counted.
 */
export const CUDA_BACKEND_BYTES = 3 * DEVICE_GRANULE;

export interface LoadPlanOptions {
  readonly device: DeviceKind;
  /** Bytes of the budget (device memory on CUDA, RAM on the CPU). */
  readonly budget: number;
  readonly hostCacheBudget: number;
  readonly prefetchDepth: number;
  readonly context: { readonly wanted: number; readonly min: number; readonly max: number };
  readonly kvDtype: KvDType;
  readonly pageSize: number;
  readonly sequences: number;
  readonly chunkBytes?: number;
  readonly expertCacheBytes?: number;
  /** MoE experts as units of their own (default), or streamed with their layer ("layers"). */
  readonly moeStreaming?: MoeStreaming;
  readonly budgetFlag: string;
}

/** "experts": only routed experts are fetched; "layers": whole layers, as AirLLM streams them. */
export type MoeStreaming = "experts" | "layers";

export interface LoadPlan {
  readonly units: PlanUnits;
  readonly memory: MemoryPlan;
}

/** Memory of the architecture's constant tables, each its own allocation of whole granules. */
function constantBytes(arch: ModelArch, granule: number): number {
  return Object.values(arch.constants).reduce((a, t) => a + Math.max(1, Math.ceil((t.length * 4) / granule)) * granule, 0);
}

export function planLoad(arch: ModelArch, source: TensorSource, o: LoadPlanOptions): LoadPlan {
  const units = planUnits(arch.plan, source, o.moeStreaming !== "layers");
  const granule = o.device === "cuda" ? DEVICE_GRANULE : HOST_GRANULE;
  const table = units.units.find((u) => u.kind === "table");
  const rowBytes = table ? (tableRowBytes(source.get(table.tensors[0]!)) ?? 0) : 0;
  const memory = planMemory({
    units: units.units,
    pinnedBytes: units.pinnedBytes,
    activationBytes: (rows) => Activations.bytesFor(arch.activations, arch.vocab, rows, o.sequences),
    rowStagingBytes: (rows) => rows * rowBytes,
    kvBytesPerToken: KvPool.bytesPerToken({ ...arch.kv, dtype: o.kvDtype }),
    pageSize: o.pageSize,
    sequences: o.sequences,
    context: o.context,
    prefillRows: PREFILL_CHUNK,
    budget: o.budget,
    granule,
    prefetchDepth: o.prefetchDepth,
    hostCacheBudget: o.device === "cuda" ? o.hostCacheBudget : 0,
    // The engine's own small blocks (page tables, the architecture's constant tables, its
    // per-pass tables), plus the backend's.
    backendBytes: granule + constantBytes(arch, granule) + (arch.passTables ? granule : 0) + (o.device === "cuda" ? CUDA_BACKEND_BYTES : 0),
    chunkBytes: o.chunkBytes,
    expertCacheBytes: o.expertCacheBytes,
    budgetFlag: o.budgetFlag,
  });
  return { units, memory };
}
