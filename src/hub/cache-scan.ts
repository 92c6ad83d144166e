// What the cache holds, for `airllm list` and `airllm rm`: every model repo with its revisions
// (commit, the refs that point to it, files, bytes) and the bytes of unfinished downloads. Written
// here rather than taken from @huggingface/hub's scanCacheDir, which rejects a repo without a refs/
// folder (what a download by commit leaves, ours or Python's) and skips nested refs (refs/pr/1).
import { existsSync, lstatSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { repoFolder } from "./cache-layout.ts";

export interface CachedRevision {
  readonly commit: string;
  readonly refs: readonly string[];
  readonly files: number;
  readonly bytes: number;
}

export interface CachedRepo {
  readonly repo: string;
  readonly dir: string;
  /** Bytes of the distinct blobs its snapshots link to. */
  readonly bytes: number;
  readonly revisions: readonly CachedRevision[];
  /** Bytes in `.incomplete` blobs: downloads a later pull resumes. */
  readonly partialBytes: number;
}

function walk(dir: string, prefix = ""): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    if (e.isDirectory()) out.push(...walk(join(dir, e.name), `${prefix}${e.name}/`));
    else out.push(prefix + e.name);
  }
  return out;
}

function scanRepo(dir: string, repo: string): CachedRepo {
  const refsDir = join(dir, "refs");
  const refsByCommit = new Map<string, string[]>();
  if (existsSync(refsDir)) {
    for (const ref of walk(refsDir)) {
      const commit = readFileSync(join(refsDir, ref), "utf8").trim();
      refsByCommit.set(commit, [...(refsByCommit.get(commit) ?? []), ref]);
    }
  }
  const blobs = new Map<string, number>();
  const revisions: CachedRevision[] = [];
  const snapshots = join(dir, "snapshots");
  for (const commit of existsSync(snapshots) ? readdirSync(snapshots).sort() : []) {
    let files = 0;
    let bytes = 0;
    const seen = new Set<string>();
    for (const rel of walk(join(snapshots, commit))) {
      const link = join(snapshots, commit, rel);
      const blob = lstatSync(link).isSymbolicLink() ? resolve(dirname(link), readlinkSync(link)) : link;
      if (!existsSync(blob)) continue;
      const size = statSync(blob).size;
      files++;
      if (!seen.has(blob)) bytes += size;
      seen.add(blob);
      blobs.set(blob, size);
    }
    revisions.push({ commit, refs: refsByCommit.get(commit) ?? [], files, bytes });
  }
  const blobsDir = join(dir, "blobs");
  const partialBytes = existsSync(blobsDir)
    ? readdirSync(blobsDir).filter((f) => f.endsWith(".incomplete")).reduce((a, f) => a + statSync(join(blobsDir, f)).size, 0)
    : 0;
  return { repo, dir, bytes: [...blobs.values()].reduce((a, b) => a + b, 0), revisions, partialBytes };
}

/** The model repos in `cacheDir` (datasets and spaces are not ours to list). */
export function scanCache(cacheDir: string): CachedRepo[] {
  if (!existsSync(cacheDir)) return [];
  return readdirSync(cacheDir)
    .filter((name) => name.startsWith("models--") && statSync(join(cacheDir, name)).isDirectory())
    .sort()
    .map((name) => scanRepo(join(cacheDir, name), name.slice("models--".length).split("--").join("/")));
}

/** Deletes one model repo from the cache (blobs, snapshots, refs); what it held, or null if absent. */
export function removeCachedRepo(cacheDir: string, repo: string): CachedRepo | null {
  const dir = repoFolder(cacheDir, repo);
  if (!existsSync(dir)) return null;
  const held = scanRepo(dir, repo);
  rmSync(dir, { recursive: true, force: true });
  rmSync(join(cacheDir, ".locks", `models--${repo.split("/").join("--")}`), { recursive: true, force: true });
  return held;
}
