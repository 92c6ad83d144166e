export { CudaBackend, createCudaBackend, type CudaBackendOptions } from "./cuda-backend.ts";
export { probeCuda, MIN_COMPUTE_CAPABILITY, type CudaProbe } from "./detect.ts";
export { runOpSelftest, type OpCheck, type SelftestOptions } from "./op-selftest.ts";
export { measureH2D, type H2DBandwidth } from "./bandwidth.ts";
export { SlotPool, type Slot } from "./slot-pool.ts";
