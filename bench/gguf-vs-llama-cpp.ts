// Our CPU decode and 512-token prefill against llama.cpp (llama-cpp-python) on the same GGUF
// files, the ~1B bench model quantized by llama.cpp's own quantizer (bench/
// make_gguf_bench_models.py): Q4_K_M, Q8_0, Q4_0. Each round runs, per file, ours then
// llama.cpp's in separate processes (A B A B …), same thread count; wall and CPU times, the
// load average before each run and this machine's memcpy bandwidth go to the JSON.
//   bun bench/gguf-vs-llama-cpp.ts [--rounds 1] [--tokens 16] [--prefill 512] [--threads 2]
//                                  [--python python3] [--json bench/results/NAME.json]
import { toArrayBuffer, type Pointer } from "bun:ffi";
import { writeFileSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { createCpuBackend } from "../src/backend/cpu/cpu-backend.ts";

const arg = (name: string, dflt: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1]! : dflt;
};
const rounds = Number(arg("rounds", "1"));
const tokens = arg("tokens", "16");
const prefill = arg("prefill", "512");
const threads = arg("threads", String(navigator.hardwareConcurrency));
const python = arg("python", "python3");
const jsonPath = process.argv.includes("--json") ? arg("json", "") : null;
const root = resolve(import.meta.dir, "..");
const dir = join(tmpdir(), "airllm-bench-gguf");
const files = { q4_k_m: "llama1b-q4_k.gguf", q8_0: "llama1b-q8_0.gguf", q4_0: "llama1b-q4_0.gguf" };

function memcpyGBs(): number {
  const be = createCpuBackend({ threads: Number(threads) });
  const N = 1 << 28;
  const a = be.alloc(N);
  const b = be.alloc(N);
  new Uint32Array(toArrayBuffer(a as Pointer, 0, N)).fill(0x3c003c00);
  let best = Infinity;
  for (let i = 0; i < 5; i++) {
    const s = Bun.nanoseconds();
    be.copy(b, a, N);
    best = Math.min(best, (Bun.nanoseconds() - s) / 1e9);
  }
  be.destroy();
  return (2 * N) / best / 1e9;
}

function runJson(cmd: string[]): Record<string, number> {
  const p = Bun.spawnSync(cmd, { stderr: "pipe" });
  if (p.exitCode !== 0) throw new Error(`${cmd.join(" ")} failed: ${p.stderr.toString().slice(-400)}`);
  return JSON.parse(p.stdout.toString().trim().split("\n").at(-1)!);
}

const median = (v: number[]) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)]!;
const bandwidth = memcpyGBs();
console.error(`memcpy ${bandwidth.toFixed(1)} GB/s (read + write), threads ${threads}`);
const runs: Record<string, { ours: Record<string, number>[]; llama_cpp: Record<string, number>[]; load: number[] }> = {};
for (let r = 0; r < rounds; r++) {
  for (const [name, file] of Object.entries(files)) {
    const path = join(dir, file);
    const slot = (runs[name] ??= { ours: [], llama_cpp: [], load: [] });
    slot.load.push(loadavg()[0]!);
    slot.ours.push(runJson(["bun", join(root, "bench/gguf-cpu-pass.ts"), path, "--tokens", tokens, "--prefill", prefill, "--threads", threads]));
    slot.load.push(loadavg()[0]!);
    slot.llama_cpp.push(runJson([python, join(root, "bench/llama_cpp_decode.py"), path, tokens, threads, prefill]));
    console.error(name, JSON.stringify({ ours: slot.ours.at(-1), llama_cpp: slot.llama_cpp.at(-1) }));
  }
}
const summary: Record<string, Record<string, number>> = {};
for (const [name, s] of Object.entries(runs)) {
  const m = (rows: Record<string, number>[], k: string) => median(rows.map((x) => x[k]!));
  const o = { decode: m(s.ours, "decode_ms_per_token"), decodeCpu: m(s.ours, "decode_cpu_ms_per_token"), prefill: m(s.ours, "prefill_ms"), prefillCpu: m(s.ours, "prefill_cpu_ms") };
  const l = { decode: m(s.llama_cpp, "ms_per_token"), decodeCpu: m(s.llama_cpp, "cpu_ms_per_token"), prefill: m(s.llama_cpp, "prefill_ms"), prefillCpu: m(s.llama_cpp, "prefill_cpu_ms") };
  // Ratios > 1: we are faster.
  summary[name] = {
    ours_decode_ms: o.decode, llama_cpp_decode_ms: l.decode, decode_speed_ratio: +(l.decode / o.decode).toFixed(2), decode_cpu_ratio: +(l.decodeCpu / o.decodeCpu).toFixed(2),
    ours_prefill_ms: o.prefill, llama_cpp_prefill_ms: l.prefill, prefill_speed_ratio: +(l.prefill / o.prefill).toFixed(2), prefill_cpu_ratio: +(l.prefillCpu / o.prefillCpu).toFixed(2),
    load_median: +median(s.load).toFixed(2),
  };
  console.log(name, JSON.stringify(summary[name]));
}
if (jsonPath) writeFileSync(jsonPath, JSON.stringify({ date: new Date().toISOString(), threads: Number(threads), tokens: Number(tokens), prefill: Number(prefill), memcpyGBs: +bandwidth.toFixed(1), summary, runs }, null, 1) + "\n");
