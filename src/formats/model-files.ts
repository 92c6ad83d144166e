// The weights of a Hugging Face model folder as one name → tensor table, whether they live in a
// single `model.safetensors`, in shards listed by `model.safetensors.index.json`, in PyTorch's
// `pytorch_model.bin` (or shards listed by `pytorch_model.bin.index.json`; read by a restricted
// unpickler, mapped like safetensors), or in AirLLM's split layout (one `<module>.safetensors` per
// layer-plan entry, each with a `.done` marker).

import { readdirSync } from "node:fs";
import { basename, join } from "node:path";
import { ModelFormatError } from "../errors.ts";
import { quote, show } from "../util/validate.ts";
import { notAFile, pathKind, readJsonObject, requireFile } from "./input-files.ts";
import type { MappedFile } from "./mmap.ts";
import { SafetensorsFile, type TensorInfo } from "./safetensors.ts";
import { TorchCheckpointFile } from "./torch-checkpoint.ts";

export type { TensorInfo } from "./safetensors.ts";

/** What the engine and the layer streamer need from a set of weight files. */
export interface TensorStore {
  has(name: string): boolean;
  /** Throws ModelFormatError naming the tensor when it is absent. */
  get(name: string): TensorInfo;
  names(): string[];
  /** Tensors not in `used`. */
  unused(used: ReadonlySet<string>): string[];
  checkUnchanged(): void;
  /** Unmap everything; addresses handed out become invalid. Idempotent. */
  close(): void;
}

export const SINGLE_FILE = "model.safetensors";
export const INDEX_FILE = "model.safetensors.index.json";
export const TORCH_SINGLE_FILE = "pytorch_model.bin";
export const TORCH_INDEX_FILE = "pytorch_model.bin.index.json";
/** AirLLM's split folder, inside the model folder (or layer_shards_saving_path). */
export const SPLIT_DIR = "splitted_model";
/** The file every split has; its presence is what marks a folder as a split. */
export const SPLIT_MARKER = "model.embed_tokens.safetensors";
/** Suffix of the empty marker written once a split file is complete and on disk. */
export const DONE_SUFFIX = ".done";

/** Whether `dir` holds weights of its own (a single file or a shard index), not counting a split. */
export function hasOwnWeights(dir: string): boolean {
  return [INDEX_FILE, SINGLE_FILE, TORCH_INDEX_FILE, TORCH_SINGLE_FILE].some((f) => pathKind(join(dir, f)) !== "missing");
}

/** One mapped weights file: safetensors or a PyTorch checkpoint. */
export interface WeightFile {
  readonly path: string;
  /** The whole-file mapping (checked for changes before each pass). */
  readonly mapping: MappedFile;
  has(name: string): boolean;
  get(name: string): TensorInfo;
  names(): string[];
  close(): void;
}

const HINT_DOWNLOAD = "Download the model's weights into this folder again.";

/** Every tensor of a model folder, each mapped from the file that holds it. */
export class WeightFiles implements TensorStore {
  readonly dir: string;
  /** The weight files opened, in the order they were opened. */
  readonly files: readonly WeightFile[];
  /** The shard index they were listed in, or null. */
  readonly index: string | null;
  readonly #where: Map<string, WeightFile>;

  private constructor(dir: string, files: WeightFile[], where: Map<string, WeightFile>, index: string | null = null) {
    this.dir = dir;
    this.files = files;
    this.#where = where;
    this.index = index;
  }

  /**
   * Open the weights of the model folder `dir`: the shards of `model.safetensors.index.json` if it
   * exists, else `model.safetensors`, else the PyTorch checkpoint (`pytorch_model.bin.index.json`'s
   * shards, or `pytorch_model.bin`), else `dir` itself as a split folder, else `dir/splitted_model`.
   * The originals win over a split beside them; the nested split is used only when the originals
   * are gone (AirLLM's delete_original). Every file is mapped and validated up front, so a bad shard
   * fails here rather than halfway through a forward pass.
   */
  static open(dir: string): WeightFiles {
    // A broken link or a FIFO under a weights name is a download gone wrong: named as such, never
    // passed over as if the file were absent.
    const kinds: [string, string, (path: string) => WeightFile][] = [
      [INDEX_FILE, SINGLE_FILE, (p) => SafetensorsFile.open(p)],
      [TORCH_INDEX_FILE, TORCH_SINGLE_FILE, (p) => TorchCheckpointFile.open(p)],
    ];
    for (const [indexName, singleName, openFile] of kinds) {
      const index = join(dir, indexName);
      if (requireFile(index, HINT_DOWNLOAD, true)) return WeightFiles.#openSharded(dir, index, openFile);
      const single = join(dir, singleName);
      if (requireFile(single, HINT_DOWNLOAD, true)) {
        const file = openFile(single);
        return new WeightFiles(dir, [file], new Map(file.names().map((n) => [n, file])));
      }
    }
    if (requireFile(join(dir, SPLIT_MARKER), HINT_DOWNLOAD, true)) return WeightFiles.#openSplit(dir);
    const nested = join(dir, SPLIT_DIR);
    if (pathKind(nested) === "dir" && requireFile(join(nested, SPLIT_MARKER), HINT_DOWNLOAD, true)) return WeightFiles.#openSplit(nested);
    let present: string[] = [];
    try {
      present = readdirSync(dir);
    } catch (e) {
      throw new ModelFormatError(`model folder ${quote(dir, 200)} cannot be read: ${(e as Error).message}`, "Pass the folder that holds config.json and the weights.");
    }
    const other = present.filter((f) => /\.(bin|pt|pth|gguf)$/.test(f) || f.endsWith(".safetensors"));
    throw new ModelFormatError(
      `no ${SINGLE_FILE}, ${INDEX_FILE}, ${TORCH_SINGLE_FILE} or ${TORCH_INDEX_FILE} in ${quote(dir, 200)}` + (other.length > 0 ? ` (found: ${other.slice(0, 5).map((f) => quote(f)).join(", ")})` : ""),
      other.some((f) => /\.(bin|pt|pth)$/.test(f))
        ? `PyTorch checkpoints are read under Hugging Face's names (${TORCH_SINGLE_FILE}, or shards listed in ${TORCH_INDEX_FILE}); rename the file, or re-save the model with save_pretrained().`
        : "Download the model's weights (safetensors or pytorch_model*.bin) into this folder.",
    );
  }

