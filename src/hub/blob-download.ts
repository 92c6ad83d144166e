// Downloads blobs into the cache, several at once: each streams into `<etag>.incomplete`, resuming
// with an HTTP Range from what an earlier (killed) download left, is checked against its digest
// as it lands on disk, and is renamed to its blob name only when complete and verified. A mismatch
// is deleted and fetched again from the start; a second one is an error. Never a half-written or
// unverified blob under the final name.
//
// Hand-written rather than @huggingface/hub's downloadFileToCacheDir, which (2.17.5) neither resumes
// an `.incomplete` blob with Range nor checks a digest, and names the snapshot after the file's last
// commit instead of the repo's commit (Python's layout). The body is written by Bun natively
// (Bun.write of the Response), not chunk by chunk in JS, and a big file's sha256 runs on a Worker
// reading the file back as it grows, so verification keeps pace with curl (bench/hub-download.ts).
import { closeSync, existsSync, mkdirSync, openSync, renameSync, rmSync, statSync } from "node:fs";
import { dirname } from "node:path";
import { fileHasher, type HashKind } from "./blob-hash.ts";
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

/**
 * One request: appends the rest of the file to `part` (Bun writes the body to the file natively)
 * while the hasher follows it on disk; the digest covers the bytes from an earlier attempt too.
 */
async function fetchInto(part: string, job: BlobJob, o: DownloadOptions): Promise<Outcome> {
  let have = existsSync(part) ? statSync(part).size : 0;
  if (have > job.size) {
    rmSync(part);
    have = 0;
  }
  let res: Response | null = null;
  if (have < job.size) {
    // identity: the bytes on disk are the bytes the digest and the Range offsets count.
    const headers: Record<string, string> = { "accept-encoding": "identity", ...(have > 0 ? { range: `bytes=${have}-` } : {}) };
    res = await o.fetch(job.url, { headers, signal: o.signal });
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
    // Bun.write takes the whole body: one longer than the file would be written to disk in full
    // before the size check below, so a length that disagrees with the listing is refused first.
    const length = res?.headers.get("content-length");
    if (res !== null && length != null && res.headers.get("content-encoding") === null && Number(length) !== job.size - have) {
      await res.body?.cancel();
      throw new HubError(
        `${job.path}: the server sends ${length} bytes from byte ${have}, but the repo lists the file at ${job.size} bytes`,
        "the file changed on the hub since its listing was read: run the same command again",
      );
    }
  }
  // Progress counts the bytes this request adds, as the hash confirms them on disk.
  let counted = have;
  const count = (upTo: number) => {
    if (upTo > counted) o.onBytes?.(upTo - counted);
    counted = Math.max(counted, upTo);
  };
  const fd = openSync(part, have > 0 ? "a" : "w");
  const hasher = fileHasher(job.hash, part, job.size, count);
  try {
    if (res !== null) {
      try {
        await Bun.write(Bun.file(fd), res);
      } catch (e) {
        if (o.signal?.aborted) throw e;
        return { kind: "lost", reason: `connection lost at byte ${statSync(part).size} of ${job.size} (${(e as Error).message})` };
      }
    }
    const got = statSync(part).size;
    if (got < job.size) return { kind: "lost", reason: `the connection closed at byte ${got} of ${job.size}` };
    if (got > job.size) return { kind: "complete", digest: `(${got} bytes, longer than the listed ${job.size})` };
    const digest = await hasher.digest();
    count(job.size);
    return { kind: "complete", digest };
  } finally {
    hasher.close();
    closeSync(fd);
  }
}
