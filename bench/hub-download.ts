// Download throughput of `airllm pull` from the loopback hub (test/hub-server.ts) against plain
// curl fetching the same files from the same server in the same run, in turn A B C A B C: a sparse
// multi-GB sharded Llama (bench/sparse-model.ts; the server reads holes, the clients write real
// bytes), the real sha256 of every shard announced, so the pull verifies every byte as it must.
// Peers: one curl process fetching the files one after another, and curl --parallel with the
// pull's concurrency. Reports GB/s of each and, round by round, pull ÷ each curl (a ratio taken
// within a round survives the drift of a shared machine); prints JSON on stdout.
//   bun bench/hub-download.ts [--rounds 3]
import { execFileSync } from "node:child_process";
import { cpus, loadavg, tmpdir, totalmem } from "node:os";
import { existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { HubServer } from "../test/hub-server.ts";
import { writeSparseShardedLlama, type SparseLlamaSpec } from "./sparse-model.ts";

const arg = (name: string, dflt: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1]! : dflt;
};
const rounds = Number(arg("rounds", "3"));
const ROOT = resolve(import.meta.dir, "..");
const BINARY = join(ROOT, "dist/airllm");
if (!existsSync(BINARY)) throw new Error(`${BINARY} is missing: run \`bun run build\` first`);

// Llama-3-8B's layer shapes, 6 layers: 4.7 GB of BF16 in shards of about 1.2 GB.
const SPEC: SparseLlamaSpec = { hidden: 4096, intermediate: 14336, layers: 6, heads: 32, kvHeads: 8, vocab: 128256, maxPositions: 8192, ropeTheta: 500000, dtype: "BF16" };
const REPO = "bench/llama-sparse-4.7GB";
const dir = join(tmpdir(), "airllm-bench-hub-sparse");
const { shards } = writeSparseShardedLlama(dir, SPEC, 1.2e9);

// The real sha256 of each shard, computed once (holes hash like zeros) and kept beside it.
const shaFile = join(dir, ".sha256.json");
const sha256: Record<string, string> = existsSync(shaFile) ? JSON.parse(readFileSync(shaFile, "utf8")) : {};
for (const f of shards) {
  if (sha256[f]) continue;
  sha256[f] = execFileSync("openssl", ["dgst", "-sha256", "-r", join(dir, f)], { encoding: "utf8" }).split(" ")[0]!;
  writeFileSync(shaFile, JSON.stringify(sha256));
}
const files = ["config.json", "model.safetensors.index.json", ...shards];
const server = HubServer.start([{ id: REPO, files: Object.fromEntries(files.map((f) => [f, join(dir, f)])), sha256 }]);
const commit = server.commitOf(REPO);
const totalBytes = files.reduce((a, f) => a + statSync(join(dir, f)).size, 0);
const work = join(tmpdir(), "airllm-bench-hub-out");

/** Runs `command` to completion, sampling its peak RSS; wall seconds and peak RSS bytes. */
async function timed(command: string[], env: Record<string, string>): Promise<{ seconds: number; peakRss: number; stderr: string }> {
  execFileSync("sync");
  const t0 = performance.now();
  const p = Bun.spawn(command, { env, stdin: "ignore", stdout: "ignore", stderr: "pipe" });
  let peak = 0;
  const sample = setInterval(() => {
    try {
      const kb = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${p.pid}/status`, "utf8"))?.[1];
      if (kb) peak = Math.max(peak, Number(kb) * 1024);
    } catch {
      // exited between samples
    }
  }, 50);
  const [stderr, code] = await Promise.all([new Response(p.stderr).text(), p.exited]);
  clearInterval(sample);
  const seconds = (performance.now() - t0) / 1000;
  if (code !== 0) throw new Error(`${command[0]} exited ${code}:\n${stderr}`);
  return { seconds, peakRss: peak, stderr };
}

const env = { ...process.env, HF_ENDPOINT: server.url, HF_HOME: join(work, "home") } as Record<string, string>;
const urls = files.map((f) => `${server.url}/${REPO}/resolve/${commit}/${f}`);

async function pull() {
  rmSync(work, { recursive: true, force: true });
  const cache = join(work, "cache");
  const r = await timed([BINARY, "pull", REPO], { ...env, HF_HUB_CACHE: cache });
  const blobs = join(cache, `models--${REPO.replace("/", "--")}`, "blobs");
  for (const f of shards) if (statSync(join(blobs, sha256[f]!)).size !== statSync(join(dir, f)).size) throw new Error(`pull left a wrong ${f}`);
  return { gb_per_s: +(totalBytes / r.seconds / 1e9).toFixed(3), seconds: +r.seconds.toFixed(2), peak_rss_bytes: r.peakRss };
}

async function curl(parallel: boolean) {
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  const args = urls.flatMap((u, i) => [u, "-o", join(work, files[i]!)]);
  const r = await timed(["curl", "-sSfL", ...(parallel ? ["--parallel", "--parallel-max", "8"] : []), ...args], env);
  for (const f of files) if (statSync(join(work, f)).size !== statSync(join(dir, f)).size) throw new Error(`curl left a wrong ${f}`);
  return { gb_per_s: +(totalBytes / r.seconds / 1e9).toFixed(3), seconds: +r.seconds.toFixed(2), peak_rss_bytes: r.peakRss };
}

const results = [];
try {
  for (let i = 0; i < rounds; i++) {
    const ours = await pull();
    const sequential = await curl(false);
    const parallel = await curl(true);
    results.push({
      pull: ours,
      curl: sequential,
      curl_parallel_8: parallel,
      pull_over_curl: +(ours.gb_per_s / sequential.gb_per_s).toFixed(3),
      pull_over_curl_parallel_8: +(ours.gb_per_s / parallel.gb_per_s).toFixed(3),
    });
  }
} finally {
  server.stop();
  rmSync(work, { recursive: true, force: true });
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
console.log(
  JSON.stringify(
    {
      date: new Date().toISOString(),
      commit: execFileSync("git", ["rev-parse", "--short", "HEAD"], { cwd: ROOT, encoding: "utf8" }).trim(),
      machine: { cpu: cpus()[0]?.model, cores: cpus().length, ram_bytes: totalmem(), load_average_at_end: loadavg() },
      bun: Bun.version,
      curl: execFileSync("curl", ["--version"], { encoding: "utf8" }).split("\n")[0],
      model: { repo: REPO, files: files.length, shards: shards.length, bytes: totalBytes, sha256_verified_by_pull: true },
      rounds: results,
      median_gb_per_s: {
        pull: median(results.map((r) => r.pull.gb_per_s)),
        curl: median(results.map((r) => r.curl.gb_per_s)),
        curl_parallel_8: median(results.map((r) => r.curl_parallel_8.gb_per_s)),
      },
      pull_over_curl_median: median(results.map((r) => r.pull_over_curl)),
      pull_over_curl_parallel_8_median: median(results.map((r) => r.pull_over_curl_parallel_8)),
    },
    null,
    1,
  ),
);
