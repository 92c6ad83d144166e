// Downloads of files big enough for the sha256 Worker that follows the file on disk as Bun writes
// the body (blob-hash.ts): a random-weight Llama whose model.safetensors is above WORKER_MIN_BYTES,
// served by the loopback hub. Random bytes, so a resume at the wrong offset or a digest that skips
// the bytes of an earlier attempt cannot pass. In-process (downloadBlobs with the Worker from
// source) for the cases only a direct call can set up, then through dist/airllm, whose Worker is
// bundled under another path.
import { afterAll, beforeAll, beforeEach, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { writeRandomLlama } from "../bench/random-model.ts";
import { downloadBlobs, type BlobJob } from "../src/hub/blob-download.ts";
import { WORKER_MIN_BYTES } from "../src/hub/blob-hash.ts";
import { blobPath, incompletePath } from "../src/hub/cache-layout.ts";
import { HubServer } from "./hub-server.ts";
import { binaryCopy, expectConsistentSnapshot, hubEnv, run } from "./hub-helpers.ts";
import { STORIES_HF } from "./paths.ts";

const REPO = "test/random-llama-bf16";
const FILES = ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"];
let server: HubServer;
let work: string;
let binary: string;
let model: string;
let cache: string;
let weights: Uint8Array;

const repoDir = () => join(cache, `models--${REPO.replace("/", "--")}`);
const etag = () => server.etagOf(REPO, "model.safetensors");
const sources = () => Object.fromEntries(FILES.map((f) => [f, join(model, f)]));
const lastByte = (range: string | null) => Number(/^bytes=\d+-(\d+)$/.exec(range ?? "")?.[1] ?? Infinity);
/** The CDN requests for model.safetensors since `from` that fetch weights (not the fit check's header reads), by their Range header. */
function ranges(from: number): (string | null)[] {
  const headerBytes = 8 + Number(new DataView(weights.buffer).getBigUint64(0, true));
  return server.log.slice(from).filter((q) => q.server === "cdn" && q.file === "model.safetensors" && q.method === "GET" && lastByte(q.range) >= headerBytes).map((q) => q.range);
}

function job(): BlobJob {
  return { path: "model.safetensors", url: `${server.url}/${REPO}/resolve/${server.commitOf(REPO)}/model.safetensors`, size: weights.length, etag: etag(), hash: "sha256" };
}

function expectBlobIsTheFile(): void {
  expect(existsSync(incompletePath(repoDir(), etag()))).toBe(false);
  expect(Buffer.compare(readFileSync(blobPath(repoDir(), etag())), weights)).toBe(0);
}

async function waitFor(cond: () => boolean, what: string): Promise<void> {
  const t0 = performance.now();
  while (!cond()) {
    if (performance.now() - t0 > 30_000) throw new Error(`timed out waiting for ${what}`);
    await Bun.sleep(10);
  }
}

beforeAll(() => {
  ({ work, binary } = binaryCopy("airllm-hub-dl-"));
  model = join(work, "model");
  // 3 layers of hidden 512 in BF16: about 19 MB, above the Worker's threshold.
  writeRandomLlama(model, { hidden: 512, intermediate: 1536, layers: 3, heads: 8, kvHeads: 2, dtype: "BF16", seed: 77 }, STORIES_HF);
  weights = new Uint8Array(readFileSync(join(model, "model.safetensors")));
  server = HubServer.start([{ id: REPO, files: sources() }]);
});
afterAll(() => {
  server?.stop();
  rmSync(work, { recursive: true, force: true });
});
beforeEach(() => {
  cache = mkdtempSync(join(work, "cache-"));
  server.stall = null;
  server.dropOnce = null;
  server.ignoreRange = false;
  server.corruptOnce.clear();
});

test("the file is big enough for the Worker hasher", () => {
  expect(weights.length).toBeGreaterThan(WORKER_MIN_BYTES);
});

describe("downloadBlobs, the Worker following the file on disk", () => {
  const partial = (bytes: Uint8Array) => {
    mkdirSync(join(repoDir(), "blobs"), { recursive: true });
    writeFileSync(incompletePath(repoDir(), etag()), bytes);
  };

  test("resumes a partial blob with one Range request, and its digest covers the earlier bytes", async () => {
    const have = 7_654_321;
    partial(weights.subarray(0, have));
    const from = server.log.length;
    let counted = 0;
    await downloadBlobs(repoDir(), [job()], { fetch, onBytes: (n) => (counted += n) });
    expect(ranges(from)).toEqual([`bytes=${have}-`]);
    expect(counted).toBe(weights.length - have);
    expectBlobIsTheFile();
  });

  test("a connection that breaks mid-file is resumed from where it broke, in the same call", async () => {
    server.dropOnce = { file: "model.safetensors", afterBytes: 10_000_000 };
    const from = server.log.length;
    await downloadBlobs(repoDir(), [job()], { fetch });
    const got = ranges(from);
    expect(got[0]).toBeNull();
    expect(got.length).toBe(2);
    // Resumed from what reached the disk: at most the bytes sent before the break.
    const resumedAt = Number(/^bytes=(\d+)-$/.exec(got[1] ?? "")?.[1]);
    expect(resumedAt).toBeGreaterThan(0);
    expect(resumedAt).toBeLessThanOrEqual(10_000_000);
    expectBlobIsTheFile();
  });

  test("a partial blob with wrong bytes is resumed, fails its sha256, and is fetched again whole", async () => {
    const wrong = weights.slice(0, 9_000_000);
    wrong[1234] ^= 1;
    partial(wrong);
    const from = server.log.length;
    await downloadBlobs(repoDir(), [job()], { fetch });
    expect(ranges(from)).toEqual(["bytes=9000000-", null]);
    expectBlobIsTheFile();
  });

  test("bytes corrupted in transit are caught and fetched again; twice is an error and nothing is kept", async () => {
    server.corruptOnce.add(`${REPO}/model.safetensors`);
    const from = server.log.length;
    await downloadBlobs(repoDir(), [job()], { fetch });
    expect(ranges(from)).toEqual([null, null]);
    expectBlobIsTheFile();

    rmSync(repoDir(), { recursive: true });
    const liar = { ...job(), etag: "0".repeat(64) };
    await expect(downloadBlobs(repoDir(), [liar], { fetch })).rejects.toThrow(/downloaded twice with the wrong sha256 \(expected 0{64}, got [0-9a-f]{64}\); deleted, not used/);
    expect(existsSync(blobPath(repoDir(), liar.etag))).toBe(false);
    expect(existsSync(incompletePath(repoDir(), liar.etag))).toBe(false);
  });

  test("a server that ignores Range: the partial blob is replaced by the whole file", async () => {
    partial(weights.subarray(0, 5_000_000));
    server.ignoreRange = true;
    const from = server.log.length;
    await downloadBlobs(repoDir(), [job()], { fetch });
    expect(ranges(from)).toEqual(["bytes=5000000-"]);
    expect(server.log.slice(from).filter((q) => q.server === "cdn").map((q) => q.status)).toEqual([200]);
    expectBlobIsTheFile();
  });

  test("a length that disagrees with the listing is refused before a byte is written", async () => {
    const short = { ...job(), size: weights.length - 1 };
    await expect(downloadBlobs(repoDir(), [short], { fetch })).rejects.toThrow(/the server sends \d+ bytes from byte 0, but the repo lists the file at \d+ bytes/);
    expect(existsSync(blobPath(repoDir(), short.etag))).toBe(false);
    expect(existsSync(incompletePath(repoDir(), short.etag))).toBe(false);
  });

  test("files download in parallel: one that stalls does not hold up the next", async () => {
    server.stall = { file: "model.safetensors", afterBytes: 1_000_000 };
    const abort = new AbortController();
    const config: BlobJob = { path: "config.json", url: `${server.url}/${REPO}/resolve/${server.commitOf(REPO)}/config.json`, size: statSync(join(model, "config.json")).size, etag: server.etagOf(REPO, "config.json"), hash: "git-sha1" };
    const done: string[] = [];
    const pending = downloadBlobs(repoDir(), [job(), config], { fetch, signal: abort.signal, onBlob: (j) => done.push(j.path) });
    await waitFor(() => done.includes("config.json"), "config.json beside the stalled weights");
    abort.abort();
    await expect(pending).rejects.toThrow();
    expect(done).toEqual(["config.json"]);
    expect(readFileSync(blobPath(repoDir(), config.etag), "utf8")).toBe(readFileSync(join(model, "config.json"), "utf8"));
  });

  test("aborted mid-file: rejects, keeps the partial blob for a resume, links nothing", async () => {
    const STALL_AT = 6_000_000;
    server.stall = { file: "model.safetensors", afterBytes: STALL_AT };
    const abort = new AbortController();
    const linked: string[] = [];
    const pending = downloadBlobs(repoDir(), [job()], { fetch, signal: abort.signal, onBlob: (j) => linked.push(j.path) });
    const part = incompletePath(repoDir(), etag());
    await waitFor(() => existsSync(part) && statSync(part).size >= STALL_AT, "the partial download");
    abort.abort();
    await expect(pending).rejects.toThrow();
    expect(linked).toEqual([]);
    expect(existsSync(blobPath(repoDir(), etag()))).toBe(false);
    expect(statSync(part).size).toBe(STALL_AT);
    const from = server.log.length;
    await downloadBlobs(repoDir(), [job()], { fetch });
    expect(ranges(from)).toEqual([`bytes=${STALL_AT}-`]);
    expectBlobIsTheFile();
  });
});

describe("airllm pull of the same repo (the Worker bundled in the binary)", () => {
  const pull = () => run([binary, "pull", REPO], hubEnv({ HF_ENDPOINT: server.url, HF_HUB_CACHE: cache, HF_HOME: join(cache, "home") }), work);
  const snapshot = () => join(repoDir(), "snapshots", server.commitOf(REPO));

  test("killed mid-file, then resumed with a Range request to a verified blob", async () => {
    const STALL_AT = 8 * 2 ** 20;
    server.stall = { file: "model.safetensors", afterBytes: STALL_AT };
    const p = Bun.spawn([binary, "pull", REPO], { cwd: work, env: hubEnv({ HF_ENDPOINT: server.url, HF_HUB_CACHE: cache, HF_HOME: join(cache, "home") }), stdin: "ignore", stdout: "ignore", stderr: "ignore" });
    const part = incompletePath(repoDir(), etag());
    await waitFor(() => existsSync(part) && statSync(part).size >= STALL_AT, "the partial download");
    p.kill("SIGKILL");
    await p.exited;
    expect(existsSync(join(snapshot(), "model.safetensors"))).toBe(false);
    const from = server.log.length;
    const r = await pull();
    expect(r.stderr).not.toMatch(/error/);
    expect(r.code).toBe(0);
    expect(ranges(from)).toEqual([`bytes=${STALL_AT}-`]);
    expect(expectConsistentSnapshot(snapshot(), sources())).toEqual([...FILES].sort());
  });

  test("corrupted in transit: caught by the bundled Worker's sha256 and fetched again", async () => {
    server.corruptOnce.add(`${REPO}/model.safetensors`);
    const from = server.log.length;
    const r = await pull();
    expect(r.code).toBe(0);
    expect(ranges(from)).toEqual([null, null]);
    expect(expectConsistentSnapshot(snapshot(), sources())).toEqual([...FILES].sort());
  });
});
