// Human sizes for budgets: "256MiB", "4GiB", "1.5GB", "4096" (bytes).
import { UsageError } from "../errors.ts";

const UNITS: Record<string, number> = {
  "": 1, b: 1,
  kb: 1e3, mb: 1e6, gb: 1e9, tb: 1e12,
  kib: 2 ** 10, mib: 2 ** 20, gib: 2 ** 30, tib: 2 ** 40,
  k: 2 ** 10, m: 2 ** 20, g: 2 ** 30,
};

export function parseSize(text: string | number, what = "size"): number {
  if (typeof text === "number") {
    if (!(text >= 0 && Number.isFinite(text))) throw new UsageError(`${what} ${text} is not a valid byte count`);
    return Math.floor(text);
  }
  const m = /^\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*$/.exec(text);
  const unit = m ? UNITS[m[2].toLowerCase()] : undefined;
  if (!m || unit === undefined) {
    throw new UsageError(`${what} "${text}" is not a size`, "write it like 512MiB, 4GiB, 1.5GB or a plain number of bytes");
  }
  return Math.floor(Number(m[1]) * unit);
}

export function formatBytes(bytes: number): string {
  if (bytes >= 2 ** 30) return `${(bytes / 2 ** 30).toFixed(2)} GiB`;
  if (bytes >= 2 ** 20) return `${(bytes / 2 ** 20).toFixed(1)} MiB`;
  if (bytes >= 2 ** 10) return `${(bytes / 2 ** 10).toFixed(1)} KiB`;
  return `${bytes} B`;
}
