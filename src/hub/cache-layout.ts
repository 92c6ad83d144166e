// Hugging Face's cache layout, shared with Python's huggingface_hub both ways:
//   <cache>/models--ORG--NAME/blobs/<etag>                 file contents, named by sha256 (LFS) or git oid
//   <cache>/models--ORG--NAME/snapshots/<commit>/<path>    relative symlinks into ../../blobs/
//   <cache>/models--ORG--NAME/refs/<revision>              the commit a branch or tag pointed to
// A blob is renamed into place only when complete and verified, and only then linked, so a snapshot
// never shows a half-written file: an interrupted download leaves `<etag>.incomplete`, which the
// next one (ours or Python's) resumes.
import { existsSync, lstatSync, mkdirSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { isCommitHash } from "./hub-id.ts";

export function repoFolder(cacheDir: string, repo: string): string {
  return join(cacheDir, `models--${repo.split("/").join("--")}`);
}

export const blobPath = (repoDir: string, etag: string) => join(repoDir, "blobs", etag);
export const incompletePath = (repoDir: string, etag: string) => `${blobPath(repoDir, etag)}.incomplete`;
export const snapshotDir = (repoDir: string, commit: string) => join(repoDir, "snapshots", commit);

/** The commit `revision` names in the cache: itself when it is one, else what refs/ recorded. */
export function cachedCommit(repoDir: string, revision: string): string | null {
  if (isCommitHash(revision)) return revision;
  const ref = join(repoDir, "refs", revision);
  if (!existsSync(ref)) return null;
  const commit = readFileSync(ref, "utf8").trim();
  return isCommitHash(commit) ? commit : null;
}

/** Records that `revision` pointed to `commit` (written whole, then renamed: never seen half-written). */
export function writeRef(repoDir: string, revision: string, commit: string): void {
  if (revision === commit) return;
  const ref = join(repoDir, "refs", revision);
  mkdirSync(dirname(ref), { recursive: true });
  if (existsSync(ref) && readFileSync(ref, "utf8") === commit) return;
  const tmp = `${ref}.${process.pid}.tmp`;
  writeFileSync(tmp, commit);
  renameSync(tmp, ref);
}

/** Links `snapshots/<commit>/<path>` to its complete blob, relatively (the cache can be moved). */
export function linkIntoSnapshot(repoDir: string, commit: string, path: string, etag: string): void {
  const link = join(snapshotDir(repoDir, commit), path);
  mkdirSync(dirname(link), { recursive: true });
  const target = relative(dirname(link), blobPath(repoDir, etag));
  try {
    lstatSync(link);
    rmSync(link);
  } catch {
    // not there yet
  }
  symlinkSync(target, link);
}
