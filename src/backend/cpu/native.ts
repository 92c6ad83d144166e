// Opens the Zig library once per process. The import embeds the .so in a `bun build --compile`
// binary; `zig build` must have produced it before Bun can resolve this module.
import { dlopen, type Pointer } from "bun:ffi";
import libPath from "../../../zig-out/lib/libairllm.so" with { type: "file" };
import { NativeError } from "../../errors.ts";
import { memorySymbols } from "./memory-symbols.ts";
import { opSymbols } from "./op-symbols.ts";
import { readerSymbols } from "./reader-symbols.ts";

const symbols = { ...memorySymbols, ...opSymbols, ...readerSymbols };

export type CpuLibrary = ReturnType<typeof dlopen<typeof symbols>>["symbols"];

let lib: CpuLibrary | undefined;

export function cpuLibrary(): CpuLibrary {
  if (lib) return lib;
  try {
    lib = dlopen(libPath, symbols).symbols;
  } catch (e) {
    throw new NativeError(
      `dlopen(${libPath}) failed: ${(e as Error).message}`,
      "rebuild the native library with `zig build -Doptimize=ReleaseFast`",
    );
  }
  return lib;
}

/** A numeric address as bun:ffi's pointer type (the same number at run time). */
export function asPtr(addr: number): Pointer {
  return addr as Pointer;
}

const STATUS_TEXT: Record<number, string> = {
  1: "unknown dtype code",
  2: "unsupported shape",
  3: "index out of range",
  4: "out of memory",
};

/** Throws a NativeError naming the call and its arguments when a status is not 0. */
export function check(status: number, call: string, details: string): void {
  if (status === 0) return;
  const what = STATUS_TEXT[status] ?? `status ${status}`;
  throw new NativeError(`${call} failed: ${what} (${details})`, "check the op's shape arguments against src/backend/backend.ts");
}
