// Human sizes for budgets: "256MiB", "4GiB", "1.5GB", "4096" (bytes).
import { UsageError } from "../errors.ts";
import { own, show } from "./validate.ts";

const UNITS: Record<string, number> = {
  "": 1, b: 1,
  kb: 1e3, mb: 1e6, gb: 1e9, tb: 1e12,
  kib: 2 ** 10, mib: 2 ** 20, gib: 2 ** 30, tib: 2 ** 40,
  k: 2 ** 10, m: 2 ** 20, g: 2 ** 30,
};

const HINT = "write it like 512MiB, 4GiB, 1.5GB or a plain number of bytes";

/** A byte count from text or a number; `positive`: 0 is refused too (a budget of nothing). */
export function parseSize(text: string | number, what = "size", positive = false): number {
  let bytes: number;
  if (typeof text === "number") {
    bytes = Math.floor(text);
  } else {
    const m = /^\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*$/.exec(text);
    const unit = m ? own(UNITS, m[2]!.toLowerCase()) : undefined;
    if (!m || unit === undefined) throw new UsageError(`${what} ${show(text)} is not a size`, HINT);
    bytes = Math.floor(Number(m[1]) * unit);
  }
  if (!(Number.isSafeInteger(bytes) && bytes >= 0)) throw new UsageError(`${what} ${show(text)} is not a valid byte count`, HINT);
  if (positive && bytes === 0) throw new UsageError(`${what} ${show(text)} must be more than 0 bytes`, HINT);
  return bytes;
}

export function formatBytes(bytes: number): string {
  if (bytes >= 2 ** 30) return `${(bytes / 2 ** 30).toFixed(2)} GiB`;
  if (bytes >= 2 ** 20) return `${(bytes / 2 ** 20).toFixed(1)} MiB`;
  if (bytes >= 2 ** 10) return `${(bytes / 2 ** 10).toFixed(1)} KiB`;
  return `${bytes} B`;
}
