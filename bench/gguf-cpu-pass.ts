// One GGUF file on the CPU: decode ms/token and the time of one 512-token prefill, as one JSON
// line, for bench/gguf-vs-llama-cpp.ts (which interleaves it with llama.cpp on the same file).
//   bun bench/gguf-cpu-pass.ts FILE [--tokens 16] [--prefill 512] [--exact-activations]
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

const model = await AutoModel.from_pretrained(path, { device: "cpu", max_seq_len: prefill + tokens + 8, exact_activations: exact });
try {
  const ids = benchPromptIds(prefill);
  // Warm-up: pages the weights in (the mapping is read on first touch).
  const warm = model.newSequence();
  model.forward([warm], [ids.slice(0, 8)]);
  warm.dispose();

  const seq = model.newSequence();
  const t0 = performance.now();
  let [logits] = model.forward([seq], [ids]);
  const prefillMs = performance.now() - t0;
  const t1 = performance.now();
  for (let i = 0; i < tokens; i++) {
    let id = 0;
    for (let j = 1; j < logits!.length; j++) if (logits![j]! > logits![id]!) id = j;
    [logits] = model.forward([seq], [[id]]);
  }
  const decodeMs = (performance.now() - t1) / tokens;
  seq.dispose();
  console.log(JSON.stringify({ decode_ms_per_token: +decodeMs.toFixed(2), prefill_ms: +prefillMs.toFixed(1), prefill_tokens: prefill, exact_activations: exact }));
} finally {
  model.dispose();
}
