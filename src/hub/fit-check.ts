// What a download will take before it starts: bytes to fetch against the free space of the cache's
// disk, and the model as the memory planner sees it, built from safetensors headers read remotely
// (config.json is already in the cache by then; no weight byte has been fetched).
import type { SafetensorsFileHeader } from "@huggingface/hub";
import { existsSync, statfsSync } from "node:fs";
import { dirname } from "node:path";
import type { HostTensor, TensorSource } from "../engine/tensor-source.ts";
import { ModelFormatError } from "../errors.ts";
import { SUPPORTED as SAFETENSORS_DTYPES } from "../formats/safetensors.ts";
import { formatBytes } from "../util/size.ts";
import { HubError } from "./hub-errors.ts";

export interface DiskCheck {
  /** Bytes of every file the model needs. */
  readonly totalBytes: number;
  /** What is still to download (less complete blobs and partial downloads). */
  readonly missingBytes: number;
  readonly freeBytes: number;
  readonly cacheDir: string;
  readonly fits: boolean;
}

/** Free bytes for an unprivileged writer on the filesystem that holds (or will hold) `path`. */
export function freeBytesAt(path: string): number {
  let p = path;
  while (!existsSync(p) && dirname(p) !== p) p = dirname(p);
  const s = statfsSync(p);
  return s.bavail * s.bsize;
}

export function diskCheck(cacheDir: string, totalBytes: number, missingBytes: number): DiskCheck {
  const freeBytes = freeBytesAt(cacheDir);
  return { totalBytes, missingBytes, freeBytes, cacheDir, fits: missingBytes <= freeBytes };
}

export function diskLine(d: DiskCheck): string {
  return `disk: ${formatBytes(d.missingBytes)} to download (of ${formatBytes(d.totalBytes)}), ${formatBytes(d.freeBytes)} free in ${d.cacheDir}: ${d.fits ? "fits" : "does not fit"}`;
}

export function diskFullError(d: DiskCheck): HubError {
  return new HubError(
    `the download needs ${formatBytes(d.missingBytes)} but ${d.cacheDir} has ${formatBytes(d.freeBytes)} free; nothing was downloaded`,
    "free some space, point HF_HUB_CACHE at a bigger disk, or pass --force to download anyway",
  );
}

/**
 * The tensors of remotely read headers, for planning only: shapes, dtypes and byte counts are the
 * file's; no address is valid (addr 0) and `fileOffset` is the offset in the data region.
 */
export function remoteTensors(headers: ReadonlyMap<string, SafetensorsFileHeader>): TensorSource {
  const tensors = new Map<string, HostTensor>();
  for (const [file, header] of headers) {
    for (const [name, info] of Object.entries(header)) {
      if (name === "__metadata__") continue;
      const t = info as { dtype: string; shape: number[]; data_offsets: [number, number] };
      const dtype = SAFETENSORS_DTYPES[t.dtype];
      if (dtype === undefined) {
        throw new ModelFormatError(`${file}: tensor "${name}" is ${t.dtype}; airllm computes with ${Object.keys(SAFETENSORS_DTYPES).join(", ")}`, "look for an F16 or BF16 version of this model, or a GGUF one");
      }
      const [begin, end] = t.data_offsets;
      tensors.set(name, { name, dtype, shape: t.shape, addr: 0, bytes: end - begin, file, fileOffset: begin });
    }
  }
  return {
    has: (name) => tensors.has(name),
    get: (name) => {
      const t = tensors.get(name);
      if (t === undefined) throw new ModelFormatError(`no tensor "${name}" in the repo's safetensors headers (${[...headers.keys()].join(", ")})`);
      return t;
    },
    unused: (used) => [...tensors.keys()].filter((n) => !used.has(n)),
    // Nothing is mapped: a remote file can change only on the hub, which the download's digests catch.
    checkUnchanged: () => {},
    close: () => {},
  };
}
