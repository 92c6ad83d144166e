// Downloads blobs into the cache, several at once: each streams into `<etag>.incomplete`, resuming
// with an HTTP Range from what an earlier (killed) download left, is checked against its digest
// while it arrives, and is renamed to its blob name only when complete and verified. A mismatch
// is deleted and fetched again from the start; a second one is an error. Never a half-written or
// unverified blob under the final name.
import { closeSync, existsSync, mkdirSync, openSync, renameSync, rmSync, statSync, writeSync } from "node:fs";
import { dirname } from "node:path";
import { streamHasher, type HashKind } from "./blob-hash.ts";
import { blobPath, incompletePath } from "./cache-layout.ts";
import { HubError } from "./hub-errors.ts";

export interface BlobJob {
  /** The file's path in the repo (for messages). */
  readonly path: string;
  readonly url: string;
  readonly size: number;
  /** The blob's name: the sha256 of an LFS file, the git oid of any other. */
  readonly etag: string;
  readonly hash: HashKind;
}

export interface DownloadOptions {
  readonly fetch: typeof fetch;
  /** Files downloaded at once (default 8, as huggingface_hub). */
  readonly concurrency?: number;
  readonly signal?: AbortSignal;
  /** Bytes received, as they arrive (progress). */
  readonly onBytes?: (n: number) => void;
  /** A blob is complete and verified under its final name. */
  readonly onBlob?: (job: BlobJob) => void;
}

/** A connection lost mid-file is resumed from where it stopped, this many times. */
const NETWORK_RETRIES = 3;

/** Bytes a blob still needs: 0 when complete, less what a partial download already holds. */
export function bytesMissing(repoDir: string, job: BlobJob): number {
  if (existsSync(blobPath(repoDir, job.etag))) return 0;
  const part = incompletePath(repoDir, job.etag);
  return existsSync(part) ? Math.max(0, job.size - statSync(part).size) : job.size;
}

export async function downloadBlobs(repoDir: string, jobs: readonly BlobJob[], o: DownloadOptions): Promise<void> {
  let next = 0;
  const lanes = Array.from({ length: Math.min(o.concurrency ?? 8, jobs.length) }, async () => {
    while (next < jobs.length) {
      const job = jobs[next++];
      await downloadBlob(repoDir, job, o);
      o.onBlob?.(job);
    }
  });
  await Promise.all(lanes);
}

async function downloadBlob(repoDir: string, job: BlobJob, o: DownloadOptions): Promise<void> {
  const final = blobPath(repoDir, job.etag);
  if (existsSync(final)) return;
  const part = incompletePath(repoDir, job.etag);
  mkdirSync(dirname(part), { recursive: true });
  let mismatches = 0;
  for (let lost = 0; ; ) {
    const outcome = await fetchInto(part, job, o);
    if (outcome.kind === "complete") {
      if (outcome.digest === job.etag) {
        renameSync(part, final);
        return;
      }
      rmSync(part, { force: true });
      if (++mismatches === 2) {
        throw new HubError(
          `${job.path} downloaded twice with the wrong ${job.hash} (expected ${job.etag}, got ${outcome.digest}); deleted, not used`,
          `the server or a proxy alters the file; check HF_ENDPOINT and any proxy between`,
        );
      }
      continue;
    }
    if (++lost > NETWORK_RETRIES) throw new HubError(`${job.path}: ${outcome.reason}, ${NETWORK_RETRIES} retries failed`, "run the same command again: the download resumes from what is on disk");
  }
}

type Outcome = { readonly kind: "complete"; readonly digest: string } | { readonly kind: "lost"; readonly reason: string };

/** One request: appends to `part` from its current length, hashing it all. */
async function fetchInto(part: string, job: BlobJob, o: DownloadOptions): Promise<Outcome> {
  let have = existsSync(part) ? statSync(part).size : 0;
  if (have > job.size) {
    rmSync(part);
    have = 0;
  }
  let res: Response | null = null;
  if (have < job.size) {
    res = await o.fetch(job.url, { headers: have > 0 ? { range: `bytes=${have}-` } : {}, signal: o.signal });
    if (res.status === 200 && have > 0) have = 0; // the server ignored the range: start over
    else if (res.status === 416) {
      await res.body?.cancel();
      res = null;
    } else if (res.status !== 200 && res.status !== 206) {
      await res.body?.cancel();
      if (res.status >= 500 || res.status === 429) return { kind: "lost", reason: `HTTP ${res.status} from ${new URL(job.url).origin}` };
      throw new HubError(`${job.path}: HTTP ${res.status} from ${job.url}`, "check that the file still exists at this revision");
    } else if (res.status === 206 && !res.headers.get("content-range")?.startsWith(`bytes ${have}-`)) {
      await res.body?.cancel();
      throw new HubError(`${job.path}: asked for bytes from ${have}, the server sent ${res.headers.get("content-range")}`);
    }
  }
  const fd = openSync(part, have > 0 ? "a" : "w");
  const hasher = streamHasher(job.hash, job.size, part, have);
  let got = have;
  try {
    if (res !== null) {
      const reader = res.body!.getReader();
      try {
        for (;;) {
          let step: Awaited<ReturnType<typeof reader.read>>;
          try {
            step = await reader.read();
          } catch (e) {
            if (o.signal?.aborted) throw e;
            return { kind: "lost", reason: `connection lost at byte ${got} of ${job.size} (${(e as Error).message})` };
          }
          if (step.done) break;
          const chunk = step.value;
          for (let off = 0; off < chunk.length; ) off += writeSync(fd, chunk, off);
          got += chunk.length;
          o.onBytes?.(chunk.length);
          await hasher.update(chunk);
          if (got > job.size) return { kind: "complete", digest: "(longer than the listed size)" };
        }
      } finally {
        await reader.cancel().catch(() => {});
      }
    }
    if (got < job.size) return { kind: "lost", reason: `the connection closed at byte ${got} of ${job.size}` };
    return { kind: "complete", digest: await hasher.digest() };
  } finally {
    hasher.close();
    closeSync(fd);
  }
}
