// The CUDA driver API (libcuda.so.1) through bun:ffi, in the spirit of tinygrad's ops_cuda.py:
// one symbol table, one `check()` that turns a status into a NativeError naming the call, and
// the device's primary context. Only versioned `_v2` entry points are bound where they exist:
// the unsuffixed ones are the legacy 32-bit ABI.
//
// Handles (CUcontext, CUstream, CUevent, CUmodule, CUfunction) and device pointers travel as
// plain numbers through `u64` parameters. Out-parameters are written into small typed arrays
// over one ArrayBuffer allocated once, passed as the argument itself (see DESIGN.md, Bun
// issue 32054: never a `ptr()` of a short-lived small array).
import { CString, dlopen, type FFIFunction } from "bun:ffi";
import { NativeError } from "../../errors.ts";

const LIB = "libcuda.so.1";

const REQUIRED = {
  cuInit: { args: ["u32"], returns: "i32" },
  cuDriverGetVersion: { args: ["ptr"], returns: "i32" },
  cuGetErrorName: { args: ["i32", "ptr"], returns: "i32" },
  cuGetErrorString: { args: ["i32", "ptr"], returns: "i32" },
  cuDeviceGetCount: { args: ["ptr"], returns: "i32" },
  cuDeviceGet: { args: ["ptr", "i32"], returns: "i32" },
  cuDeviceGetName: { args: ["ptr", "i32", "i32"], returns: "i32" },
  cuDeviceGetAttribute: { args: ["ptr", "i32", "i32"], returns: "i32" },
  cuDeviceTotalMem_v2: { args: ["ptr", "i32"], returns: "i32" },
  cuDevicePrimaryCtxRetain: { args: ["ptr", "i32"], returns: "i32" },
  cuDevicePrimaryCtxRelease_v2: { args: ["i32"], returns: "i32" },
  cuCtxSetCurrent: { args: ["u64"], returns: "i32" },
  cuMemAlloc_v2: { args: ["ptr", "u64"], returns: "i32" },
  cuMemFree_v2: { args: ["u64"], returns: "i32" },
  cuMemAllocHost_v2: { args: ["ptr", "u64"], returns: "i32" },
  cuMemFreeHost: { args: ["u64"], returns: "i32" },
  cuMemGetInfo_v2: { args: ["ptr", "ptr"], returns: "i32" },
  // (dst device, src host address, bytes, stream)
  cuMemcpyHtoDAsync_v2: { args: ["u64", "u64", "u64", "u64"], returns: "i32" },
  // (dst host memory: a typed array passed as itself, src device, bytes, stream)
  cuMemcpyDtoHAsync_v2: { args: ["ptr", "u64", "u64", "u64"], returns: "i32" },
  cuMemcpyDtoDAsync_v2: { args: ["u64", "u64", "u64", "u64"], returns: "i32" },
  cuStreamCreate: { args: ["ptr", "u32"], returns: "i32" },
  cuStreamDestroy_v2: { args: ["u64"], returns: "i32" },
  cuStreamSynchronize: { args: ["u64"], returns: "i32" },
  cuStreamWaitEvent: { args: ["u64", "u64", "u32"], returns: "i32" },
  cuEventCreate: { args: ["ptr", "u32"], returns: "i32" },
  cuEventRecord: { args: ["u64", "u64"], returns: "i32" },
  cuEventSynchronize: { args: ["u64"], returns: "i32" },
  cuEventDestroy_v2: { args: ["u64"], returns: "i32" },
  // (module out, image, numOptions, options, optionValues)
  cuModuleLoadDataEx: { args: ["ptr", "ptr", "u32", "ptr", "ptr"], returns: "i32" },
  cuModuleUnload: { args: ["u64"], returns: "i32" },
  cuModuleGetFunction: { args: ["ptr", "u64", "ptr"], returns: "i32" },
  // (f, gridX, gridY, gridZ, blockX, blockY, blockZ, sharedBytes, stream, params, extra)
  cuLaunchKernel: {
    args: ["u64", "u32", "u32", "u32", "u32", "u32", "u32", "u32", "u64", "ptr", "ptr"],
    returns: "i32",
  },
} as const satisfies Record<string, FFIFunction>;

/** Entry points that older or newer drivers may lack; each is bound on its own. */
const OPTIONAL = {
  // (host address, bytes, flags)
  cuMemHostRegister_v2: { args: ["u64", "u64", "u32"], returns: "i32" },
  cuMemHostUnregister: { args: ["u64"], returns: "i32" },
  // (ms out, start, end): _v2 since CUDA 12.8; the original is deprecated there.
  cuEventElapsedTime_v2: { args: ["ptr", "u64", "u64"], returns: "i32" },
  cuEventElapsedTime: { args: ["ptr", "u64", "u64"], returns: "i32" },
} as const satisfies Record<string, FFIFunction>;

