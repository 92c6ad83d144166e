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
import { preorder, treeAttentionRows } from "../src/engine/speculative/tree-layout.ts";
import { idTokenizer } from "./id-tokenizer.ts";
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

test("deepseek_v3: a draft tree's rows (tree mask, positions by depth, absorbed form) give each root-to-leaf chain's logits", async () => {
  const dir = join(FIXTURES, "deepseek_v3");
  const { prompt } = readExpected(dir, GENERATOR);
  const model = await AutoModel.from_pretrained(dir, { device: "cpu", kv_dtype: "f32", max_seq_len: 128, parallel: 4, tokenizer: idTokenizer(128) });
  try {
    const e = model.engine;
    const V = model.config.vocabSize;
    const head = prompt.slice(0, -1);
    const last = prompt.at(-1)!;
    // Nodes x, y under the root and z under x; in preorder the rows are [last, x, z, y].
    const [x, y, z] = [5, 9, 17];
    const tree = preorder({ tokens: [x, y, z], parents: [-1, -1, 0], q: [null, null, null] });
    expect(tree.tokens).toEqual([x, z, y]);
    const seq = model.newSequence();
    e.forward([seq], [head]);
    const rows = e.forward([seq], [[last, ...tree.tokens]], { allLogits: true, trees: [treeAttentionRows(tree)] })[0]!;
    const chain = (path: number[]) => {
      const s = model.newSequence();
      e.forward([s], [head]);
      const out = e.forward([s], [[last, ...path]], { allLogits: true })[0]!;
      s.dispose();
      return out.subarray(path.length * V, (path.length + 1) * V);
    };
    const worst = (a: Float32Array, b: Float32Array) => a.reduce((m, v, j) => Math.max(m, Math.abs(v - b[j]!)), 0);
    for (const [row, path] of [[1, [x]], [2, [x, z]], [3, [y]]] as const) {
      expect(worst(rows.subarray(row * V, (row + 1) * V), chain([...path]))).toBeLessThan(1e-5);
    }
    seq.dispose();
  } finally {
    model.dispose();
  }
});

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