  static #openSharded(dir: string, index: string, openFile: (path: string) => WeightFile): WeightFiles {
    const parsed = readJsonObject(index, "Download the index file again.", "not a valid shard index");
    const map = Object.hasOwn(parsed, "weight_map") ? parsed.weight_map : undefined;
    if (map === null || typeof map !== "object" || Array.isArray(map)) {
      throw new ModelFormatError(`${quote(index, 200)} is not a valid shard index: "weight_map" is ${show(map)}, not an object`, "Download the index file again.");
    }
    const weightMap = map as Record<string, unknown>;

    const shards = new Map<string, WeightFile>();
    const where = new Map<string, WeightFile>();
    try {
      for (const [name, shard] of Object.entries(weightMap)) {
        // A shard name is a file beside the index; anything with a path part is not one we made.
        if (typeof shard !== "string" || shard === "" || shard === "." || shard === ".." || basename(shard) !== shard) {
          throw new ModelFormatError(`${quote(index, 200)}: tensor ${quote(name)} maps to ${show(shard)}, not a shard file name`, "Download the index file again.");
        }
        let file = shards.get(shard);
        if (file === undefined) {
          const path = join(dir, shard);
          const kind = pathKind(path);
          if (kind !== "file") {
            throw new ModelFormatError(
              `shard ${notAFile(path, kind)} (listed in ${quote(index, 200)} for tensor ${quote(name)})`,
              "The download is incomplete; fetch every shard the index lists.",
            );
          }
          file = openFile(path);
          shards.set(shard, file);
        }
        if (!file.has(name)) {
          throw new ModelFormatError(
            `${quote(index, 200)} puts tensor ${quote(name)} in ${quote(file.path, 200)}, which does not contain it`,
            "The index and the shards come from different versions; download them together.",
          );
        }
        where.set(name, file);
      }
    } catch (e) {
      for (const f of shards.values()) f.close();
      throw e;
    }
    if (where.size === 0) throw new ModelFormatError(`${quote(index, 200)} lists no tensors`, "Download the index file again.");
    return new WeightFiles(dir, [...shards.values()], where, index);
  }

  /** Every `*.safetensors` of a split folder; each must carry its `.done` marker. */
  static #openSplit(dir: string): WeightFiles {
    const names = readdirSync(dir).filter((f) => f.endsWith(".safetensors")).sort();
    const files: WeightFile[] = [];
    const where = new Map<string, WeightFile>();
    try {
      for (const name of names) {
        const path = join(dir, name);
        // Without the marker the writer may have died mid-file; a torn file must not be trusted.
        if (pathKind(path + DONE_SUFFIX) === "missing") {
          throw new ModelFormatError(
            `split file ${quote(path, 200)} has no ${quote(name + DONE_SUFFIX)} marker, so it may be incomplete`,
            `The split was interrupted; rerun \`airllm split\` on the original model folder to finish it.`,
          );
        }
        const file = SafetensorsFile.open(path);
        files.push(file);
        for (const t of file.names()) {
          const prev = where.get(t);
          if (prev !== undefined) {
            throw new ModelFormatError(`split folder ${quote(dir, 200)}: tensor ${quote(t)} is in both ${quote(prev.path, 200)} and ${quote(path, 200)}`, "Delete the split folder and split the model again.");
          }
          where.set(t, file);
        }
      }
    } catch (e) {
      for (const f of files) f.close();
      throw e;
    }
    return new WeightFiles(dir, files, where);
  }

  has(name: string): boolean {
    return this.#where.has(name);
  }

  get(name: string): TensorInfo {
    const file = this.#where.get(name);
    if (file === undefined) {
      throw new ModelFormatError(
        `model ${quote(this.dir, 200)} has no tensor ${quote(name)}`,
        "The checkpoint does not match the architecture named in config.json (model_type), or it is incomplete.",
      );
    }
    return file.get(name);
  }

  names(): string[] {
    return [...this.#where.keys()];
  }

  unused(used: ReadonlySet<string>): string[] {
    return this.names().filter((n) => !used.has(n));
  }

  checkUnchanged(): void {
    for (const f of this.files) f.mapping.checkUnchanged();
  }

  close(): void {
    for (const f of this.files) f.close();
  }
}

/** Open the weight files of the model folder `dir` (see WeightFiles.open). */
export function openWeightFiles(dir: string): WeightFiles {
  return WeightFiles.open(dir);
}
