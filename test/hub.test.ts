// Hub ids against a real HTTP server on loopback (test/hub-server.ts) serving ../shared's
// stories260K as a repo: pull, then run offline to llama2.c's text; a download killed mid-file
// resumes with a Range request; corrupted bytes are caught by their sha256 and fetched again;
// gated, missing and offline-uncached ids fail with one clear message; a GGUF repo gives one file
// per :QUANT; list, rm, plan, split and bench take ids; the progress line shows on a terminal only.
import { afterAll, beforeAll, beforeEach, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { AutoModel } from "../src/model/auto-model.ts";
import { HubServer } from "./hub-server.ts";
import { binaryCopy, expectConsistentSnapshot, expectStoriesRunsOffline, hubEnv, run, STORIES_FILES, STORIES_REPO, storiesRepoFiles, type Run } from "./hub-helpers.ts";
import { ROOT, SHARED, STORIES_HF } from "./paths.ts";
import { storiesExpectedText } from "./stories-reference.ts";

const GATED = "meta/gated-stories";
const GGUF_REPO = "ggml/tiny-llamas-GGUF";
const BIN_REPO = "old/llama-pytorch-bin";
/** A .bin-only checkpoint torch.save wrote from test/fixtures/hf/llama-f16 (test/fixtures/gen_torch_bin_fixtures.py). */
const BIN_DIR = join(ROOT, "test/fixtures/torch-bin/llama-bin");
const BIN_FILES = ["config.json", "generation_config.json", "pytorch_model-00001-of-00002.bin", "pytorch_model-00002-of-00002.bin", "pytorch_model.bin.index.json"];
const TOKEN = "hf_granted_test_token";
let server: HubServer;
let work: string;
let binary: string;
/** A fresh cache (and HF_HOME) per test. */
let cache: string;
let home: string;

const repoDir = (repo: string) => join(cache, `models--${repo.replace("/", "--")}`);
const snapshot = (repo: string) => join(repoDir(repo), "snapshots", server.commitOf(repo));
const blob = (repo: string, file: string) => join(repoDir(repo), "blobs", server.etagOf(repo, file));

function airllm(args: string[], vars: Record<string, string> = {}): Promise<Run> {
  return run([binary, ...args], hubEnv({ HF_ENDPOINT: server.url, HF_HUB_CACHE: cache, HF_HOME: home, ...vars }), work);
}

function expectCleanError(r: Run, pattern: RegExp): void {
  expect(r.code).not.toBe(0);
  expect(r.stderr).toMatch(/^airllm: error: /m);
  expect(r.stderr).toMatch(/^hint: /m);
  expect(r.stderr).toMatch(pattern);
  expect(r.stderr).not.toMatch(/^\s+at /m);
}

/** Requests logged from `from` on that fetched bytes of `file` (CDN or hub, any method but HEAD). */
const fileRequests = (file: string, from = 0) => server.log.slice(from).filter((r) => r.file === file && r.method !== "HEAD");

/** The 8-byte length and the JSON header of stories260K's model.safetensors: what a fit check may read. */
const STORIES_HEADER_BYTES = 8 + Number(new DataView(readFileSync(join(STORIES_HF, "model.safetensors")).buffer).getBigUint64(0, true));
const lastByte = (range: string | null) => Number(/^bytes=\d+-(\d+)$/.exec(range ?? "")?.[1] ?? Infinity);

/** The CDN requests from `from` on for stories' weights beyond the header: the download itself. */
const weightDownloads = (from: number) => fileRequests("model.safetensors", from).filter((q) => q.server === "cdn" && lastByte(q.range) >= STORIES_HEADER_BYTES);

async function waitFor(cond: () => boolean, what: string, timeoutMs = 30_000): Promise<void> {
  const t0 = performance.now();
  while (!cond()) {
    if (performance.now() - t0 > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await Bun.sleep(20);
  }
}

/** Runs `body` (in-process library calls) with this test's hub, cache and HF_HOME in the environment, and no HF_TOKEN. */
async function withHubEnv(body: () => Promise<void>): Promise<void> {
  const saved = { ...process.env };
  delete process.env.HF_TOKEN;
  Object.assign(process.env, { HF_ENDPOINT: server.url, HF_HUB_CACHE: cache, HF_HOME: home });
  try {
    await body();
  } finally {
    for (const k of ["HF_ENDPOINT", "HF_HUB_CACHE", "HF_HOME"]) delete process.env[k];
    Object.assign(process.env, saved);
  }
}

beforeAll(() => {
  ({ work, binary } = binaryCopy("airllm-hub-"));
  server = HubServer.start([
    { id: STORIES_REPO, files: storiesRepoFiles(), tags: ["v1.0"] },
    { id: GATED, files: storiesRepoFiles(), gated: true },
    {
      id: GGUF_REPO,
      files: {
        "README.md": join(SHARED, "models/stories260K/llama2c_doc_stories260K.md"),
        "stories260K-F32.gguf": join(SHARED, "models/stories260K/tinyllamas-stories-260k-f32.gguf"),
        "llama-2-tiny-random-F16.gguf": join(SHARED, "models/tiny-random-gguf/llama-2-tiny-random.gguf"),
      },
    },
    {
      id: BIN_REPO,
      files: {
        ...Object.fromEntries(BIN_FILES.map((f) => [f, join(BIN_DIR, f)])),
        "README.md": join(SHARED, "models/stories260K/llama2c_doc_stories260K.md"),
        "original/consolidated.00.pth": join(BIN_DIR, "pytorch_model-00001-of-00002.bin"),
      },
    },
  ]);
});
afterAll(() => {
  server?.stop();
  rmSync(work, { recursive: true, force: true });
});
beforeEach(() => {
  cache = mkdtempSync(join(work, "cache-"));
  home = mkdtempSync(join(work, "home-"));
  server.stall = null;
  server.corruptOnce.clear();
});

describe("pull, then run offline", () => {
  test("pull fetches what running needs into HF's layout; run ORG/NAME offline prints llama2.c's text with no request", async () => {
    const pulled = await airllm(["pull", STORIES_REPO]);
    expect(pulled.stderr).toMatch(/disk: .* to download .* free in .*: fits/);
    expect(pulled.code).toBe(0);
    expect(pulled.stdout).toBe(`${snapshot(STORIES_REPO)}\n`);
    expect(expectConsistentSnapshot(snapshot(STORIES_REPO), storiesRepoFiles())).toEqual(STORIES_FILES);
    expect(readFileSync(join(repoDir(STORIES_REPO), "refs/main"), "utf8")).toBe(server.commitOf(STORIES_REPO));
    expect(readdirSync(join(repoDir(STORIES_REPO), "blobs")).some((f) => f.endsWith(".incomplete"))).toBe(false);
    // Never the README, never original/.
    expect(server.log.some((r) => r.file === "README.md" || r.file?.startsWith("original/"))).toBe(false);

    await expectStoriesRunsOffline(airllm, server);
  });

  test("run ORG/NAME not cached downloads it first (fit check on stderr), then runs", async () => {
    const r = await airllm(["run", STORIES_REPO, "-p", "", "-n", "200", "--device", "cpu"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(storiesExpectedText() + "\n");
    expect(r.stderr).toMatch(/karpathy\/stories260K is commit [0-9a-f]{12}: 1 safetensors weight file/);
    expect(r.stderr).toMatch(/plan for cpu/);
  });

  test("revisions: a tag is recorded in refs/, a commit needs none", async () => {
    expect((await airllm(["pull", `${STORIES_REPO}@v1.0`])).code).toBe(0);
    expect(readFileSync(join(repoDir(STORIES_REPO), "refs/v1.0"), "utf8")).toBe(server.commitOf(STORIES_REPO));
    expect(existsSync(join(repoDir(STORIES_REPO), "refs/main"))).toBe(false);
    const before = server.log.length;
    const byCommit = await airllm(["run", `${STORIES_REPO}@${server.commitOf(STORIES_REPO)}`, "-p", "", "-n", "200", "--device", "cpu", "--offline"]);
    expect(byCommit.code).toBe(0);
    expect(byCommit.stdout).toBe(storiesExpectedText() + "\n");
    expect(server.log.length).toBe(before);
    expectCleanError(await airllm(["pull", `${STORIES_REPO}@v9`]), /has no revision "v9"/);
  });

  test("AutoModel.from_pretrained takes a hub id: downloaded, then from the cache offline", async () => {
    await withHubEnv(async () => {
      const notices: string[] = [];
      const model = await AutoModel.from_pretrained(STORIES_REPO, { device: "cpu", onNotice: (l) => notices.push(l) });
      model.dispose();
      expect(notices.some((l) => /^disk: .* fits$/.test(l))).toBe(true);
      const before = server.log.length;
      const offline = await AutoModel.from_pretrained(STORIES_REPO, { device: "cpu", offline: true });
      try {
        expect((await offline.generate("", { maxNewTokens: 200 })).text).toBe(storiesExpectedText());
      } finally {
        offline.dispose();
      }
      expect(server.log.length).toBe(before);
      await expect(AutoModel.from_pretrained("nobody/uncached", { offline: true })).rejects.toThrow(/not in the cache .* offline/);
    });
  });
});

describe("big-download care", () => {
  const STALL_AT = 400_000;

  /** Starts a pull that stalls mid model.safetensors, and waits until the partial blob holds STALL_AT bytes. */
  async function stalledPull(): Promise<Bun.Subprocess<"ignore", "pipe", "pipe">> {
    server.stall = { file: "model.safetensors", afterBytes: STALL_AT };
    const p = Bun.spawn([binary, "pull", STORIES_REPO], { cwd: work, env: hubEnv({ HF_ENDPOINT: server.url, HF_HUB_CACHE: cache, HF_HOME: home }), stdin: "ignore", stdout: "pipe", stderr: "pipe" });
    const part = `${blob(STORIES_REPO, "model.safetensors")}.incomplete`;
    await waitFor(() => existsSync(part) && statSync(part).size >= STALL_AT, "the partial download");
    return p;
  }

  function expectInterruptedCache(): void {
    // Nothing half-written is linked: the small files are, model.safetensors is not.
    expect(expectConsistentSnapshot(snapshot(STORIES_REPO), storiesRepoFiles())).toEqual(STORIES_FILES.filter((f) => f !== "model.safetensors"));
    expect(existsSync(blob(STORIES_REPO, "model.safetensors"))).toBe(false);
    expect(statSync(`${blob(STORIES_REPO, "model.safetensors")}.incomplete`).size).toBe(STALL_AT);
    expect(existsSync(join(repoDir(STORIES_REPO), "refs/main"))).toBe(false);
  }

  test("a download killed mid-file resumes with a Range request from its partial blob and completes", async () => {
    const p = await stalledPull();
    p.kill("SIGKILL");
    await p.exited;
    expectInterruptedCache();
    const from = server.log.length;
    const r = await airllm(["pull", STORIES_REPO]);
    expect(r.code).toBe(0);
    expect(weightDownloads(from).map((q) => q.range)).toEqual([`bytes=${STALL_AT}-`]);
    expect(expectConsistentSnapshot(snapshot(STORIES_REPO), storiesRepoFiles())).toEqual(STORIES_FILES);
  });

  test("Ctrl-C stops the download, says how to resume, and leaves the cache consistent", async () => {
    const p = await stalledPull();
    p.kill("SIGINT");
    const [stderr, code] = await Promise.all([new Response(p.stderr).text(), p.exited]);
    expect(code).not.toBe(0);
    expect(stderr).toMatch(/interrupted: .* downloaded/);
    expect(stderr).toMatch(/hint: run the same command again to resume/);
    expectInterruptedCache();
    expect((await airllm(["pull", STORIES_REPO])).code).toBe(0);
    expect(expectConsistentSnapshot(snapshot(STORIES_REPO), storiesRepoFiles())).toEqual(STORIES_FILES);
  });

  test("bytes corrupted in transit fail their sha256: deleted and fetched again, never used", async () => {
    server.corruptOnce.add(`${STORIES_REPO}/model.safetensors`);
    const from = server.log.length;
    const r = await airllm(["pull", STORIES_REPO]);
    expect(r.code).toBe(0);
    expect(weightDownloads(from).map((q) => q.range)).toEqual([null, null]);
    expect(expectConsistentSnapshot(snapshot(STORIES_REPO), storiesRepoFiles())).toEqual(STORIES_FILES);
  });

  test("a corrupt partial blob on disk is resumed, caught by its sha256, and fetched again whole", async () => {
    mkdirSync(join(repoDir(STORIES_REPO), "blobs"), { recursive: true });
    writeFileSync(`${blob(STORIES_REPO, "model.safetensors")}.incomplete`, new Uint8Array(300_000).fill(7));
    const from = server.log.length;
    const r = await airllm(["pull", STORIES_REPO]);
    expect(r.code).toBe(0);
    expect(weightDownloads(from).map((q) => q.range)).toEqual(["bytes=300000-", null]);
    expect(expectConsistentSnapshot(snapshot(STORIES_REPO), storiesRepoFiles())).toEqual(STORIES_FILES);
  });

  test("the progress line shows on a terminal, with bytes, rate and ETA; piped stderr gets none", async () => {
    const piped = await airllm(["pull", STORIES_REPO]);
    expect(piped.code).toBe(0);
    expect(piped.stderr).not.toContain("\r");
    expect(piped.stderr).not.toMatch(/downloading .* ETA/);
    rmSync(repoDir(STORIES_REPO), { recursive: true });
    const quoted = [binary, "pull", STORIES_REPO].map((a) => `'${a}'`).join(" ");
    const tty = await run(["script", "-qfec", quoted, "/dev/null"], hubEnv({ HF_ENDPOINT: server.url, HF_HUB_CACHE: cache, HF_HOME: home }), work);
    expect(tty.code).toBe(0);
    expect(tty.stdout).toMatch(/\r\x1b\[2Kdownloading [\d.]+ (B|KiB|MiB) \/ 1020\.5 KiB \(\d+%\) · [\d.]+ (B|KiB|MiB|GiB)\/s · ETA \S+ (s|min)? ?· [01]\/1 files/);
  });
});

describe("clear errors", () => {
  test("a gated model without a token names its page and how to pass a token; nothing is downloaded", async () => {
    const from = server.log.length;
    const r = await airllm(["pull", GATED]);
    expectCleanError(r, new RegExp(`model ${GATED} is gated or private`));
    expect(r.stderr).toContain(`request access at ${server.url}/${GATED}`);
    expect(r.stderr).toMatch(/--token hf_\.\.\., HF_TOKEN=hf_\.\.\./);
    expect(server.log.slice(from).some((q) => q.file !== null)).toBe(false);
  });

  test("a token from --token or the token file in HF_HOME opens it, and never leaves the hub's origin", async () => {
    expectCleanError(await airllm(["pull", GATED, "--token", "hf_no_access"]), /has no access to it \(HTTP 403\)/);
    const from = server.log.length;
    expect((await airllm(["pull", GATED, "--token", TOKEN])).code).toBe(0);
    rmSync(repoDir(GATED), { recursive: true });
    writeFileSync(join(home, "token"), `${TOKEN}\n`);
    expect((await airllm(["pull", GATED])).code).toBe(0);
    const mine = server.log.slice(from);
    expect(mine.filter((q) => q.server === "hub").every((q) => q.auth === `Bearer ${TOKEN}`)).toBe(true);
    expect(mine.some((q) => q.server === "cdn")).toBe(true);
    expect(mine.filter((q) => q.server === "cdn").every((q) => q.auth === null)).toBe(true);
  });

  test("HF_TOKEN, and AutoModel's hf_token option (AirLLM's name), open it too", async () => {
    expect((await airllm(["pull", GATED], { HF_TOKEN: TOKEN })).code).toBe(0);
    rmSync(repoDir(GATED), { recursive: true });
    await withHubEnv(async () => {
      await expect(AutoModel.from_pretrained(GATED, { device: "cpu" })).rejects.toThrow(new RegExp(`model ${GATED} is gated or private`));
      const model = await AutoModel.from_pretrained(GATED, { device: "cpu", hf_token: TOKEN });
      model.dispose();
    });
    expect(expectConsistentSnapshot(snapshot(GATED), storiesRepoFiles())).toEqual(STORIES_FILES);
  });

  test("a model the hub does not have: the id and a hint", async () => {
    expectCleanError(await airllm(["pull", "nobody/nothing"]), /model nobody\/nothing is not a local path, and .* has no model nobody\/nothing[\s\S]*hint: check the spelling/);
    expectCleanError(await airllm(["run", "nobody/nothing", "-p", "x"]), /has no model nobody\/nothing/);
  });

  test("offline, an uncached id fails at once, without a request", async () => {
    const from = server.log.length;
    const t0 = performance.now();
    expectCleanError(await airllm(["run", "nobody/uncached", "-p", "x"], { HF_HUB_OFFLINE: "1" }), /nobody\/uncached is not in the cache .* offline/);
    expectCleanError(await airllm(["run", STORIES_REPO, "-p", "x", "--offline"]), /karpathy\/stories260K is not in the cache .* offline/);
    expectCleanError(await airllm(["pull", STORIES_REPO], { HF_HUB_OFFLINE: "1" }), /not in the cache .* offline/);
    expect(performance.now() - t0).toBeLessThan(20_000);
    expect(server.log.length).toBe(from);
  });
});

describe("GGUF repos, list, rm, and the other commands", () => {
  test("ORG/NAME:QUANT downloads one GGUF file and runs it", async () => {
    const from = server.log.length;
    const pulled = await airllm(["pull", `${GGUF_REPO}:F32`]);
    expect(pulled.code).toBe(0);
    expect(pulled.stdout.trim()).toBe(join(snapshot(GGUF_REPO), "stories260K-F32.gguf"));
    expect(server.log.slice(from).filter((q) => q.file !== null).map((q) => q.file)).not.toContain("llama-2-tiny-random-F16.gguf");
    const r = await airllm(["run", `${GGUF_REPO}:F32`, "-p", "", "-n", "200", "--device", "cpu", "--kv-dtype", "f32"], { HF_HUB_OFFLINE: "1" });
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(storiesExpectedText() + "\n");
    expectCleanError(await airllm(["pull", GGUF_REPO]), /several GGUF files and none is Q4_K_M: .*stories260K-F32\.gguf/);
  });

  test("a repo with only pytorch_model*.bin: the shards per their index, nothing else; its logits are the safetensors original's", async () => {
    const from = server.log.length;
    const pulled = await airllm(["pull", BIN_REPO]);
    expect(pulled.stderr).toMatch(/2 pytorch-bin weight files/);
    expect(pulled.code).toBe(0);
    expect(expectConsistentSnapshot(snapshot(BIN_REPO), Object.fromEntries(BIN_FILES.map((f) => [f, join(BIN_DIR, f)])))).toEqual(BIN_FILES);
    expect(server.log.slice(from).some((q) => q.file === "README.md" || q.file?.startsWith("original/"))).toBe(false);
    const ids = ["--ids", "1,40,47,26,78", "--device", "cpu"];
    const ours = join(work, `bin-${Date.now()}.f32`);
    const original = join(work, `st-${Date.now()}.f32`);
    expect((await airllm(["logits", BIN_REPO, ...ids, "-o", ours], { HF_HUB_OFFLINE: "1" })).code).toBe(0);
    expect((await airllm(["logits", join(ROOT, "test/fixtures/hf/llama-f16"), ...ids, "-o", original])).code).toBe(0);
    expect(statSync(ours).size).toBeGreaterThan(0);
    expect(Buffer.compare(readFileSync(ours), readFileSync(original))).toBe(0);
  });

  test("list shows cached models with sizes and revisions; rm removes one", async () => {
    expect((await airllm(["pull", STORIES_REPO])).code).toBe(0);
    const listed = JSON.parse((await airllm(["list", "--json"])).stdout);
    const bytes = STORIES_FILES.reduce((a, f) => a + statSync(join(STORIES_HF, f)).size, 0);
    expect(listed.models).toEqual([
      { id: STORIES_REPO, path: repoDir(STORIES_REPO), size_bytes: bytes, partial_bytes: 0, revisions: [{ commit: server.commitOf(STORIES_REPO), refs: ["main"], files: 5, bytes }] },
    ]);
    expect((await airllm(["list"])).stdout).toMatch(/karpathy\/stories260K\s+1\.0 MiB\s+main=[0-9a-f]{12} \(5 files\)/);
    const removed = await airllm(["rm", STORIES_REPO]);
    expect(removed.code).toBe(0);
    expect(existsSync(repoDir(STORIES_REPO))).toBe(false);
    expect((await airllm(["list"])).stdout).toMatch(/^no models in /);
    expectCleanError(await airllm(["rm", STORIES_REPO]), /not in the cache/);
  });

  test("plan ORG/NAME uncached reads the weights' headers remotely: the same plan as the local folder, no weight bytes", async () => {
    const flags = ["--device", "cpu", "--max-memory", "64MiB", "--json"];
    const from = server.log.length;
    const remote = await airllm(["plan", STORIES_REPO, ...flags]);
    expect(remote.code).toBe(0);
    const local = await airllm(["plan", STORIES_HF, ...flags]);
    expect(JSON.parse(remote.stdout)).toEqual(JSON.parse(local.stdout));
    expect(existsSync(blob(STORIES_REPO, "model.safetensors"))).toBe(false);
    expect(fileRequests("model.safetensors", from).filter((q) => q.server === "cdn").length).toBeGreaterThan(0);
    expect(weightDownloads(from)).toEqual([]);
  });

  test("tokenize ORG/NAME fetches the config and tokenizer, no weights: the ids the local folder gives", async () => {
    const from = server.log.length;
    const byId = await airllm(["tokenize", STORIES_REPO, "Once upon a time"]);
    expect(byId.code).toBe(0);
    const local = await airllm(["tokenize", STORIES_HF, "Once upon a time"]);
    expect(byId.stdout).toBe(local.stdout);
    expect(byId.stdout.trim().split("\n").length).toBeGreaterThan(2);
    expect(weightDownloads(from)).toEqual([]);
    expect(existsSync(blob(STORIES_REPO, "model.safetensors"))).toBe(false);
    expect(existsSync(join(snapshot(STORIES_REPO), "tokenizer.json"))).toBe(true);
  });

  test("--draft-model takes an id too: speculative greedy decoding gives llama2.c's text", async () => {
    expect((await airllm(["pull", STORIES_REPO])).code).toBe(0);
    const r = await airllm(["run", STORIES_REPO, "-p", "", "-n", "200", "--device", "cpu", "--draft-model", STORIES_REPO, "--offline"]);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/\(\d+ of \d+ drafts accepted/);
    expectCleanError(await airllm(["run", STORIES_REPO, "-p", "", "--device", "cpu", "--draft-model", "nobody/uncached", "--offline"]), /nobody\/uncached is not in the cache .* offline/);
    expect(r.stdout).toBe(storiesExpectedText() + "\n");
  });

  test("split and bench take an id from the cache", async () => {
    expect((await airllm(["pull", STORIES_REPO])).code).toBe(0);
    const out = join(work, `split-${Date.now()}`);
    const split = await airllm(["split", STORIES_REPO, "--out", out, "--offline"]);
    expect(split.code).toBe(0);
    expect(existsSync(join(out, "splitted_model", "model.layers.4.safetensors.done"))).toBe(true);
    const bench = await airllm(["bench", STORIES_REPO, "--prompt-tokens", "8", "--decode-tokens", "2", "--device", "cpu", "--json"], { HF_HUB_OFFLINE: "1" });
    expect(bench.code).toBe(0);
    expect(JSON.parse(bench.stdout)).toMatchObject({ backend: "cpu", prompt_tokens: 8, decode_tokens: 2 });
  });
});
