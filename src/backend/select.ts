// Picks the backend for a run: "auto" takes the GPU when one is usable and says so when it
// falls back to the CPU; "cuda" insists (a UsageError naming the reason otherwise).
import { UsageError } from "../errors.ts";
import type { Backend } from "./backend.ts";
import { createCpuBackend } from "./cpu/cpu-backend.ts";
import { createCudaBackend } from "./cuda/cuda-backend.ts";
import { probeCuda } from "./cuda/detect.ts";

export type DeviceChoice = "auto" | "cpu" | "cuda";

export interface SelectedBackend {
  readonly backend: Backend;
  /** One line for the user when "auto" did not get the GPU. */
  readonly notice?: string;
}

export function selectBackend(device: DeviceChoice, opts: { threads?: number; exactActivations?: boolean } = {}): SelectedBackend {
  if (device === "cpu") return { backend: createCpuBackend(opts) };
  const probe = probeCuda();
  if (probe.ok) return { backend: createCudaBackend() };
  if (device === "cuda") {
    throw new UsageError(
      `--device cuda: no usable CUDA GPU (${probe.reason})`,
      "check that nvidia-smi lists the GPU and that the NVIDIA driver is installed, or use --device cpu (or auto)",
    );
  }
  return { backend: createCpuBackend(opts), notice: `no usable CUDA GPU (${probe.reason}); running on the CPU` };
}
