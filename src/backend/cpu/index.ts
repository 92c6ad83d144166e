export { CpuBackend, createCpuBackend, type CpuBackendOptions } from "./cpu-backend.ts";