type Symbols<T extends Record<string, FFIFunction>> = ReturnType<typeof dlopen<T>>["symbols"];
export type Driver = Symbols<typeof REQUIRED>;
export type OptionalDriver = Partial<Symbols<typeof OPTIONAL>>;

export const CU_EVENT_DEFAULT = 0x0;
export const CU_EVENT_DISABLE_TIMING = 0x2;
export const CU_STREAM_NON_BLOCKING = 0x1;
export const CU_MEMHOSTREGISTER_PORTABLE = 0x1;
export const CU_MEMHOSTREGISTER_READ_ONLY = 0x8;
const CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT = 16;
const CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR = 75;
const CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR = 76;

// Out-parameter slots: one arena, views made once, passed as arguments themselves.
const outArena = new ArrayBuffer(64 + 256);
/** Slot for one pointer-sized result (handle, device pointer, size, C string pointer). */
export const OUT_A = new BigUint64Array(outArena, 0, 1);
export const OUT_B = new BigUint64Array(outArena, 8, 1);
/** Slot for int / float results. */
export const OUT_I32 = new Int32Array(outArena, 16, 1);
export const OUT_F32 = new Float32Array(outArena, 20, 1);
const NAME_BUF = new Uint8Array(outArena, 64, 256);

export const outA = (): number => Number(OUT_A[0]);

let loaded: { drv: Driver; opt: OptionalDriver } | undefined;

/** Binds libcuda.so.1 once. Throws NativeError (with a hint) when it cannot be loaded. */
export function loadDriver(): { drv: Driver; opt: OptionalDriver } {
  if (loaded) return loaded;
  let drv: Driver;
  try {
    drv = dlopen(LIB, REQUIRED).symbols;
  } catch (e) {
    // Bun words a missing library as a failed open of ./libcuda.so.1; say what it means.
    const why = /cannot open shared object file/.test((e as Error).message) ? "not found" : (e as Error).message;
    throw new NativeError(
      `the CUDA driver (${LIB}) could not be loaded: ${why}`,
      "install the NVIDIA driver (nvidia-smi should list the GPU); in a container, run it with the GPU exposed (--gpus all)",
    );
  }
  const opt: OptionalDriver = {};
  for (const name of Object.keys(OPTIONAL) as (keyof typeof OPTIONAL)[]) {
    try {
      const one = { [name]: OPTIONAL[name] } as Pick<typeof OPTIONAL, typeof name>;
      Object.assign(opt, dlopen(LIB, one).symbols);
    } catch {
      // Absent on this driver: callers check for the symbol and take their fallback.
    }
  }
  loaded = { drv, opt };
  return loaded;
}

function cString(addr: bigint): string {
  return addr === 0n ? "" : new CString(Number(addr) as never).toString();
}

const HINTS: Record<string, string> = {
  CUDA_ERROR_OUT_OF_MEMORY: "the GPU is out of memory: lower the memory budget, the context length or the batch, or free the GPU (nvidia-smi shows other processes)",
  CUDA_ERROR_NO_DEVICE: "no CUDA GPU is visible: check nvidia-smi and CUDA_VISIBLE_DEVICES, or run with --device cpu",
  CUDA_ERROR_INVALID_DEVICE: "the device ordinal does not exist: check nvidia-smi and CUDA_VISIBLE_DEVICES",
  CUDA_ERROR_STUB_LIBRARY: "libcuda.so.1 is the toolkit's stub, not the driver: put the driver's library first on the loader path",
  CUDA_ERROR_INVALID_PTX: "the driver rejected the kernels' PTX: update the NVIDIA driver, or rebuild with `zig build` and check it with ptxas",
  CUDA_ERROR_UNSUPPORTED_PTX_VERSION: "the driver is older than the PTX it was given: update the NVIDIA driver",
  CUDA_ERROR_NO_BINARY_FOR_GPU: "this GPU is older than the kernels' target (sm_80): run with --device cpu",
  CUDA_ERROR_ILLEGAL_ADDRESS: "a kernel accessed memory out of bounds; the CUDA context is now unusable. Please report this with the model and options (compute-sanitizer pinpoints the kernel)",
  CUDA_ERROR_LAUNCH_FAILED: "a kernel failed; the CUDA context is now unusable. Please report this with the model and options",
  CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES: "a kernel launch asked for more registers or shared memory than the GPU has: please report this with the GPU model",
  CUDA_ERROR_NOT_INITIALIZED: "cuInit was not called or failed: this is a bug in the CUDA backend",
  CUDA_ERROR_INVALID_CONTEXT: "no CUDA context is current on this thread: CUDA calls must come from the thread that created the backend",
  CUDA_ERROR_SYSTEM_DRIVER_MISMATCH: "the kernel module and the user-space driver differ in version: reboot or reinstall the NVIDIA driver",
};

