// Row-chunked streaming against whole-entry streaming (CPU): the 1B BF16 model under a RAM budget,
// decode with slots of one whole layer (the streaming this project had before row chunks) and with
// slots of a fraction of one (each matrix then multiplies a row chunk at a time), in turn A B A B.
// Reports ms/token, the bytes fetched per pass, and the per-pair ratio.
//   bun bench/chunked-streaming.ts [--max-memory 512MiB] [--chunk 32MiB] [--tokens 8] [--pairs 3]
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { AutoModel } from "../src/index.ts";
import { parseSize } from "../src/util/size.ts";
import { LLAMA_1B, writeRandomLlama } from "./random-model.ts";

const arg = (name: string, dflt: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1]! : dflt;
};
const budget = arg("max-memory", "512MiB");
const chunk = parseSize(arg("chunk", "32MiB"));
const tokens = Number(arg("tokens", "8"));
const pairs = Number(arg("pairs", "3"));
const dir = join(tmpdir(), "airllm-bench-llama1b-bf16");
writeRandomLlama(dir, LLAMA_1B, resolve(import.meta.dir, "../../shared/models/stories260K-hf"));

async function run(slot: number | undefined) {
  const model = await AutoModel.from_pretrained(dir, { device: "cpu", max_memory: budget, max_seq_len: 64, chunk_size: slot });
  try {
    const seq = model.newSequence();
    let [logits] = model.forward([seq], [[1, 403, 407, 261, 378]]);
    const fetched = () => model.engine.fetchStats()!.chunkBytes;
    const b0 = fetched();
    const t0 = performance.now();
    for (let i = 0; i < tokens; i++) {
      let id = 0;
      for (let j = 1; j < logits!.length; j++) if (logits![j]! > logits![id]!) id = j;
      [logits] = model.forward([seq], [[id]]);
    }
    const p = model.memoryPlan!;
    return {
      ms_per_token: +((performance.now() - t0) / tokens).toFixed(1),
      fetched_bytes_per_pass: Math.round((fetched() - b0) / tokens),
      slot_bytes: p.slotBytes,
      slots: p.slots,
      resident_bytes: p.residentBytes,
    };
  } finally {
    model.dispose();
  }
}

// Whole entries: slots of the largest layer, as the planner picks at this budget.
const results = [];
for (let i = 0; i < pairs; i++) {
  const whole = await run(undefined);
  const chunked = await run(chunk);
  results.push({ whole, chunked, ratio: +(chunked.ms_per_token / whole.ms_per_token).toFixed(3) });
}
const ratios = results.map((r) => r.ratio).sort((a, b) => a - b);
console.log(JSON.stringify({ budget, chunk, tokens, pairs: results, chunked_over_whole_median: ratios[Math.floor(ratios.length / 2)] }, null, 1));
