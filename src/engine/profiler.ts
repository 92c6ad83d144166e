// AirLLM's profiling_mode, with the numbers that say what to change: per plan entry the time the
// host waited for its weights (disk reads and uploads not yet done) and the time its ops took to
// run (CPU) or to be queued (CUDA: the device runs them later, which shows as the wait for the
// logits); per token the bytes read and uploaded, the disk bandwidth achieved, how much of the
// read time was hidden under compute, and the bottleneck with the change most likely to help.
import type { PlanEntry } from "../model/architecture.ts";
import { formatBytes } from "../util/size.ts";
import type { FetchStats, WeightStats } from "./weight-provider.ts";

interface EntryTimes {
  readonly name: string;
  fetchMs: number;
  computeMs: number;
}

export interface ProfileInputs {
  readonly weights: WeightStats;
  readonly reads: { bytes: number; activeSeconds: number };
  /** The backend runs ops asynchronously (CUDA): per-entry compute is queueing time. */
  readonly asyncBackend: boolean;
  /** What the streamer fetched over the run (null without streaming). */
  readonly fetched?: FetchStats | null;
}

export class Profiler {
  private readonly entries = new Map<number, EntryTimes>();
  passes = 0;
  passMs = 0;
  /** Host time blocked on the device at the end of passes (the logits download). */
  deviceWaitMs = 0;

  recordEntry(entry: PlanEntry, fetchMs: number, computeMs: number): void {
    let e = this.entries.get(entry.index);
    if (!e) this.entries.set(entry.index, (e = { name: entry.name, fetchMs: 0, computeMs: 0 }));
    e.fetchMs += fetchMs;
    e.computeMs += computeMs;
  }

  recordPass(passMs: number, deviceWaitMs: number): void {
    this.passes++;
    this.passMs += passMs;
    this.deviceWaitMs += deviceWaitMs;
  }

  /** The per-entry table and the summary, as lines for stderr. */
  report(inputs: ProfileInputs): string[] {
    if (this.passes === 0) return ["profile: no passes ran"];
    const n = this.passes;
    const ms = (v: number) => (v / n).toFixed(2).padStart(9);
    const computeLabel = inputs.asyncBackend ? "queue ms" : "compute ms";
    const lines = [`profile: ${n} passes, per pass:`, `  ${"entry".padEnd(22)} ${"wait ms".padStart(9)} ${computeLabel.padStart(10)}`];
    let fetch = 0;
    let compute = 0;
    for (const e of [...this.entries.values()]) {
      lines.push(`  ${e.name.padEnd(22)} ${ms(e.fetchMs)} ${ms(e.computeMs).padStart(10)}`);
      fetch += e.fetchMs;
      compute += e.computeMs;
    }
    const pass = this.passMs / n;
    const w = inputs.weights;
    const readGBs = inputs.reads.activeSeconds > 0 ? inputs.reads.bytes / inputs.reads.activeSeconds / 1e9 : 0;
    const readMs = inputs.reads.activeSeconds * 1000;
    // Read time not spent with the host waiting for it ran under compute.
    const hidden = readMs > 0 ? Math.max(0, Math.min(1, 1 - fetch / readMs)) : 1;
    lines.push(
      `  pass ${pass.toFixed(1)} ms: waiting for weights ${(fetch / n).toFixed(1)} ms, ${inputs.asyncBackend ? "queueing" : "computing"} ${(compute / n).toFixed(1)} ms` +
        (inputs.asyncBackend ? `, waiting for the device ${(this.deviceWaitMs / n).toFixed(1)} ms` : ""),
      `  per token: ${formatBytes(w.diskBytes)} read from disk, ${formatBytes(inputs.asyncBackend ? w.streamedBytes : 0)} uploaded, ${formatBytes(w.residentBytes)} resident`,
      `  disk: ${readGBs.toFixed(2)} GB/s achieved while reading; ${(hidden * 100).toFixed(0)}% of read time hidden under compute`,
    );
    if (inputs.asyncBackend && w.streamedBytes > 0) {
      lines.push(`  copy: at least ${(w.streamedBytes / (pass / 1000) / 1e9).toFixed(1)} GB/s (bytes uploaded per pass ÷ pass time)`);
    }
    if (inputs.fetched) lines.push(...fetchLines(inputs.fetched, n));
    lines.push(`  bottleneck: ${bottleneck(fetch / n, compute / n, this.deviceWaitMs / n, pass, readGBs, inputs)}`);
    return lines;
  }
}

function bottleneck(fetch: number, compute: number, deviceWait: number, pass: number, readGBs: number, i: ProfileInputs): string {
  const w = i.weights;
  if (w.diskBytes > 0 && fetch > 0.3 * pass) {
    return `disk-bound at ${readGBs.toFixed(2)} GB/s: ${i.asyncBackend ? "raise --max-host-cache (or --max-gpu-memory)" : "raise --max-memory"} so fewer layers are read per token, or use a faster disk`;
  }
  if (i.asyncBackend && w.streamedBytes > 0 && deviceWait > 0.5 * pass) {
    return "copy-bound (host→device uploads): raise --max-gpu-memory to keep more layers resident, or use 4-bit weights to move fewer bytes";
  }
  if (i.asyncBackend) return "device-bound: weights are resident or their uploads are hidden; batch more tokens per pass to use the device better";
  return compute >= fetch
    ? "compute-bound: streaming is hidden under compute; more cores (--threads) or a GPU would help"
    : "waiting for weights: raise --prefetch so more layers are read ahead";
}

/** Measured bytes per pass, and the expert cache's and guesses' record (MoE). */
export function fetchLines(f: FetchStats, passes: number): string[] {
  const per = (b: number) => formatBytes(b / passes);
  const lines = [`  fetched per pass (measured): ${per(f.chunkBytes)} dense chunks, ${per(f.expertBytes)} experts, ${per(f.rowBytes)} embedding rows`];
  const summary = expertSummary(f);
  if (summary !== null) lines.push(`  ${summary}`);
  return lines;
}

/** "experts: …" — cache hits, fetches, bytes saved and guess accuracy; null without streamed experts. */
export function expertSummary(f: FetchStats): string | null {
  const streamed = f.expertHits + f.expertMisses + f.expertGuessedUses;
  if (streamed === 0) return null;
  const pct = (a: number, b: number) => (b === 0 ? "0" : ((100 * a) / b).toFixed(0));
  let s = `experts: ${streamed + f.expertResidentUses} routed (${f.expertResidentUses} resident); of the streamed, ` +
    `${f.expertHits} cache hits (${pct(f.expertHits, streamed)}%, ${formatBytes(f.expertSavedBytes)} not fetched), ` +
    `${f.expertGuessedUses} fetched early by a guess, ${f.expertMisses} fetched when routed`;
  if (f.guessFetches > 0) {
    s += `; guesses fetched ${f.guessFetches} experts (${Math.max(0, f.guessFetches - f.expertGuessedUses)} unused) and covered ${pct(f.predictionHits, f.predictedRouted)}% of the routed ones`;
  }
  return s;
}