/** Turns a CUresult into a NativeError naming the call, the driver's name and text, and a hint. */
export function check(status: number, call: string): void {
  if (status === 0) return;
  let name = `CUresult ${status}`;
  let text = "";
  if (loaded) {
    if (loaded.drv.cuGetErrorName(status, OUT_A) === 0) name = cString(OUT_A[0]);
    if (loaded.drv.cuGetErrorString(status, OUT_A) === 0) text = cString(OUT_A[0]);
  }
  throw new NativeError(
    `${call} failed: ${name} (${status})${text ? `: ${text}` : ""}`,
    HINTS[name] ?? `see the CUDA driver API documentation of ${call.replace(/\(.*$/, "")} for ${name}`,
  );
}

export interface DeviceInfo {
  /** The CUdevice handle (cuDeviceGet of the ordinal). */
  readonly device: number;
  readonly name: string;
  /** "major.minor", e.g. "9.0" on H100. */
  readonly computeCapability: string;
  readonly ccMajor: number;
  readonly ccMinor: number;
  readonly totalMem: number;
  readonly multiprocessors: number;
  /** e.g. 13000 for CUDA 13.0. */
  readonly driverVersion: number;
}

function attribute(drv: Driver, attr: number, dev: number): number {
  check(drv.cuDeviceGetAttribute(OUT_I32, attr, dev), `cuDeviceGetAttribute(${attr})`);
  return OUT_I32[0];
}

/** cuInit and a description of device `ordinal` (no context is created). */
export function describeDevice(ordinal = 0): DeviceInfo {
  const { drv } = loadDriver();
  check(drv.cuInit(0), "cuInit");
  check(drv.cuDriverGetVersion(OUT_I32), "cuDriverGetVersion");
  const driverVersion = OUT_I32[0];
  check(drv.cuDeviceGetCount(OUT_I32), "cuDeviceGetCount");
  if (OUT_I32[0] <= ordinal) {
    throw new NativeError(
      `CUDA device ${ordinal} does not exist (${OUT_I32[0]} visible)`,
      "check nvidia-smi and CUDA_VISIBLE_DEVICES, or run with --device cpu",
    );
  }
  check(drv.cuDeviceGet(OUT_I32, ordinal), "cuDeviceGet");
  const dev = OUT_I32[0];
  check(drv.cuDeviceGetName(NAME_BUF, NAME_BUF.length, dev), "cuDeviceGetName");
  const end = NAME_BUF.indexOf(0);
  const name = new TextDecoder().decode(NAME_BUF.subarray(0, end < 0 ? NAME_BUF.length : end));
  check(drv.cuDeviceTotalMem_v2(OUT_A, dev), "cuDeviceTotalMem_v2");
  const totalMem = outA();
  const ccMajor = attribute(drv, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, dev);
  const ccMinor = attribute(drv, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, dev);
  const multiprocessors = attribute(drv, CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT, dev);
  return { device: dev, name, computeCapability: `${ccMajor}.${ccMinor}`, ccMajor, ccMinor, totalMem, multiprocessors, driverVersion };
}

/**
 * The device's primary context made current on this thread (the one every CUDA library
 * shares). CUDA calls must stay on this thread. `release()` is idempotent.
 */
export class PrimaryContext {
  readonly drv: Driver;
  readonly opt: OptionalDriver;
  readonly info: DeviceInfo;
  readonly ctx: number;
  private released = false;

  constructor(ordinal = 0) {
    const { drv, opt } = loadDriver();
    this.drv = drv;
    this.opt = opt;
    this.info = describeDevice(ordinal);
    check(drv.cuDevicePrimaryCtxRetain(OUT_A, this.info.device), "cuDevicePrimaryCtxRetain");
    this.ctx = outA();
    check(drv.cuCtxSetCurrent(this.ctx), "cuCtxSetCurrent");
  }

  release(): void {
    if (this.released) return;
    this.released = true;
    check(this.drv.cuDevicePrimaryCtxRelease_v2(this.info.device), "cuDevicePrimaryCtxRelease_v2");
  }
}
