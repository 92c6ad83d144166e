// The fit check for a 70B repo, before any weight byte crosses the network. The loopback hub serves
// Llama-3-70B's shapes as sparse shards (headers, then holes: 141 GB that take no disk); the pull's
// stderr goes to a file the server reads at the first request for weight bytes, so "printed
// before" is checked causally. The pull is killed at that first request, so a machine whose disk
// could hold 141 GB downloads nothing either.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, statfsSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { LLAMA3_70B, writeSparseShardedLlama, type SparseShards } from "../bench/sparse-model.ts";
import { formatBytes } from "../src/util/size.ts";
import { HubServer } from "./hub-server.ts";
import { binaryCopy, hubEnv, run } from "./hub-helpers.ts";

const REPO = "meta-llama/Meta-Llama-3-70B-sparse";
const SPARSE = join(tmpdir(), "airllm-sparse-llama3-70b-shards");
const BUDGET = ["--device", "cpu", "--max-memory", "4GiB"];
let layout: SparseShards;
let server: HubServer;
let work: string;
let binary: string;

beforeAll(() => {
  layout = writeSparseShardedLlama(SPARSE, LLAMA3_70B, 5e9);
  // The shards' sha256 would take minutes to compute over 141 GB of zeros, and nothing downloads
  // them here: the server announces stand-ins, which a completed download would rightly reject.
  const sha256 = Object.fromEntries(layout.shards.map((f) => [f, new Bun.CryptoHasher("sha256").update(`stand-in ${f}`).digest("hex")]));
  const files = Object.fromEntries(["config.json", "model.safetensors.index.json", ...layout.shards].map((f) => [f, join(SPARSE, f)]));
  server = HubServer.start([{ id: REPO, files, sha256 }]);
  ({ work, binary } = binaryCopy("airllm-hub-fit-"));
});
afterAll(() => {
  server?.stop();
  rmSync(work, { recursive: true, force: true });
});

const lastByte = (range: string | null) => Number(/^bytes=\d+-(\d+)$/.exec(range ?? "")?.[1] ?? Infinity);

interface WatchedPull {
  readonly code: number;
  readonly stderr: string;
  /** The pull's stderr as it stood when each request for weight bytes (beyond a shard's header) arrived. */
  readonly stderrAtWeightRequests: string[];
  readonly cache: string;
}

/** `airllm pull REPO args`, killed at its first request for weight bytes. */
async function watchedPull(args: string[]): Promise<WatchedPull> {
  const cache = mkdtempSync(join(work, "cache-"));
  const errFile = join(cache, "..", `${cache.split("/").pop()}.stderr`);
  const fd = openSync(errFile, "w");
  const seen: string[] = [];
  const p = Bun.spawn([binary, "pull", REPO, ...args], { cwd: work, env: hubEnv({ HF_ENDPOINT: server.url, HF_HUB_CACHE: cache, HF_HOME: join(cache, "home") }), stdin: "ignore", stdout: "ignore", stderr: fd });
  server.onCdnRequest = ({ file, range }) => {
    if (lastByte(range) < layout.headerBytes[file]) return;
    seen.push(readFileSync(errFile, "utf8"));
    p.kill("SIGKILL");
  };
  const code = await p.exited;
  server.onCdnRequest = null;
  closeSync(fd);
  return { code, stderr: readFileSync(errFile, "utf8"), stderrAtWeightRequests: seen, cache };
}

describe("the fit check of a 70B repo", () => {
  const totalBytes = () => layout.shards.reduce((a, f) => a + statSync(join(SPARSE, f)).size, 0);

  test("its numbers are printed before any weight byte is requested, and match the local plan", async () => {
    const from = server.log.length;
    const r = await watchedPull(BUDGET);
    const total = totalBytes();
    expect(r.stderr).toContain(`airllm: ${REPO} is commit ${server.commitOf(REPO).slice(0, 12)}: ${layout.shards.length} safetensors weight files, ${formatBytes(total)}`);
    const s = statfsSync(r.cache);
    const free = s.bavail * s.bsize;
    const disk = new RegExp(`airllm: disk: ${formatBytes(total)} to download \\(of ${formatBytes(total)}\\), ([\\d.]+ \\w+) free in ${r.cache}: (fits|does not fit)`).exec(r.stderr);
    expect(disk).not.toBeNull();
    // The same plan `airllm plan` makes from the same shards on local disk.
    const local = await run([binary, "plan", SPARSE, ...BUDGET], hubEnv({}), work);
    expect(local.code).toBe(0);
    const planLines = local.stdout.trim().split("\n").map((l) => `airllm: ${l}`);
    for (const l of planLines) expect(r.stderr).toContain(l);
    expect(planLines[1]).toMatch(/^airllm: plan for cpu, budget 4\.00 GiB/);
    for (const seen of r.stderrAtWeightRequests) {
      expect(seen).toContain(disk![0]);
      for (const l of planLines) expect(seen).toContain(l);
    }
    // Refused exactly when the disk cannot hold it; else it starts (and was stopped at its first weight request).
    if (total > free) {
      expect(disk![2]).toBe("does not fit");
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/airllm: error: the download needs .* free; nothing was downloaded\nhint: .*--force/);
      expect(r.stderrAtWeightRequests).toEqual([]);
    } else {
      expect(disk![2]).toBe("fits");
      expect(r.stderrAtWeightRequests.length).toBeGreaterThan(0);
    }
    // Before the kill, each shard was read only within its header, at most three times (probe, length, JSON).
    const reads = server.log.slice(from).filter((q) => q.server === "cdn" && q.file !== null && lastByte(q.range) < layout.headerBytes[q.file]);
    expect(new Set(reads.map((q) => q.file)).size).toBe(layout.shards.length);
    expect(reads.length).toBeLessThanOrEqual(3 * layout.shards.length);
  });

  test("--dry-run stops after the fit check; --force downloads past a failed disk check", async () => {
    const dry = await watchedPull([...BUDGET, "--dry-run"]);
    expect(dry.code).toBe(0);
    expect(dry.stderr).toMatch(/airllm: disk: .* to download/);
    expect(dry.stderrAtWeightRequests).toEqual([]);
    const forced = await watchedPull([...BUDGET, "--force"]);
    expect(forced.stderrAtWeightRequests.length).toBeGreaterThan(0);
    expect(forced.stderrAtWeightRequests[0]).toMatch(/airllm: disk: .* to download/);
    expect(forced.stderrAtWeightRequests[0]).toMatch(/^airllm: plan for cpu, budget 4\.00 GiB/m);
  });
});
