// DeepSeek-R1 671B at 1.58 bits, shape only (bench/sparse-deepseek.ts: the real deepseek2
// metadata, a UD-IQ1_S-like type mix, weights as file holes): what a decode token costs.
//   1. `dist/airllm plan FILE --json --device cpu --max-memory 8GiB`: the plan's bytes per decode token;
//   2. two tokens on the CPU under max_memory 8 GiB (the prompt's one token, then one decode step):
//      bytes fetched per pass from the streamer's counters, split into routed experts and the
//      rest, time per pass, peak RSS;
//   3. the bound those bytes set at nominal PCIe 4.0 x16 (~25 GB/s) and PCIe 5.0 x16 (~50 GB/s)
//      links (what a GPU streaming them from pinned RAM would wait): all of a token's bytes, and
//      those beyond what this plan keeps resident.
// Holes read through the page cache at memory-fill speed, not disk speed: the measured rate is an
// upper bound for a page-cached file. The compute is real (IQ1_S, IQ2_XXS, Q4_K, Q6_K kernels on
// zeros). Prints one JSON object.
//   bun bench/deepseek-671b.ts [--max-memory 8GiB] [--keep]
import { readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { AutoModel } from "../src/index.ts";
import { DEEPSEEK_R1_671B as S, writeSparseDeepseekGguf } from "./sparse-deepseek.ts";

const arg = (name: string, dflt: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1]! : dflt;
};
const budget = arg("max-memory", "8GiB");
const path = join(tmpdir(), "airllm-bench-deepseek-r1-671b.gguf");
const tensors = writeSparseDeepseekGguf(path, S);
const fileBytes = tensors.reduce((a, t) => a + t.bytes, 0);

const plan = Bun.spawnSync([resolve(import.meta.dir, "../dist/airllm"), "plan", path, "--json", "--device", "cpu", "--max-memory", budget, "--ctx", "256"]);
if (plan.exitCode !== 0) throw new Error(`airllm plan failed: ${plan.stderr.toString()}`);
const planned = JSON.parse(plan.stdout.toString());

const peakRss = () => Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync("/proc/self/status", "utf8"))![1]) * 1024;
const t0 = performance.now();
const model = await AutoModel.from_pretrained(path, { device: "cpu", max_memory: budget, max_seq_len: 256, min_seq_len: 256 });
const loadS = (performance.now() - t0) / 1000;
const passes: { seconds: number; expert_bytes: number; other_bytes: number; experts_fetched: number }[] = [];
try {
  const seq = model.newSequence();
  for (const ids of [[0], [5]]) {
    const before = model.engine.fetchStats()!;
    const t = performance.now();
    model.forward([seq], [ids]);
    const s = (performance.now() - t) / 1000;
    const after = model.engine.fetchStats()!;
    passes.push({
      seconds: Math.round(s * 100) / 100,
      expert_bytes: after.expertBytes - before.expertBytes,
      other_bytes: after.chunkBytes - before.chunkBytes + after.rowBytes - before.rowBytes,
      experts_fetched: after.expertMisses - before.expertMisses,
    });
  }
} finally {
  model.dispose();
  if (!process.argv.includes("--keep")) rmSync(path, { force: true });
}
const decode = passes[1]!;
const perToken = decode.expert_bytes + decode.other_bytes;
const gb = (b: number) => Math.round((b / 1e9) * 1000) / 1000;
console.log(JSON.stringify({
  model: "DeepSeek-R1 671B shape, UD-IQ1_S-like mix (sparse)",
  file_gb: gb(fileBytes),
  budget,
  plan: { decode_bytes_per_token_gb: gb(planned.decode_bytes_per_token), disk_bytes_per_token_gb: gb(planned.decode_disk_bytes_per_token), resident_gb: gb(planned.resident_bytes), context: planned.context },
  load_seconds: Math.round(loadS * 10) / 10,
  passes: passes.map((p) => ({ ...p, expert_bytes: gb(p.expert_bytes), other_bytes: gb(p.other_bytes) })),
  fetched_per_decode_token_gb: gb(perToken),
  measured_read_gb_per_s: gb(perToken / decode.seconds),
  // A GPU holding none of it streams every byte a token reads; one holding the plan's resident part streams the rest.
  bound_seconds_per_token: Object.fromEntries(
    [["all_streamed", planned.decode_bytes_per_token], ["beyond_resident", perToken]].map(([what, bytes]) => [
      what, { bytes_gb: gb(bytes as number), pcie4_25gbps: Math.round(((bytes as number) / 25e9) * 1000) / 1000, pcie5_50gbps: Math.round(((bytes as number) / 50e9) * 1000) / 1000 },
    ]),
  ),
  peak_rss_gib: Math.round((peakRss() / 2 ** 30) * 100) / 100,
}, null, 1));
