// The progress of a download on a terminal: one line rewritten in place with bytes, rate and ETA,
// `downloading 1.20 GiB / 4.00 GiB (30%) · 350.0 MiB/s · ETA 8 s · 2/4 files`. Nothing on a pipe.
import type { PullProgress } from "../hub/pull.ts";
import { formatBytes } from "../util/size.ts";

const REDRAW_MS = 100;

export function formatEta(seconds: number): string {
  if (!Number.isFinite(seconds)) return "?";
  const s = Math.round(seconds);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

export function progressText(p: PullProgress, elapsedMs: number): string {
  const rate = elapsedMs > 0 ? (p.doneBytes / elapsedMs) * 1000 : 0;
  const pct = p.totalBytes > 0 ? Math.floor((p.doneBytes / p.totalBytes) * 100) : 100;
  const eta = rate > 0 ? formatEta((p.totalBytes - p.doneBytes) / rate) : "?";
  return `downloading ${formatBytes(p.doneBytes)} / ${formatBytes(p.totalBytes)} (${pct}%) · ${formatBytes(rate)}/s · ETA ${eta} · ${p.filesDone}/${p.files} files`;
}

export class DownloadProgress {
  private start = 0;
  private lastDraw = -Infinity;
  private shown = false;

  private constructor(
    private readonly write: (s: string) => void,
    private readonly now: () => number,
  ) {}

  /** A progress line when stderr is a terminal (`tty`); null otherwise. */
  static attach(tty: boolean, write: (s: string) => void, now: () => number = () => performance.now()): DownloadProgress | null {
    return tty ? new DownloadProgress(write, now) : null;
  }

  update(p: PullProgress): void {
    const t = this.now();
    if (this.start === 0) this.start = t;
    if (t - this.lastDraw < REDRAW_MS && p.filesDone < p.files) return;
    this.lastDraw = t;
    this.write(`\r\x1b[2K${progressText(p, t - this.start)}`);
    this.shown = true;
  }

  /** Erase the line (before the summary or an error). */
  clear(): void {
    if (this.shown) this.write("\r\x1b[2K");
    this.shown = false;
  }
}
