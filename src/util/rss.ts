// The process's resident set as the kernel counts it (/proc/self/status), for the CPU budget:
// --max-memory bounds the peak RSS (VmHWM) of the whole process, up to a fixed overhead.
import { readFileSync } from "node:fs";

/**
 * What the process holds before any model data: the Bun runtime, the JIT and the bundled code.
 * Measured on the 2-core CI machine: `airllm --version` peaks at 27 MiB and a whole stories260K run
 * (< 1 MiB of weights and KV) at 41 MiB; 64 MiB leaves room for allocator and GC variation. This is
 * the overhead --max-memory does not count.
 */
export const RUNTIME_OVERHEAD_BYTES = 64 * 2 ** 20;

/** The process's peak resident set (VmHWM), in bytes; 0 where /proc is not there. */
export function peakRssBytes(): number {
  try {
    const m = /^VmHWM:\s+(\d+) kB$/m.exec(readFileSync("/proc/self/status", "utf8"));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

/**
 * Bytes the process already holds beyond the runtime overhead (a tokenizer's tables, and the peak
 * of parsing them): a RAM budget must leave them out of what it gives the model.
 */
export function heldBeyondRuntime(): number {
  return Math.max(0, peakRssBytes() - RUNTIME_OVERHEAD_BYTES);
}
