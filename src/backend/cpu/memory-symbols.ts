// bun:ffi signatures of the Zig library's memory and thread-pool exports (zig-src/cpu/api.zig).
// Addresses travel as "ptr": a number cast to Pointer, or a typed array passed directly.
import type { FFIFunction } from "bun:ffi";

export const memorySymbols = {
  /** (threads: 0 = one per CPU) → threads the pool runs. Idempotent; another count rebuilds it. */
  airllm_init: { args: ["u32"], returns: "u32" },
  /** Joins the pool's threads; ops keep working on the calling thread. Idempotent. */
  airllm_shutdown: { args: [], returns: "void" },
  /** (bytes) → 64-byte aligned address, null when out of memory. */
  airllm_alloc: { args: ["u64"], returns: "ptr" },
  airllm_free: { args: ["ptr"], returns: "void" },
  /** (dst, src, bytes): non-overlapping copy, multithreaded when large. */
  airllm_memcpy: { args: ["ptr", "ptr", "u64"], returns: "void" },
} as const satisfies Record<string, FFIFunction>;
