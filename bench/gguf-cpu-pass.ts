// One GGUF file on the CPU: decode ms/token and the time of one 512-token prefill, as one JSON
// line, for bench/gguf-vs-llama-cpp.ts (which interleaves it with llama.cpp on the same file).
//   bun bench/gguf-cpu-pass.ts FILE [--tokens 16] [--prefill 512] [--threads N] [--exact-activations]
import { AutoModel } from "../src/index.ts";
import { benchPromptIds } from "./gguf-bench-prompt.ts";

const arg = (name: string, dflt: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1]! : dflt;
};
const path = process.argv[2]!;
const tokens = Number(arg("tokens", "16"));
const prefill = Number(arg("prefill", "512"));
const exact = process.argv.includes("--exact-activations");
const threads = process.argv.includes("--threads") ? Number(arg("threads", "0")) : undefined;

const model = await AutoModel.from_pretrained(path, { device: "cpu", threads, max_seq_len: prefill + tokens + 8, exact_activations: exact });
try {
  const ids = benchPromptIds(prefill);
  // Warm-up: pages the weights in (the mapping is read on first touch).
  const warm = model.newSequence();
  model.forward([warm], [ids.slice(0, 8)]);
  warm.dispose();

  // Decode first, after a 5-token prompt (a short context), then the prefill on a fresh
  // sequence: bench/llama_cpp_decode.py measures in the same order.
  const seq = model.newSequence();
  let [logits] = model.forward([seq], [[1, 403, 407, 261, 378]]);
  const c1 = process.cpuUsage();
  const t1 = performance.now();
  for (let i = 0; i < tokens; i++) {
    let id = 0;
    for (let j = 1; j < logits!.length; j++) if (logits![j]! > logits![id]!) id = j;
    [logits] = model.forward([seq], [[id]]);
  }
  const decodeMs = (performance.now() - t1) / tokens;
  const decodeCpu = process.cpuUsage(c1);
  seq.dispose();
  const long = model.newSequence();
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  model.forward([long], [ids]);
  const prefillMs = performance.now() - t0;
  const prefillCpu = process.cpuUsage(c0);
  long.dispose();
  // CPU milliseconds (all threads, user + system) beside wall time: on a shared machine the
  // wall time carries other processes' load, the CPU time mostly does not.
  const cpuMs = (u: NodeJS.CpuUsage) => (u.user + u.system) / 1000;
  console.log(
    JSON.stringify({
      decode_ms_per_token: +decodeMs.toFixed(2),
      decode_cpu_ms_per_token: +(cpuMs(decodeCpu) / tokens).toFixed(2),
      prefill_ms: +prefillMs.toFixed(1),
      prefill_cpu_ms: +cpuMs(prefillCpu).toFixed(1),
      prefill_tokens: prefill,
      exact_activations: exact,
    }),
  );
} finally {
  model.dispose();
}
