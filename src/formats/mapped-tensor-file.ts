// What safetensors files and PyTorch checkpoints have in common once their headers are read: a
// whole-file mapping and a table of tensors at raw addresses inside it, valid until close().

import { ModelFormatError } from "../errors.ts";
import { quote } from "../util/validate.ts";
import { notAFile, pathKind } from "./input-files.ts";
import { MappedFile } from "./mmap.ts";
import type { TensorInfo } from "./safetensors.ts";

/**
 * Map `path` and read its tensors with `parse`, unmapping again if that throws. `what` says which
 * file a user should pass instead.
 */
export function mapTensorFile<T>(path: string, what: string, parse: (map: MappedFile) => T): { map: MappedFile; parsed: T } {
  // A directory, a broken link or a FIFO under a weights name is one clear error, never a hang.
  const kind = pathKind(path);
  if (kind !== "file") throw new ModelFormatError(notAFile(path, kind), `Pass the path of ${what}; download it again if it is missing.`);
  const map = MappedFile.open(path);
  try {
    return { map, parsed: parse(map) };
  } catch (e) {
    map.close();
    throw e;
  }
}

export class MappedTensorFile {
  readonly path: string;
  readonly #map: MappedFile;
  readonly #tensors: Map<string, TensorInfo>;
  readonly #fail: (what: string, hint: string) => never;

  protected constructor(path: string, map: MappedFile, tensors: readonly TensorInfo[], fail: (what: string, hint: string) => never) {
    this.path = path;
    this.#map = map;
    this.#tensors = new Map(tensors.map((t) => [t.name, t]));
    this.#fail = fail;
  }

  /** The mapping itself (for madvise or registering the range with a device). */
  get mapping(): MappedFile {
    return this.#map;
  }

  has(name: string): boolean {
    return this.#tensors.has(name);
  }

  /** The tensor called `name`; throws ModelFormatError naming the file when it is absent. */
  get(name: string): TensorInfo {
    const t = this.#tensors.get(name);
    if (t === undefined) this.#fail(`no tensor ${quote(name)}`, "The checkpoint does not match the model architecture in config.json.");
    if (!this.#map.isOpen) this.#fail(`tensor ${quote(name)} read after close()`, "Keep the model open while its weights are in use.");
    return t;
  }

  /** Tensor names in the order the file lists them. */
  names(): string[] {
    return [...this.#tensors.keys()];
  }

  /** Unmap the file; every TensorInfo.addr from it becomes invalid. Idempotent. */
  close(): void {
    this.#map.close();
  }
}
