// Kernel launches: arguments packed into one arena allocated once, cuLaunchKernel with the
// void** array of their addresses. The driver copies the argument values at launch time, so
// the arena is reused by the next launch at once.
//
// Arena layout: MAX_ARGS value slots of 8 bytes (each argument at its own 8-byte slot, which
// satisfies every parameter's alignment), then MAX_ARGS pointers, slot i's pointing at value i.
// The pointers never change: they are written once, from the one ptr() of the arena.
import { ptr } from "bun:ffi";
import { NativeError } from "../../errors.ts";
import { check, type Driver } from "./driver.ts";
import { KERNELS, type ArgKind, type KernelName } from "./module.ts";

export const MAX_ARGS = 16;
const TWO_32 = 2 ** 32;

/** Grid or block dimensions (x, y, z). */
export type Dim3 = readonly [number, number, number];

/** One kernel launch, fully described: what the CUDA backend's ops produce. */
export interface LaunchPlan {
  readonly kernel: KernelName;
  readonly grid: Dim3;
  readonly block: Dim3;
  readonly args: readonly number[];
}

function badArg(kernel: string, i: number, kind: ArgKind, value: number, why: string): NativeError {
  return new NativeError(
    `kernel ${kernel}: argument ${i} (${kind}) = ${value} ${why}`,
    "this is a bug in the CUDA backend's launch plans: please report it with the model and options",
  );
}

/**
 * Writes `values` into the value slots of `view` (8 bytes each, little-endian) as `kinds`
 * says: "ptr" as a u64 address, "u32" as a 32-bit unsigned, "f32" as a float. Throws a
 * NativeError naming the kernel and argument when a value does not fit its kind.
 */
export function packArgs(view: DataView, kinds: readonly ArgKind[], values: readonly number[], kernel: string): void {
  if (kinds.length !== values.length) {
    throw new NativeError(
      `kernel ${kernel}: ${values.length} arguments given, ${kinds.length} expected`,
      "this is a bug in the CUDA backend's launch plans: please report it",
    );
  }
  if (kinds.length > MAX_ARGS || view.byteLength < kinds.length * 8) {
    throw new NativeError(`kernel ${kernel}: ${kinds.length} arguments do not fit the ${MAX_ARGS}-slot arena`);
  }
  for (let i = 0; i < kinds.length; i++) {
    const v = values[i];
    const kind = kinds[i];
    const at = i * 8;
    if (kind === "f32") {
      if (typeof v !== "number" || Number.isNaN(v)) throw badArg(kernel, i, kind, v, "is not a number");
      view.setFloat32(at, v, true);
      view.setUint32(at + 4, 0, true);
      continue;
    }
    if (!Number.isSafeInteger(v) || v < 0) throw badArg(kernel, i, kind, v, "is not a non-negative integer");
    if (kind === "u32") {
      if (v >= TWO_32) throw badArg(kernel, i, kind, v, "does not fit in 32 bits");
      view.setUint32(at, v, true);
      view.setUint32(at + 4, 0, true);
    } else {
      if (v === 0) throw badArg(kernel, i, kind, v, "is a null device pointer");
      view.setUint32(at, v % TWO_32, true);
      view.setUint32(at + 4, Math.floor(v / TWO_32), true);
    }
  }
}

/** Checks a plan's geometry against the hardware limits (grid y/z ≤ 65535, ≤ 1024 threads). */
export function checkGeometry(plan: LaunchPlan): void {
  const [gx, gy, gz] = plan.grid;
  const [bx, by, bz] = plan.block;
  const ok =
    [gx, gy, gz, bx, by, bz].every((d) => Number.isInteger(d) && d >= 1) &&
    gx < 2 ** 31 && gy <= 65535 && gz <= 65535 && bx * by * bz <= 1024;
  if (!ok) {
    throw new NativeError(
      `kernel ${plan.kernel}: launch geometry grid (${plan.grid}) block (${plan.block}) is out of range`,
      "the shapes are too large for one launch: please report this with the model and options",
    );
  }
}

/** Launches kernels of one module on one stream at a time, through a reused argument arena. */
export class Launcher {
  private readonly arena = new ArrayBuffer(MAX_ARGS * 16);
  private readonly values = new DataView(this.arena, 0, MAX_ARGS * 8);
  private readonly params = new BigUint64Array(this.arena, MAX_ARGS * 8, MAX_ARGS);

  constructor(
    private readonly drv: Driver,
    private readonly functions: Record<KernelName, number>,
  ) {
    const base = ptr(new Uint8Array(this.arena));
    for (let i = 0; i < MAX_ARGS; i++) this.params[i] = BigInt(base + i * 8);
  }

  launch(plan: LaunchPlan, stream: number): void {
    checkGeometry(plan);
    packArgs(this.values, KERNELS[plan.kernel], plan.args, plan.kernel);
    const [gx, gy, gz] = plan.grid;
    const [bx, by, bz] = plan.block;
    check(
      this.drv.cuLaunchKernel(this.functions[plan.kernel], gx, gy, gz, bx, by, bz, 0, stream, this.params, null),
      `cuLaunchKernel(${plan.kernel})`,
    );
  }
}
