// AirLLM's split: one safetensors file per layer-plan entry in `<out>/splitted_model/`, named after
// the module, original tensor names inside, and an empty `<file>.done` once the file is durable.
// The markers make the split resumable: an entry without one is redone from scratch, an entry with
// one (and the right size) is kept, and a split whose entries all have one is reused untouched.

import { copyFileSync, existsSync, mkdirSync, rmSync, statfsSync, statSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { ModelFormatError, UsageError } from "../errors.ts";
import { DONE_SUFFIX, hasOwnWeights, INDEX_FILE, SPLIT_DIR, WeightFiles } from "../formats/model-files.ts";
import { loadModelConfig } from "../model/config.ts";
import { buildLayerPlan } from "../model/layer-plan.ts";
import { formatBytes } from "../util/size.ts";
import { fsyncDir, safetensorsFileBytes, writeSafetensors, type TensorSource } from "./safetensors-writer.ts";

/** Copied beside the weights so the split folder is itself a model folder. */
const SIDE_FILES = ["config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json"];

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

export interface SplitOptions {
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
  readonly bytes: number;
}

export function defaultFreeBytes(dir: string): number {
  const s = statfsSync(dir);
  return s.bavail * s.bsize;
}

const sizeOf = (path: string) => (existsSync(path) ? statSync(path).size : 0);

/** Split the model folder `modelDir` into `<outDir ?? modelDir>/splitted_model/`. */
export function splitModel(modelDir: string, options: SplitOptions = {}): SplitResult {
  const splitDir = resolve(options.outDir ?? modelDir, SPLIT_DIR);
  const config = loadModelConfig(modelDir);
  // With the originals deleted this opens the split itself, which then must be complete (below).
  const source = WeightFiles.open(modelDir);
  let result: Omit<SplitResult, "deleted">;
  try {
    const plan = buildLayerPlan({
      numLayers: config.numLayers,
      bias: { qkv: config.attentionBias, out: config.attentionOutBias, mlp: config.mlpBias },
      tiedEmbeddings: config.tieWordEmbeddings || !source.has("lm_head.weight"),
    });
    const files: PlannedFile[] = plan.map((entry) => {
      const tensors = entry.tensors.map((n): TensorSource => {
        // A tied model's lm_head entry reads the embedding; its file gets a copy named
        // lm_head.weight, so every entry file is self-contained and the split loads as an untied
        // model in a loader that reads lm_head.safetensors alone (AirLLM does). Our loader follows
        // the copied config.json and still reads the embedding: the same bytes, the same logits.
        const t = entry.kind === "lm_head" && source.has("lm_head.weight") ? source.get("lm_head.weight") : source.get(n);
        return { name: entry.kind === "lm_head" ? "lm_head.weight" : n, dtype: t.dtype, shape: t.shape, addr: t.addr, bytes: t.bytes };
      });
      const path = join(splitDir, `${entry.name}.safetensors`);
      return { name: entry.name, path, tensors, bytes: safetensorsFileBytes(tensors) };
    });
    const isDone = (f: PlannedFile) => existsSync(f.path + DONE_SUFFIX) && sizeOf(f.path) === f.bytes;
    const todo = files.filter((f) => !isDone(f));
    const totalBytes = files.reduce((a, f) => a + f.bytes, 0);

    if (todo.length > 0 && source.files.some((f) => resolve(dirname(f.path)) === splitDir)) {
      throw new ModelFormatError(
        `"${modelDir}" has no weights of its own and its split "${splitDir}" is incomplete (${todo[0].name} is not done)`,
        "The originals were deleted before the split finished; download the model again and rerun `airllm split`.",
      );
    }
    if (todo.length === 0) {
      result = { splitDir, entries: files.length, totalBytes, writtenBytes: 0, reused: true };
    } else {
      checkFreeSpace(splitDir, todo, options.freeBytes ?? defaultFreeBytes);
      mkdirSync(splitDir, { recursive: true });
      for (const f of SIDE_FILES) if (existsSync(join(modelDir, f))) copyFileSync(join(modelDir, f), join(splitDir, f));
      let writtenBytes = 0;
      for (const [i, f] of files.entries()) {
        const redo = todo.includes(f);
        if (redo) {
          // The marker goes first: a crash between these removals must never leave a .done
          // beside a missing or partial file.
          rmSync(f.path + DONE_SUFFIX, { force: true });
          rmSync(f.path, { force: true });
          rmSync(`${f.path}.tmp`, { force: true });
          writtenBytes += writeSafetensors(f.path, f.tensors);
          writeFileSync(f.path + DONE_SUFFIX, "");
          fsyncDir(splitDir);
        }
        options.onProgress?.({ done: i + 1, total: files.length, name: f.name, bytes: f.bytes, kept: !redo });
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
  const index = join(modelDir, INDEX_FILE);
  if (existsSync(index)) paths.push(index);
  for (const p of paths) rmSync(p, { force: true });
  return paths;
}
