// Python's huggingface_hub and airllm share one cache, both ways, against the loopback hub:
// its snapshot_download fills a cache that `airllm run ORG/NAME` runs from offline; its
// scan_cache_dir lists what `airllm pull` downloaded (files, sizes, refs) without a warning; its
// offline snapshot_download finds our snapshot, and online it reuses our blobs. (Since 1.x it never
// resumes a partial blob: it downloads to a file named for its own process.)
// huggingface_hub is pip-installed (pinned) into a virtualenv kept under the temp dir per version.
import { afterAll, beforeAll, beforeEach, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { HubServer } from "./hub-server.ts";
import { binaryCopy, expectConsistentSnapshot, expectStoriesRunsOffline, hubEnv, run, STORIES_FILES, STORIES_REPO, storiesRepoFiles } from "./hub-helpers.ts";
import { STORIES_HF } from "./paths.ts";

const HF_HUB_VERSION = "2.4.0";
const VENV = join(tmpdir(), `airllm-huggingface_hub-${HF_HUB_VERSION}`);
const PYTHON = join(VENV, "bin/python");

let server: HubServer;
let work: string;
let binary: string;
let cache: string;

/** The pinned huggingface_hub in its own virtualenv, made once; no python3 or pip is a failure, not a skip. */
async function ensureVenv(): Promise<void> {
  const ready = join(VENV, ".airllm-ready");
  if (existsSync(ready)) return;
  rmSync(VENV, { recursive: true, force: true });
  const step = async (what: string, command: string[]) => {
    let r;
    try {
      r = await run(command, hubEnv({}));
    } catch (e) {
      throw new Error(`${what}: ${command[0]} cannot be started (${(e as Error).message}); this test needs python3 with venv and pip`);
    }
    if (r.code !== 0) throw new Error(`${what} failed (this test needs python3 with venv, and pip with network access):\n${r.stderr}`);
  };
  await step("python3 -m venv", ["python3", "-m", "venv", VENV]);
  await step(`pip install huggingface_hub==${HF_HUB_VERSION}`, [PYTHON, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", `huggingface_hub==${HF_HUB_VERSION}`]);
  writeFileSync(ready, "");
}

function env(vars: Record<string, string> = {}): Record<string, string> {
  return hubEnv({ HF_ENDPOINT: server.url, HF_HUB_CACHE: cache, HF_HOME: join(cache, "home"), HF_HUB_DISABLE_TELEMETRY: "1", HF_HUB_DISABLE_PROGRESS_BARS: "1", ...vars });
}

/** Runs a Python snippet with huggingface_hub; its last stdout line is JSON. */
async function python(code: string, vars: Record<string, string> = {}): Promise<unknown> {
  const r = await run([PYTHON, "-c", code], env(vars));
  if (r.code !== 0) throw new Error(`python failed (${r.code}):\n${r.stderr}`);
  return JSON.parse(r.stdout.trim().split("\n").pop()!);
}

const airllm = (args: string[], vars: Record<string, string> = {}) => run([binary, ...args], env(vars), work);

beforeAll(async () => {
  await ensureVenv();
  ({ work, binary } = binaryCopy("airllm-hub-py-"));
  server = HubServer.start([{ id: STORIES_REPO, files: storiesRepoFiles() }]);
}, 600_000);
afterAll(() => {
  server?.stop();
  rmSync(work, { recursive: true, force: true });
});
beforeEach(() => {
  cache = mkdtempSync(join(work, "cache-"));
});

const snapshot = () => join(cache, `models--${STORIES_REPO.replace("/", "--")}`, "snapshots", server.commitOf(STORIES_REPO));

describe("huggingface_hub and airllm share the cache", () => {
  test("snapshot_download fills a cache that airllm run ORG/NAME uses offline", async () => {
    const path = await python(`import json; from huggingface_hub import snapshot_download; print(json.dumps(snapshot_download("${STORIES_REPO}")))`);
    expect(path).toBe(snapshot());
    await expectStoriesRunsOffline(airllm, server);
  });

  test("scan_cache_dir lists what airllm pull downloaded, with the right files and sizes and no warnings", async () => {
    expect((await airllm(["pull", STORIES_REPO])).code).toBe(0);
    const scan = (await python(`
import json
from huggingface_hub import scan_cache_dir
info = scan_cache_dir()
print(json.dumps({
  "warnings": [str(w) for w in info.warnings],
  "repos": [{"id": r.repo_id, "type": r.repo_type, "size": r.size_on_disk, "revisions": [
    {"commit": v.commit_hash, "refs": sorted(v.refs), "files": sorted([f.file_name, f.size_on_disk] for f in v.files)} for v in r.revisions]} for r in info.repos]}))`)) as {
      warnings: string[];
      repos: { id: string; type: string; size: number; revisions: { commit: string; refs: string[]; files: [string, number][] }[] }[];
    };
    const sizes = STORIES_FILES.map((f) => [f, statSync(join(STORIES_HF, f)).size] as [string, number]);
    expect(scan.warnings).toEqual([]);
    expect(scan.repos).toEqual([
      { id: STORIES_REPO, type: "model", size: sizes.reduce((a, [, n]) => a + n, 0), revisions: [{ commit: server.commitOf(STORIES_REPO), refs: ["main"], files: sizes }] },
    ]);
    // And offline, huggingface_hub finds our snapshot as its own.
    const path = await python(`import json; from huggingface_hub import snapshot_download; print(json.dumps(snapshot_download("${STORIES_REPO}")))`, { HF_HUB_OFFLINE: "1" });
    expect(path).toBe(snapshot());
  });

  test("online, snapshot_download reuses the blobs airllm pulled and fetches only the files we left out", async () => {
    expect((await airllm(["pull", STORIES_REPO])).code).toBe(0);
    const from = server.log.length;
    expect(await python(`import json; from huggingface_hub import snapshot_download; print(json.dumps(snapshot_download("${STORIES_REPO}")))`)).toBe(snapshot());
    // Bytes come with a GET the hub answers itself (git files) or the CDN answers (LFS), not a redirect.
    const fetched = server.log.slice(from).filter((q) => q.method === "GET" && q.file !== null && q.status !== 302);
    expect([...new Set(fetched.map((q) => q.file))].sort()).toEqual(["README.md", "original/stories260K.bin"]);
    expect(expectConsistentSnapshot(snapshot(), storiesRepoFiles())).toEqual([...STORIES_FILES, "README.md", "original/stories260K.bin"].sort());
  });
});
