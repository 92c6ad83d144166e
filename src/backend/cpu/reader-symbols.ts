// bun:ffi signatures of the native read-ahead pool (zig-src/cpu/reader.zig, exported by api.zig).
import { FFIType, type FFIFunction } from "bun:ffi";

export const readerSymbols = {
  /** (threads) → reader handle, null when no thread could start. */
  airllm_reader_create: { args: ["u32"], returns: "ptr" },
  airllm_reader_destroy: { args: ["ptr"], returns: "void" },
  /** (reader, fd, offset, bytes, dst) → ticket (0 = too many reads in flight). */
  airllm_reader_submit: { args: ["ptr", "i32", "u64", "u64", "ptr"], returns: FFIType.u64_fast },
  /** (reader, ticket) → 0, an errno, or -1 (unknown ticket); blocks until the read is done. */
  airllm_reader_wait: { args: ["ptr", "u64"], returns: "i32" },
  /** (reader, ticket) → like wait, but -2 while the read runs. */
  airllm_reader_poll: { args: ["ptr", "u64"], returns: "i32" },
  /** (reader, out u64[2]) ← bytes read so far, nanoseconds during which reads were running. */
  airllm_reader_stats: { args: ["ptr", "ptr"], returns: "void" },
} as const satisfies Record<string, FFIFunction>;
