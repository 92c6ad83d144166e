// Is there a CUDA GPU this build can use? Never throws: a missing driver, no device or a GPU
// older than the kernels' target are all answers, with the reason in words.
import { describeDevice } from "./driver.ts";

/** The kernels are PTX for sm_80 (bf16 mma.sync); the driver JIT-compiles it for newer GPUs. */
export const MIN_COMPUTE_CAPABILITY = [8, 0] as const;

export type CudaProbe =
  | { ok: true; deviceName: string; computeCapability: string; totalMem: number }
  | { ok: false; reason: string };

export function probeCuda(ordinal = 0): CudaProbe {
  try {
    const info = describeDevice(ordinal);
    const [major, minor] = MIN_COMPUTE_CAPABILITY;
    if (info.ccMajor < major || (info.ccMajor === major && info.ccMinor < minor)) {
      return {
        ok: false,
        reason: `${info.name} has compute capability ${info.computeCapability}; the CUDA kernels need ${major}.${minor} or newer`,
      };
    }
    return { ok: true, deviceName: info.name, computeCapability: info.computeCapability, totalMem: info.totalMem };
  } catch (e) {
    return { ok: false, reason: e instanceof Error ? e.message : String(e) };
  }
}
