// DESIGN.md's lower bound for one forward pass, fully overlapped, with W the weight bytes a pass
// needs, R of them resident, C cached in (pinned) host RAM and D read from disk:
//   T ≥ max((C + D) / B_h2d, D / B_disk, W / B_device).
// On the CPU nothing is uploaded (the ops read the staging slot itself): only the disk and memory
// terms remain. For a mixture of experts a decode pass touches only its routed experts: their
// bytes count at the routed fraction (top-k / experts).
import type { MemoryPlan } from "./memory-plan.ts";
import type { Unit } from "./units.ts";

/**
 * Nominal bandwidths (bytes/s). ASSUMPTIONS, not measurements: a mid-range NVMe SSD through pread
 * (2 GB/s); the CPU's ops reading weights from RAM on a desktop-class memory bus (20 GB/s; the
 * "device" bandwidth when the device is the CPU); PCIe Gen4/Gen5 from pinned memory as seen in
 * practice (25 GB/s); H100-class HBM (2 TB/s).
 */
export const NOMINAL_BANDWIDTH = {
  cpu: { disk: 2e9, h2d: Number.POSITIVE_INFINITY, device: 20e9 },
  gpu: { disk: 2e9, h2d: 25e9, device: 2e12 },
} as const;

export interface PassBytes {
  readonly residentBytes: number;
  readonly hostCachedBytes: number;
  readonly diskBytes: number;
}

export function predictPassSeconds(b: PassBytes, hostIsDevice: boolean): number {
  const bw = hostIsDevice ? NOMINAL_BANDWIDTH.cpu : NOMINAL_BANDWIDTH.gpu;
  const W = b.residentBytes + b.hostCachedBytes + b.diskBytes;
  return Math.max((b.hostCachedBytes + b.diskBytes) / bw.h2d, b.diskBytes / bw.disk, W / bw.device);
}

/** The bytes of one decode pass under a plan: all of every dense unit, `expertFraction` of each expert's. */
export function decodePassBytes(plan: MemoryPlan, expertFraction: number): PassBytes {
  const bytes = (us: readonly Unit[]) => us.reduce((a, u) => a + (u.kind === "expert" ? u.bytes * expertFraction : u.kind === "table" ? 0 : u.bytes), 0);
  return { residentBytes: bytes(plan.resident) + plan.pinnedBytes, hostCachedBytes: bytes(plan.hostCached), diskBytes: bytes(plan.disk) };
}
