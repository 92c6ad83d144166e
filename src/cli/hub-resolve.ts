// Hub ids on the command line: every command that takes MODEL resolves it here (a local path, else
// the cache, else a download), printing the fit check before any weight byte is fetched, a progress
// line on a terminal, and, on Ctrl-C, where the download stopped (the cache stays consistent; the
// same command resumes it).
import { existsSync } from "node:fs";
import { freemem, totalmem } from "node:os";
import { AirLLMError, UsageError } from "../errors.ts";
import { diskLine } from "../hub/fit-check.ts";
import { HubError } from "../hub/hub-errors.ts";
import { formatHubId, parseHubId } from "../hub/hub-id.ts";
import { hubSettings } from "../hub/hub-settings.ts";
import { pullModel, type FitCheck, type PullOptions, type PullResult } from "../hub/pull.ts";
import { cachedModelPath, resolveModel } from "../hub/resolve-model.ts";
import { sizedAsCompressed } from "../model/model-source.ts";
import { parseCompression, type Compression } from "../split/split-model.ts";
import { formatBytes } from "../util/size.ts";
import type { Flags } from "./args.ts";
import { DownloadProgress } from "./download-progress.ts";
import { hubOptions } from "./hub-flags.ts";
import { describePlan, type PlanSource } from "./plan-command.ts";

/** Prints the fit check; with `mustRun`, a model that cannot run under these flags stops here. */
function reportFit(fit: FitCheck, f: Flags, err: (s: string) => void, mustRun: boolean): void {
  const say = (l: string) => err(`airllm: ${l}\n`);
  say(`${formatHubId(fit.id)} is commit ${fit.commit.slice(0, 12)}: ${fit.weights.length} ${fit.kind} weight file${fit.weights.length === 1 ? "" : "s"}, ${formatBytes(fit.disk.totalBytes)}`);
  say(diskLine(fit.disk));
  if (fit.model === null) {
    say(`memory: ${formatBytes(fit.disk.totalBytes)} of ${fit.kind === "gguf" ? "GGUF" : "PyTorch .bin"} weights; this machine has ${formatBytes(totalmem())} of RAM, ${formatBytes(freemem())} available`);
    return;
  }
  if ("error" in fit.model) {
    if (mustRun) throw fit.model.error;
    say(`plan: cannot read the model: ${fit.model.error.message}`);
    return;
  }
  const compression = parseCompression(f.string("compression"));
  const source: PlanSource = { config: fit.model.config, configName: fit.model.configName, tensors: compression ? sizedAsCompressed(fit.model.tensors, compression) : fit.model.tensors, ropeInterleaved: false, ropeFreqFactors: null };
  let plan;
  try {
    plan = describePlan(source, f);
  } catch (e) {
    if (mustRun || !(e instanceof AirLLMError)) throw e;
    say(`plan: ${e.message}`);
    return;
  }
  for (const l of plan.lines) say(l);
  if (mustRun && !plan.fits && (f.has("max-memory") || f.has("max-gpu-memory"))) {
    throw new UsageError(`${formatHubId(fit.id)} cannot run under this budget (see the plan above); nothing was downloaded`, "raise --max-memory / --max-gpu-memory, or try --compression 4bit");
  }
}

/** Runs a pull with the fit check printed, a progress line on a terminal and Ctrl-C handled. */
async function withDownloadUi<T>(f: Flags, err: (s: string) => void, mustRun: boolean, run: (o: PullOptions) => Promise<T>): Promise<T> {
  const progress = DownloadProgress.attach(process.stderr.isTTY === true, err);
  const abort = new AbortController();
  const onInterrupt = () => abort.abort();
  process.on("SIGINT", onInterrupt);
  let downloading = false;
  let last = { doneBytes: 0, totalBytes: 0 };
  const t0 = performance.now();
  try {
    const result = await run({
      ...hubOptions(f),
      signal: abort.signal,
      onFitCheck: (fit) => reportFit(fit, f, err, mustRun),
      onProgress: (p) => {
        downloading = true;
        last = p;
        progress?.update(p);
      },
    });
    progress?.clear();
    if (downloading) {
      const s = (performance.now() - t0) / 1000;
      err(`airllm: downloaded ${formatBytes(last.doneBytes)} in ${s.toFixed(2)} s (${formatBytes(last.doneBytes / Math.max(s, 1e-3))}/s)\n`);
    }
    return result;
  } catch (e) {
    progress?.clear();
    if (abort.signal.aborted) {
      throw new HubError(`interrupted: ${formatBytes(last.doneBytes)} of ${formatBytes(last.totalBytes)} downloaded; what is complete is in the cache, the rest is kept as partial files`, "run the same command again to resume");
    }
    throw e;
  } finally {
    process.off("SIGINT", onInterrupt);
  }
}

