// `airllm pull`: a hub id into the shared cache. The revision is resolved to a commit, the files the
// model needs are chosen, the small ones (config, tokenizer, shard index) fetched; then the fit
// check — bytes against free disk, the model's headers read remotely for the memory plan — is handed
// to the caller before any weight byte is requested, and the weights follow in parallel.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { TensorSource } from "../engine/tensor-source.ts";
import { SafetensorParseError } from "@huggingface/hub";
import { AirLLMError, ModelFormatError } from "../errors.ts";
import { quote } from "../util/validate.ts";
import { loadModelConfig, type ModelConfig } from "../model/config.ts";
import { bytesMissing, downloadBlobs, type BlobJob } from "./blob-download.ts";
import { linkIntoSnapshot, repoFolder, snapshotDir, writeRef } from "./cache-layout.ts";
import { chooseFiles, READS_PYTORCH_BIN, shardsOfIndex, type WeightsKind } from "./file-choice.ts";
import { diskCheck, diskFullError, remoteTensors, type DiskCheck } from "./fit-check.ts";
import { accessError, HubError, offlineMiss } from "./hub-errors.ts";
import { formatHubId, type HubId } from "./hub-id.ts";
import { hubSettings, type HubOptions } from "./hub-settings.ts";
import { RemoteRepo, type RepoFile } from "./remote-repo.ts";

export interface PullProgress {
  /** Bytes this pull has to fetch (what the cache lacks) and has fetched so far. */
  readonly totalBytes: number;
  readonly doneBytes: number;
  readonly files: number;
  readonly filesDone: number;
}

/** The model as the memory planner sees it, from remote headers; or why it cannot be read. */
export type RemotePlanSource = { readonly config: ModelConfig; readonly configName: string; readonly tensors: TensorSource } | { readonly error: AirLLMError };

export interface FitCheck {
  readonly id: HubId;
  readonly commit: string;
  readonly kind: WeightsKind;
  readonly weights: readonly RepoFile[];
  readonly disk: DiskCheck;
  /** Safetensors repos only (GGUF: null). */
  readonly model: RemotePlanSource | null;
}

export interface PullOptions extends HubOptions {
  /** Download even when the disk check says it does not fit. */
  readonly force?: boolean;
  /** Stop after the fit check: only config, tokenizer and index files are fetched. */
  readonly dryRun?: boolean;
  readonly concurrency?: number;
  readonly signal?: AbortSignal;
  /** The fit check, before any weight byte is requested; throwing stops the pull there. */
  readonly onFitCheck?: (fit: FitCheck) => void | Promise<void>;
  readonly onProgress?: (p: PullProgress) => void;
}

export interface PullResult {
  readonly commit: string;
  readonly snapshotDir: string;
  /** What the loader opens: the snapshot folder, or the GGUF file in it. */
  readonly modelPath: string;
  readonly fit: FitCheck;
  /** False after a dry run. */
  readonly downloaded: boolean;
}

const jobOf = (remote: RemoteRepo, commit: string, f: RepoFile): BlobJob => ({ path: f.path, url: remote.fileUrl(commit, f.path), size: f.size, etag: f.etag, hash: f.hash });

export async function pullModel(id: HubId, o: PullOptions = {}): Promise<PullResult> {
  const s = hubSettings(o);
  if (s.offline) throw offlineMiss(formatHubId(id), s);
  const remote = new RemoteRepo(s, id.repo, id.revision);
  const rev = await remote.resolve();
  if (rev.gated && s.token === null) throw accessError(id.repo, s, 401, "GatedRepo");
  const choice = chooseFiles(id.repo, rev.files, { quant: id.quant, readsPytorchBin: READS_PYTORCH_BIN });
  const repoDir = repoFolder(s.cacheDir, id.repo);
  const snap = snapshotDir(repoDir, rev.commit);
  const fetchBlobs = (jobs: readonly BlobJob[], onBytes?: (n: number) => void, onLinked?: () => void) =>
    downloadBlobs(repoDir, jobs, {
      fetch: remote.fetch,
      concurrency: o.concurrency,
      signal: o.signal,
      onBytes,
      onBlob: (job) => {
        linkIntoSnapshot(repoDir, rev.commit, job.path, job.etag);
        onLinked?.();
      },
    });

  await fetchBlobs((await remote.describe(rev.commit, choice.small)).map((f) => jobOf(remote, rev.commit, f)));
  const weightPaths = choice.index === null ? choice.weights : shardsOfIndex(choice.index, JSON.parse(readFileSync(join(snap, choice.index), "utf8")));
  const weights = await remote.describe(rev.commit, weightPaths);
  const jobs = weights.map((f) => jobOf(remote, rev.commit, f));
  const missing = jobs.map((j) => bytesMissing(repoDir, j)).reduce((a, b) => a + b, 0);
  const disk = diskCheck(s.cacheDir, weights.reduce((a, f) => a + f.size, 0), missing);
  let model: RemotePlanSource | null = null;
  if (choice.kind === "safetensors") {
    try {
      model = { config: loadModelConfig(snap), configName: quote(join(snap, "config.json"), 200), tensors: remoteTensors(await remote.safetensorsHeaders(rev.commit, choice.index ?? weightPaths[0])) };
    } catch (e) {
      if (e instanceof SafetensorParseError) model = { error: new ModelFormatError(e.message, "the repo's safetensors files are malformed; report it to the model's authors") };
      else if (e instanceof AirLLMError && !(e instanceof HubError)) model = { error: e };
      else throw e;
    }
  }
  const fit: FitCheck = { id, commit: rev.commit, kind: choice.kind, weights, disk, model };
  await o.onFitCheck?.(fit);
  const modelPath = choice.ggufFile === null ? snap : join(snap, choice.ggufFile);
  if (o.dryRun) return { commit: rev.commit, snapshotDir: snap, modelPath, fit, downloaded: false };
  if (!disk.fits && !o.force) throw diskFullError(disk);

  let doneBytes = 0;
  let filesDone = 0;
  const report = () => o.onProgress?.({ totalBytes: missing, doneBytes, files: weights.length, filesDone });
  report();
  await fetchBlobs(
    jobs,
    (n) => {
      doneBytes += n;
      report();
    },
    () => {
      filesDone++;
      report();
    },
  );
  // Last: a branch or tag points at this snapshot only once everything is in it.
  writeRef(repoDir, id.revision, rev.commit);
  return { commit: rev.commit, snapshotDir: snap, modelPath, fit, downloaded: true };
}
