// MoE streaming bench (CPU): a Mixtral-shaped random model (8 experts, top-2; 2.2 GB BF16) under a
// memory budget that holds a fraction of it, streamed two ways in turn (A B A B ...):
//   experts — only the experts a pass routes to are fetched (LRU cache, next-layer guesses);
//   layers  — every expert streams with its layer, as AirLLM does.
// Reports per mode: decode ms/token, bytes fetched per decode pass beside the bytes a pass needs
// (attention + router + top-k/experts of the expert bytes), and the expert fetches of a 512-token
// prefill against the experts there are. Per-pair ratios of decode time.
//   bun bench/moe-streaming.ts [--max-memory 1GiB] [--tokens 16] [--pairs 3]
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { AutoModel, type FromPretrainedOptions } from "../src/index.ts";
import { MIXTRAL_SMALL, writeRandomMixtral } from "./random-moe.ts";

const arg = (name: string, dflt: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1]! : dflt;
};
const budget = arg("max-memory", "1GiB");
const tokens = Number(arg("tokens", "16"));
const pairs = Number(arg("pairs", "3"));
const spec = MIXTRAL_SMALL;
const dir = join(tmpdir(), "airllm-bench-mixtral-small");
const weightBytes = writeRandomMixtral(dir, spec, resolve(import.meta.dir, "../../shared/models/stories260K-hf"));

interface Run {
  ms_per_token: number;
  fetched_bytes_per_decode_pass: number;
  prefill_512_expert_fetches: number;
  resident_bytes: number;
  expert_cache_hit_pct: number;
  guess_cover_pct: number;
}

async function run(mode: "experts" | "layers"): Promise<Run> {
  const o: FromPretrainedOptions = { device: "cpu", max_memory: budget, max_seq_len: 600, moe_streaming: mode };
  const model = await AutoModel.from_pretrained(dir, o);
  try {
    const fetched = () => {
      const s = model.engine.fetchStats()!;
      return s.chunkBytes + s.expertBytes + s.rowBytes;
    };
    const seq = model.newSequence();
    let [logits] = model.forward([seq], [[1, 403, 407, 261, 378, 432, 383, 286]]);
    const before = fetched();
    const stats0 = model.engine.fetchStats()!;
    const t0 = performance.now();
    for (let i = 0; i < tokens; i++) {
      let id = 0;
      for (let j = 1; j < logits!.length; j++) if (logits![j]! > logits![id]!) id = j;
      [logits] = model.forward([seq], [[id]]);
    }
    const ms = (performance.now() - t0) / tokens;
    const stats1 = model.engine.fetchStats()!;
    const perPass = (fetched() - before) / tokens;
    seq.dispose();
    // A 512-token prefill: every expert is routed to by some row; each should be fetched once.
    const long = model.newSequence();
    let x = 7;
    const prompt = Array.from({ length: 512 }, () => (x = (x * 1103515245 + 12345) % 2 ** 31) % 512);
    const fetches = () => {
      const s = model.engine.fetchStats()!;
      return s.expertMisses + s.guessFetches;
    };
    const m0 = fetches();
    model.forward([long], [prompt]);
    const prefillFetches = fetches() - m0;
    long.dispose();
    const hits = stats1.expertHits - stats0.expertHits;
    const misses = stats1.expertMisses - stats0.expertMisses + stats1.expertGuessedUses - stats0.expertGuessedUses;
    const guessed = stats1.predictedRouted - stats0.predictedRouted;
    return {
      ms_per_token: +ms.toFixed(1),
      fetched_bytes_per_decode_pass: Math.round(perPass),
      prefill_512_expert_fetches: prefillFetches,
      resident_bytes: model.engine.weightStats().residentBytes,
      expert_cache_hit_pct: hits + misses > 0 ? +((100 * hits) / (hits + misses)).toFixed(1) : 0,
      guess_cover_pct: guessed > 0 ? +((100 * (stats1.predictionHits - stats0.predictionHits)) / guessed).toFixed(1) : 0,
    };
  } finally {
    model.dispose();
  }
}

// What one decode pass needs: the dense part of every layer, the routers, top-k/experts of the experts.
const expertBytes = 3 * spec.hidden * spec.expertIntermediate * 2;
const totalExperts = spec.layers * spec.experts * expertBytes;
const needed = weightBytes - totalExperts + (spec.topK / spec.experts) * totalExperts;

const results: { experts: Run; layers: Run; ratio: number }[] = [];
for (let p = 0; p < pairs; p++) {
  const experts = await run("experts");
  const layers = await run("layers");
  results.push({ experts, layers, ratio: +(layers.ms_per_token / experts.ms_per_token).toFixed(2) });
}
const ratios = results.map((r) => r.ratio).sort((a, b) => a - b);
console.log(JSON.stringify({
  model: { ...spec, weight_bytes: weightBytes, expert_bytes: expertBytes, expert_share: +(totalExperts / weightBytes).toFixed(3) },
  budget,
  needed_bytes_per_decode_pass: Math.round(needed),
  prefill_512_experts_available: spec.layers * spec.experts,
  pairs: results,
  decode_speedup_median: ratios[Math.floor(ratios.length / 2)],
  experts_fetched_over_needed: results.map((r) => +(r.experts.fetched_bytes_per_decode_pass / needed).toFixed(3)),
}, null, 1));