/**
 * The path MODEL names: itself when it exists, else a hub id from the cache or downloaded.
 * `mustRun` (run, chat, serve, bench): a model that cannot run under the flags stops before the download.
 */
export async function resolveModelArg(spec: string, f: Flags, err: (s: string) => void, o: { mustRun?: boolean } = {}): Promise<string> {
  if (existsSync(spec) || parseHubId(spec) === null) return spec;
  return withDownloadUi(f, err, o.mustRun === true, (po) => resolveModel(spec, po));
}

/** `--draft-model`: a path or a hub id, like MODEL (no budget check: a draft is loaded outside it). */
export async function resolveDraftArg(spec: string | undefined, f: Flags, err: (s: string) => void): Promise<string | undefined> {
  return spec === undefined ? undefined : resolveModelArg(spec, f, err);
}

/**
 * For `airllm tokenize`: what holds MODEL's tokenizer. A hub id the cache lacks brings only its
 * config and tokenizer files (what a dry-run pull fetches), no weights; a GGUF repo's tokenizer is
 * in the file's metadata, so that file is downloaded.
 */
export async function resolveTokenizerArg(spec: string, f: Flags, err: (s: string) => void): Promise<string> {
  const id = parseHubId(spec);
  if (existsSync(spec) || id === null) return spec;
  const s = hubSettings(hubOptions(f));
  if (s.offline || cachedModelPath(id, s) !== null) return resolveModelArg(spec, f, err);
  const r = await pullModel(id, { ...hubOptions(f), dryRun: true });
  return r.fit.kind === "gguf" ? resolveModelArg(spec, f, err) : r.snapshotDir;
}

/** `airllm pull`: always asks the hub for the revision's current commit. */
export function pullArg(spec: string, f: Flags, err: (s: string) => void, dryRun: boolean): Promise<PullResult> {
  const id = parseHubId(spec);
  if (id === null) throw new UsageError(`"${spec}" is not a hub id`, "write ORG/NAME, ORG/NAME@REVISION or ORG/NAME:QUANT (e.g. TinyLlama/TinyLlama-1.1B-Chat-v1.0)");
  return withDownloadUi(f, err, false, (po) => pullModel(id, { ...po, dryRun }));
}

/**
 * For `airllm plan`: a safetensors hub id not in the cache planned from its remote headers, with
 * only config and tokenizer files downloaded; null when MODEL is a path, cached, or a GGUF repo.
 */
export async function hubPlanSource(spec: string, f: Flags, err: (s: string) => void, compression: Compression | undefined): Promise<(PlanSource & { close(): void }) | null> {
  const id = parseHubId(spec);
  if (existsSync(spec) || id === null) return null;
  const s = hubSettings(hubOptions(f));
  if (s.offline || cachedModelPath(id, s) !== null) return null;
  const r = await pullModel(id, { ...hubOptions(f), dryRun: true, onFitCheck: (fit) => err(`airllm: ${formatHubId(id)} is commit ${fit.commit.slice(0, 12)}, planned from its headers read remotely\n`) });
  const model = r.fit.model;
  if (model === null) return null;
  if ("error" in model) throw model.error;
  return { config: model.config, configName: model.configName, tensors: compression ? sizedAsCompressed(model.tensors, compression) : model.tensors, ropeInterleaved: false, ropeFreqFactors: null, close: () => {} };
}
