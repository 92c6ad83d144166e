// AirLLM's split: one safetensors file per layer-plan entry in `<out>/splitted_model/`, named after
// the module, original tensor names inside, and an empty `<file>.done` once the file is durable.
// The markers make the split resumable: an entry without one is redone from scratch, an entry with
// one (and the right size and header) is kept, and a split whose entries all have one is reused untouched.
// With `compression` (AirLLM's "4bit" / "8bit") the folder is `splitted_model.4bit/` or `.8bit/`
// and every 2-D weight is stored as nf4 / q8_block (zig-src/cpu/quant_bnb.zig).

import type { BnbDType, DType, FloatDType } from "../backend/backend.ts";
import { tensorBytes } from "../backend/backend.ts";
import { CpuBackend } from "../backend/cpu/cpu-backend.ts";
import { copyFileSync, existsSync, mkdirSync, rmSync, statfsSync, statSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { errnoCode, IoError, ModelFormatError, UsageError } from "../errors.ts";
import { pathKind } from "../formats/input-files.ts";
import { DONE_SUFFIX, hasOwnWeights, SPLIT_DIR, WeightFiles } from "../formats/model-files.ts";
import { SafetensorsFile } from "../formats/safetensors.ts";
import { buildArchitecture } from "../model/arch/index.ts";
import { CONFIG_FILE, loadModelConfig } from "../model/config.ts";
import { quote } from "../util/validate.ts";
import { formatBytes } from "../util/size.ts";
import { fsyncDir, safetensorsFileBytes, writeSafetensors, type TensorSource } from "./safetensors-writer.ts";

/** Copied beside the weights so the split folder is itself a model folder (the tokenizer too, in
 *  whichever file the model keeps it: tokenizer.json, SentencePiece's, tiktoken's). */
const SIDE_FILES = ["config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "tokenizer.model", "qwen.tiktoken"];

export interface SplitProgress {
  /** 1-based position of the entry in the plan, and the plan's length. */
  readonly done: number;
  readonly total: number;
  /** Module name, e.g. "model.layers.3" (the file is `<name>.safetensors`). */
  readonly name: string;
  /** Size of the entry's file. */
  readonly bytes: number;
  /** True when the entry was already complete from an earlier run and was kept. */
  readonly kept: boolean;
}

/** AirLLM's compression names and the dtype each stores 2-D weights in. */
export type Compression = "4bit" | "8bit";
export const COMPRESSION_DTYPE: Record<Compression, BnbDType> = { "4bit": "nf4", "8bit": "q8_block" };

/** A --compression value checked: undefined (none), "4bit" or "8bit". */
export function parseCompression(value: string | undefined): Compression | undefined {
  if (value === undefined || value === "4bit" || value === "8bit") return value;
  throw new UsageError(`--compression ${quote(value)} is not one of 4bit, 8bit`, "4bit = NF4 (blocks of 64, as AirLLM), 8bit = blockwise 8-bit (linear map, blocks of 64)");
}

/** `splitted_model`, or AirLLM's `splitted_model.4bit` / `splitted_model.8bit`. */
export function splitDirName(compression?: Compression): string {
  return compression === undefined ? SPLIT_DIR : `${SPLIT_DIR}.${compression}`;
}

export interface SplitOptions {
  /** Store every 2-D weight (projections, embedding, lm_head) compressed. */
  readonly compression?: Compression;
  /** Folder to put `splitted_model/` in (AirLLM's layer_shards_saving_path); default: the model folder. */
  readonly outDir?: string;
  /** Delete the original safetensors (and index) once the whole split is complete. */
  readonly deleteOriginal?: boolean;
  /** Free bytes for new files in `dir`; default statfs. Injectable so a test can fake a full disk. */
  readonly freeBytes?: (dir: string) => number;
  readonly onProgress?: (p: SplitProgress) => void;
}

export interface SplitResult {
  /** The split folder (`.../splitted_model`). */
  readonly splitDir: string;
  readonly entries: number;
  /** Bytes of all split files, and of those written by this call. */
  readonly totalBytes: number;
  readonly writtenBytes: number;
  /** True when a complete split was found and nothing was written. */
  readonly reused: boolean;
  /** Original weight files deleted (deleteOriginal). */
  readonly deleted: readonly string[];
}

interface PlannedFile {
  readonly name: string;
  readonly path: string;
  readonly tensors: TensorSource[];
  /** The original of each tensor when it is stored compressed (tensors[i] then has no data yet). */
  readonly originals: (TensorSource | undefined)[];
  readonly bytes: number;
}

/**
 * The dtype a tensor is stored in: every 2-D weight compressed; norms and biases keep their
 * precision — they are a tiny share of the bytes, and a 4-bit norm scale would shift every
 * activation of the layer at once.
 */
export function storedDtype(t: { dtype: DType; shape: readonly number[] }, compression?: Compression): DType {
  return compression !== undefined && t.shape.length === 2 ? COMPRESSION_DTYPE[compression] : t.dtype;
}

/** `f.tensors` with the compressed ones quantized into buffers of `cpu` (freed by the caller). */
function materialize(cpu: CpuBackend, f: PlannedFile, buffers: number[]): TensorSource[] {
  return f.tensors.map((t, i) => {
    const o = f.originals[i];
    if (o === undefined) return t;
    const addr = cpu.alloc(Math.max(1, t.bytes));
    buffers.push(addr);
    const n = o.shape.reduce((a, d) => a * d, 1);
    const bad = cpu.quantize(addr, t.dtype as BnbDType, o.addr, o.dtype as FloatDType, n);
    if (bad !== null) {
      throw new ModelFormatError(
        `tensor "${o.name}" (${f.name}) has a NaN or Inf at element ${bad}; it cannot be compressed to ${t.dtype}`,
        "the checkpoint is damaged or was saved after a diverged training step; use a clean copy of the model",
      );
    }
    return { ...t, addr };
  });
}

export function defaultFreeBytes(dir: string): number {
  const s = statfsSync(dir);
  return s.bavail * s.bsize;
}

const sizeOf = (path: string) => (existsSync(path) ? statSync(path).size : 0);

/** Split the model folder `modelDir` into `<outDir ?? modelDir>/splitted_model/`. */
export function splitModel(modelDir: string, options: SplitOptions = {}): SplitResult {
  const splitDir = resolve(options.outDir ?? modelDir, splitDirName(options.compression));
  const config = loadModelConfig(modelDir);
  // With the originals deleted this opens the split itself, which then must be complete (below).
  const source = WeightFiles.open(modelDir);
  let result: Omit<SplitResult, "deleted">;
  try {
    const configName = quote(join(modelDir, CONFIG_FILE), 200);
    const { plan } = buildArchitecture({ config, configName, tensors: source, ropeInterleaved: false, ropeFreqFactors: null });
    const files: PlannedFile[] = plan.map((entry) => {
      const tensors = entry.tensors.map(({ name: n }): TensorSource => {
        // A tied model's lm_head entry reads the embedding; its file gets a copy under the name the
        // entry gives it (lm_head.weight), so every entry file is self-contained and the split loads
        // as an untied model in a loader that reads lm_head.safetensors alone (AirLLM does). Our
        // loader follows the copied config.json and still reads the embedding: the same bytes, the
        // same logits.
        const stored = entry.splitNames?.get(n) ?? n;
        const t = stored !== n && source.has(stored) ? source.get(stored) : source.get(n);
        return { name: stored, dtype: t.dtype, shape: t.shape, addr: t.addr, bytes: t.bytes };
      });
      const originals = tensors.map((t) => (storedDtype(t, options.compression) === t.dtype ? undefined : t));
      const stored = tensors.map((t, i): TensorSource => {
        if (originals[i] === undefined) return t;
        const dtype = storedDtype(t, options.compression);
        return { name: t.name, dtype, shape: t.shape, addr: 0, bytes: tensorBytes(dtype, t.shape) };
      });
      const path = join(splitDir, `${entry.name}.safetensors`);
      return { name: entry.name, path, tensors: stored, originals, bytes: safetensorsFileBytes(stored) };
    });
    const todo = files.filter((f) => !isDone(f));
    const totalBytes = files.reduce((a, f) => a + f.bytes, 0);

    if (todo.length > 0 && source.files.some((f) => resolve(dirname(f.path)) === splitDir)) {
      throw new ModelFormatError(
        `${quote(modelDir, 200)} has no weights of its own and its split ${quote(splitDir, 200)} is incomplete (${todo[0]!.name} is not done)`,
        "The originals were deleted before the split finished; download the model again and rerun `airllm split`.",
      );
    }
    if (todo.length === 0) {
      result = { splitDir, entries: files.length, totalBytes, writtenBytes: 0, reused: true };
    } else {
      checkFreeSpace(splitDir, todo, options.freeBytes ?? defaultFreeBytes);
      let writtenBytes = 0;
      // The quantizer is the CPU library's (threaded Zig); only a compressed split needs it.
      const cpu = options.compression !== undefined ? new CpuBackend() : undefined;
      // Every write below (folder, side files, tensors, markers) fails as one error naming the folder.
      try {
        mkdirSync(splitDir, { recursive: true });
        for (const f of SIDE_FILES) if (existsSync(join(modelDir, f))) copyFileSync(join(modelDir, f), join(splitDir, f));
        for (const [i, f] of files.entries()) {
          const redo = todo.includes(f);
          if (redo) {
            // The marker goes first: a crash between these removals must never leave a .done
            // beside a missing or partial file.
            rmSync(f.path + DONE_SUFFIX, { force: true });
            rmSync(f.path, { force: true });
            rmSync(`${f.path}.tmp`, { force: true });
            const buffers: number[] = [];
            try {
              writtenBytes += writeSafetensors(f.path, cpu === undefined ? f.tensors : materialize(cpu, f, buffers));
            } finally {
              for (const b of buffers) cpu!.free(b);
            }
            writeFileSync(f.path + DONE_SUFFIX, "");
            fsyncDir(splitDir);
          }
          options.onProgress?.({ done: i + 1, total: files.length, name: f.name, bytes: f.bytes, kept: !redo });
        }
      } catch (e) {
        throw writeError(splitDir, e);
      } finally {
        cpu?.destroy();
      }
      result = { splitDir, entries: files.length, totalBytes, writtenBytes, reused: false };
    }
  } finally {
    source.close();
  }
  // Only now is the split complete, so only now may the originals go (AirLLM's delete_original).
  const deleted = options.deleteOriginal === true ? deleteOriginals(modelDir, source) : [];
  return { ...result, deleted };
}

/**
 * Whether an entry's file is complete from an earlier run: its marker, its size, and a header
 * listing exactly the planned tensors — a file of the right size with a damaged header is redone,
 * not trusted.
 */
function isDone(f: PlannedFile): boolean {
  if (pathKind(f.path + DONE_SUFFIX) !== "file" || sizeOf(f.path) !== f.bytes) return false;
  let file: SafetensorsFile;
  try {
    file = SafetensorsFile.open(f.path);
  } catch (e) {
    if (e instanceof ModelFormatError) return false;
    throw e;
  }
  try {
    const names = file.names();
    return names.length === f.tensors.length && f.tensors.every((t) => {
      if (!file.has(t.name)) return false;
      const got = file.get(t.name);
      return got.dtype === t.dtype && got.bytes === t.bytes && got.shape.length === t.shape.length && got.shape.every((d, i) => d === t.shape[i]);
    });
  } finally {
    file.close();
  }
}

/** A failed write (read-only folder, disk full, no inodes) as an error naming the folder; others pass. */
function writeError(splitDir: string, e: unknown): unknown {
  if (errnoCode(e) === undefined) return e;
  return new IoError(
    `cannot write the split to ${quote(splitDir, 200)}: ${(e as Error).message}`,
    "pass --out DIR (AirLLM's layer_shards_saving_path) on a writable disk with room",
  );
}

/** Refuse, before writing anything, when the entries still to write do not fit on the disk. */
function checkFreeSpace(splitDir: string, todo: readonly PlannedFile[], freeBytes: (dir: string) => number): void {
  // Leftovers of an interrupted run are deleted before rewriting, so their space counts as free.
  const need = todo.reduce((a, f) => a + f.bytes, 0);
  const reclaimable = todo.reduce((a, f) => a + sizeOf(f.path) + sizeOf(`${f.path}.tmp`), 0);
  let probe = splitDir;
  while (!existsSync(probe) && dirname(probe) !== probe) probe = dirname(probe);
  const free = freeBytes(probe);
  if (need > free + reclaimable) {
    throw new UsageError(
      `the split needs ${formatBytes(need)} for ${todo.length} files but only ${formatBytes(free + reclaimable)} is free for "${splitDir}"`,
      "free some disk space, or pass --out DIR on a disk with room (AirLLM's layer_shards_saving_path)",
    );
  }
}

/** Delete the weight files `source` read (and the shard index), never a split or the config. */
function deleteOriginals(modelDir: string, source: WeightFiles): string[] {
  // Without weights of its own the source was a split folder: the originals are already gone.
  if (!hasOwnWeights(modelDir)) return [];
  const paths = source.files.map((f) => f.path);
  if (source.index !== null) paths.push(source.index);
  for (const p of paths) rmSync(p, { force: true });
  return paths;
}
