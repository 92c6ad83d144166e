// The architecture modules beyond Llama against transformers itself, on tiny random-weight models
// made by test/fixtures/gen_moe_fixtures.py (versions in each expected.json):
//   qwen3      per-head q/k RMSNorm before RoPE; head_dim 16 x 4 heads on a 32-wide residual
//   mixtral    6 experts, top-2 of the softmax renormalized (block_sparse_moe, w1/w3/w2)
//   qwen2_moe  3 layers: 0 and 2 sparse with a shared expert behind its sigmoid gate (top-2 not
//              renormalized), 1 dense through mlp_only_layers; q/k/v biases
//   qwen3_moe  8 experts, top-3 renormalized (norm_topk_prob), q/k norms
// F32 weights: both sides do the same f32 math, so 1e-4 as in hf-parity.test.ts. BF16 weights:
// the reference is transformers in f32 on the rounded weights (exact widening), so the same bound
// holds. Routing cannot flip within it: the generator requires the k-th router logit to beat the
// (k+1)-th by 1e-3 at every position of every sparse layer.
import { expect, test } from "bun:test";
import { readdirSync } from "node:fs";
import { join, resolve } from "node:path";
import { AutoModel } from "../src/index.ts";
import { describeParity, readExpected } from "./parity.ts";
import { ROOT } from "./paths.ts";

const FIXTURES = resolve(ROOT, "test/fixtures/hf-moe");
const GENERATOR = "test/fixtures/gen_moe_fixtures.py";
const FAMILIES = ["qwen3", "mixtral", "qwen2_moe", "qwen3_moe"];
const NAMES = FAMILIES.flatMap((f) => [f, `${f}-bf16`]);

test("the fixture folder holds exactly the transformers-generated models", () => {
  const present = readdirSync(FIXTURES, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => e.name);
  expect(present.sort()).toEqual([...NAMES].sort());
});

for (const name of NAMES) describeParity(name, join(FIXTURES, name), { tolerance: 1e-4, kvDtype: "f32", checkIds: true, generator: GENERATOR });

for (const family of FAMILIES) {
  test(`${family}: two prompts in one batch give each prompt's logits alone`, async () => {
    const dir = join(FIXTURES, family);
    const { prompt } = readExpected(dir, GENERATOR);
    const model = await AutoModel.from_pretrained(dir, { device: "cpu", kv_dtype: "f32" });
    try {
      const a = prompt.slice(0, 23);
      const b = prompt.slice(5, 40);
      const alone = [a, b].map((p) => model.forward([model.newSequence()], [p], { allLogits: true })[0]!);
      const [sa, sb] = [model.newSequence(), model.newSequence()];
      const both = model.forward([sa, sb], [a, b], { allLogits: true });
      // A decode step of both after the prefill, against each alone.
      const stepBoth = model.forward([sa, sb], [[7], [9]]);
      for (let i = 0; i < 2; i++) {
        let worst = 0;
        for (let j = 0; j < alone[i]!.length; j++) worst = Math.max(worst, Math.abs(both[i]![j]! - alone[i]![j]!));
        // Rows are independent; only the matmul tiling (which tokens share a register tile)
        // may reorder f32 sums.
        expect(worst).toBeLessThan(1e-5);
      }
      const single = [a, b].map((p, i) => {
        const s = model.newSequence();
        model.forward([s], [p]);
        return model.forward([s], [[i === 0 ? 7 : 9]])[0]!;
      });
      for (let i = 0; i < 2; i++) {
        let worst = 0;
        for (let j = 0; j < single[i]!.length; j++) worst = Math.max(worst, Math.abs(stepBoth[i]![j]! - single[i]![j]!));
        expect(worst).toBeLessThan(1e-5);
      }
    } finally {
      model.dispose();
    }
  });
}
