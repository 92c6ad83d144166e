// DeepSeek-V2/V3 against transformers itself, on the tiny random-weight models made by
// test/fixtures/gen_deepseek_fixtures.py (versions and features in its docstring):
//   deepseek_v3       q LoRA, sigmoid routing + e_score_correction_bias, 4 groups by top-2 sums,
//                     shared expert, a dense first layer, YaRN (mscale != mscale_all_dim)
//   deepseek_v2       q LoRA, softmax group_limited_greedy routing, 2 shared experts, YaRN
//   deepseek_v2-lite  plain q_proj, greedy routing, no rope scaling
// F32 weights and KV: both sides do f32 math, so 1e-4 as in arch-parity.test.ts; the generator
// keeps every routing decision and greedy choice clear of rounding.
//
// The prompt's prefill runs the expanded form (keys and values per head over the call's rows),
// every later call the absorbed form over the compressed cache; a prompt fed one token at a time
// therefore runs the absorbed form at every position, and must give the prefill's logits.
import { expect, test } from "bun:test";
import { readdirSync } from "node:fs";
import { join, resolve } from "node:path";
import { KvPool } from "../src/engine/kv/kv-pool.ts";
import { AutoModel } from "../src/index.ts";
import { describeParity, readExpected } from "./parity.ts";
import { ROOT } from "./paths.ts";

const FIXTURES = resolve(ROOT, "test/fixtures/hf-deepseek");
const GENERATOR = "test/fixtures/gen_deepseek_fixtures.py";
const NAMES = ["deepseek_v3", "deepseek_v2", "deepseek_v2-lite"];

test("the fixture folder holds exactly the transformers-generated models", () => {
  const present = readdirSync(FIXTURES, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => e.name);
  expect(present.sort()).toEqual([...NAMES].sort());
});

for (const name of NAMES) describeParity(name, join(FIXTURES, name), { tolerance: 1e-4, kvDtype: "f32", checkIds: true, generator: GENERATOR });

for (const name of NAMES) {
  test(`${name}: the absorbed form (token by token) gives the expanded form's prefill logits`, async () => {
    const dir = join(FIXTURES, name);
    const { prompt } = readExpected(dir, GENERATOR);
    const model = await AutoModel.from_pretrained(dir, { device: "cpu", kv_dtype: "f32" });
    try {
      const V = model.config.vocabSize;
      const expanded = model.forward([model.newSequence()], [prompt], { allLogits: true })[0]!;
      const seq = model.newSequence();
      let worst = 0;
      prompt.forEach((id, t) => {
        const absorbed = model.forward([seq], [[id]])[0]!;
        for (let j = 0; j < V; j++) worst = Math.max(worst, Math.abs(absorbed[j]! - expanded[t * V + j]!));
      });
      // Same scores by associativity, summed in another order: f32 rounding of O(1) logits.
      expect(worst).toBeLessThan(2e-5);
    } finally {
      model.dispose();
    }
  });
}

test("the KV pool holds layers × (kv_lora_rank + qk_rope_head_dim) floats per token, nothing per head", async () => {
  const dir = join(FIXTURES, "deepseek_v3");
  const config = JSON.parse(await Bun.file(join(dir, "config.json")).text());
  const model = await AutoModel.from_pretrained(dir, { device: "cpu", kv_dtype: "f16" });
  try {
    const perToken = config.num_hidden_layers * (config.kv_lora_rank + config.qk_rope_head_dim) * 2;
    const pool = model.engine.kvPool;
    expect(KvPool.bytesPerToken(pool.shape)).toBe(perToken);
    // The one allocation is exactly that per position it holds: no value region, no padding.
    expect(KvPool.bytes(pool.shape)).toBe(pool.capacity * perToken);
    expect(pool.values(0)).toBe(pool.keys(0));
    expect(pool.keys(1) - pool.keys(0)).toBe(pool.capacity * (config.kv_lora_rank + config.qk_rope_head_dim) * 2);
  } finally {
    model.dispose();
  }
});
