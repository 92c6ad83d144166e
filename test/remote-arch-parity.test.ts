// The families transformers runs only as remote code, against their ORIGINAL modeling code
// (../shared/refcode, run by test/fixtures/gen_remote_fixtures.py under transformers 4.41.2; CI
// only reads the committed outputs). Each tiny random model is driven by token ids: its 32-token
// prompt's logits in one prefill, then 16 greedy steps through the KV cache as the original's
// generate() takes them. What each fixture pins down:
//   chatglm2/3        fused query_key_value with bias (q|k|v, 2 query groups), kv_channels 16 ≠
//                     hidden/heads, rotary on the first half of each head in adjacent pairs,
//                     dense_h_to_4h chunked into silu(first)·second
//   baichuan          W_pack, RoPE, a plain head (Baichuan-7B)
//   baichuan2-7b      W_pack, RoPE, NormHead (the file holds raw rows; a plain head moves the logits by 2.9)
//   baichuan2-13b     ALiBi over 40 heads (Baichuan's slope rule for a non-power of two), NormHead
//   internlm          q/k/v/o biases, rope base 10000 although the config says rope_theta 1e6
//   internlm2         wqkv grouped per KV head (2 KV heads × 2 query heads), wqkv/wo biases, w1/w3/w2
//   internlm2_5-dynamic  dynamic NTK rope (factor 2) past a trained context of 16: every call's
//                     new positions at their own base, cached keys at theirs
//   qwen              c_attn with bias, c_proj(w1(x)·silu(w2(x)))
//   qwen-ntk-logn     past seq_length 16: NTK alpha fixed at the prefill, logn query scaling from
//                     position 16, rotary on half of each head (rotary_pct 0.5)
// F32 weights: both sides do f32 math and differ only in summation order, so 1e-4 (as
// hf-parity.test.ts). BF16 weights: the reference is the original run in f32 on the rounded
// weights (bf16 → f32 is exact), which is what our kernels compute (bf16 weights, f32
// accumulation), so the same 1e-4 holds; rounding the weights alone moved these logits by
// 0.02–1.2 (max_abs_diff_vs_f32_model in each expected.json), four orders of magnitude more.
import { expect, test } from "bun:test";
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { AutoModel } from "../src/index.ts";
import { describeParity, readExpected } from "./parity.ts";
import { REMOTE_FAMILIES, REMOTE_FIXTURES, REMOTE_GENERATOR as GENERATOR } from "./remote-fixtures.ts";
const NAMES = REMOTE_FAMILIES.flatMap((f) => [f, `${f}-bf16`]);
// Room for the prefill test's sequence and the decode test's (48 positions) side by side in one KV
// pool, each within the fixtures' 64 positions; past InternLM2.5's trained context of 16 (dynamic NTK scaling is what
// runs it there, and what lets a config ask for more than max_position_embeddings).
const LOAD = { max_seq_len: 64, parallel: 2 };

test("the fixture folder holds exactly the models the original code made", () => {
  const present = readdirSync(REMOTE_FIXTURES, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => e.name);
  expect(present.sort()).toEqual([...NAMES].sort());
});

for (const name of NAMES) {
  describeParity(name, join(REMOTE_FIXTURES, name), { tolerance: 1e-4, kvDtype: "f32", checkIds: true, generator: GENERATOR, load: LOAD });
}

test("each family is recognised by its config alone: model_type, or the auto_map class when model_type is missing", async () => {
  const expectations: Record<string, string> = {
    chatglm2: "chatglm", chatglm3: "chatglm", baichuan: "baichuan", "baichuan2-7b": "baichuan", "baichuan2-13b": "baichuan",
    internlm: "internlm", internlm2: "internlm2", "internlm2_5-dynamic": "internlm2", qwen: "qwen", "qwen-ntk-logn": "qwen",
  };
  const { parseModelConfig } = await import("../src/model/config.ts");
  for (const family of REMOTE_FAMILIES) {
    const raw = JSON.parse(await Bun.file(join(REMOTE_FIXTURES, family, "config.json")).text()) as Record<string, unknown>;
    expect(parseModelConfig(raw).arch).toBe(expectations[family]!);
    const { model_type: _, ...withoutType } = raw;
    expect(parseModelConfig(withoutType).arch).toBe(expectations[family]!);
  }
});

test("two prompts in one batch give each prompt's logits alone (per-sequence rotary tables, logn rows, ALiBi)", async () => {
  for (const family of ["baichuan2-13b", "internlm2_5-dynamic", "qwen-ntk-logn", "chatglm3"]) {
    const dir = join(REMOTE_FIXTURES, family);
    const { prompt } = readExpected(dir, GENERATOR);
    const model = await AutoModel.from_pretrained(dir, { device: "cpu", kv_dtype: "f32", ...LOAD });
    try {
      // Lengths on both sides of the trained context (16): only the longer one is scaled.
      const a = prompt.slice(0, 12);
      const b = prompt.slice(3, 30);
      const alone = [a, b].map((p) => model.forward([model.newSequence()], [p], { allLogits: true })[0]!);
      const [sa, sb] = [model.newSequence(), model.newSequence()];
      const both = model.forward([sa, sb], [a, b], { allLogits: true });
      for (let i = 0; i < 2; i++) {
        let worst = 0;
        for (let j = 0; j < alone[i]!.length; j++) worst = Math.max(worst, Math.abs(both[i]![j]! - alone[i]![j]!));
        // Rows are independent; only the matmul tiling (which tokens share a register tile) may reorder f32 sums.
        expect({ family, sequence: i, worst }).toEqual({ family, sequence: i, worst: expect.any(Number) });
        expect(worst).toBeLessThan(1e-5);
      }
    } finally {
      model.dispose();
    }
  }
});
