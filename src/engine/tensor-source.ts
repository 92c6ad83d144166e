// What the engine needs from model files: named host tensors with raw addresses (mmap'd),
// whatever the format behind them (safetensors, split folders, GGUF).
import type { DType } from "../backend/backend.ts";

export interface HostTensor {
  readonly name: string;
  readonly dtype: DType;
  readonly shape: readonly number[];
  /** Absolute host address of the first byte (inside a read-only file mapping). */
  readonly addr: number;
  readonly bytes: number;
  /** The file it lives in, for error messages and profiling. */
  readonly file: string;
  /** Byte offset of the first byte in `file`: the streamer preads from there (no second copy on disk). */
  readonly fileOffset: number;
}

export interface TensorSource {
  has(name: string): boolean;
  /** Throws a ModelFormatError naming the tensor when absent. */
  get(name: string): HostTensor;
  /**
   * Tensors the files hold that no name in `used` reads, by their names in the files (a source
   * leaves out what it consumes itself, such as GGUF's rope_freqs.weight).
   */
  unused(used: ReadonlySet<string>): string[];
  /** Throws a ModelFormatError if a file was truncated or rewritten since it was mapped. */
  checkUnchanged(): void;
  close(): void;
}
