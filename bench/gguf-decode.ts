// GGUF decode benchmark (CPU): the ~1B random Llama as BF16 safetensors, GGUF Q8_0 and GGUF Q4_K —
// bytes streamed per pass, decode tokens/s resident and streamed — and llama.cpp's own decode on
// the same GGUF files as the side-by-side.
//   bun bench/gguf-decode.ts [--tokens 8] [--max-memory 512MiB]
// Needs the GGUF files from bench/make_gguf_bench_models.py (llama-cpp-python) in $TMPDIR.
import { existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { AutoModel } from "../src/index.ts";
import { LLAMA_1B, writeRandomLlama } from "./random-model.ts";

const arg = (name: string, dflt: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : dflt;
};
const tokens = Number(arg("tokens", "8"));
const budget = arg("max-memory", "512MiB");
const dir = join(tmpdir(), "airllm-bench-llama1b-bf16");
const ggufDir = join(tmpdir(), "airllm-bench-gguf");
const root = resolve(import.meta.dir, "..");
writeRandomLlama(dir, LLAMA_1B, resolve(root, "../shared/models/stories260K-hf"));
if (!existsSync(join(ggufDir, "llama1b-q4_k.gguf"))) {
  const p = Bun.spawnSync(["python3", join(root, "bench/make_gguf_bench_models.py"), dir, ggufDir], { stdout: "inherit", stderr: "inherit" });
  if (p.exitCode !== 0) throw new Error("bench/make_gguf_bench_models.py failed (needs llama-cpp-python)");
}

async function decode(path: string, maxMemory?: string) {
  const model = await AutoModel.from_pretrained(path, { device: "cpu", max_memory: maxMemory, max_seq_len: 64 });
  try {
    const seq = model.newSequence();
    let [logits] = model.forward([seq], [[1, 403, 407, 261, 378]]);
    const t0 = performance.now();
    for (let i = 0; i < tokens; i++) {
      let id = 0;
      for (let j = 1; j < logits.length; j++) if (logits[j] > logits[id]) id = j;
      [logits] = model.forward([seq], [[id]]);
    }
    const ms = (performance.now() - t0) / tokens;
    seq.dispose();
    const w = model.engine.weightStats();
    return { ms_per_token: +ms.toFixed(1), tokens_per_s: +(1000 / ms).toFixed(2), weight_bytes: w.residentBytes + w.streamedBytes, disk_bytes_per_pass: w.diskBytes };
  } finally {
    model.dispose();
  }
}

const rows: Record<string, unknown> = {};
for (const [name, path] of [["bf16", dir], ["q8_0", join(ggufDir, "llama1b-q8_0.gguf")], ["q4_k", join(ggufDir, "llama1b-q4_k.gguf")]] as const) {
  const resident = await decode(path);
  const streamed = await decode(path, budget);
  let llamaCpp: unknown = null;
  if (name !== "bf16") {
    const p = Bun.spawnSync(["python3", join(root, "bench/llama_cpp_decode.py"), path, String(tokens), String(navigator.hardwareConcurrency)]);
    llamaCpp = p.exitCode === 0 ? JSON.parse(p.stdout.toString().trim().split("\n").at(-1)!) : { error: p.stderr.toString().slice(-300) };
  }
  rows[name] = { resident, [`streamed_${budget}`]: streamed, llama_cpp: llamaCpp };
  console.error(name, JSON.stringify(rows[name]));
}
console.log(JSON.stringify(rows, null, 1));
