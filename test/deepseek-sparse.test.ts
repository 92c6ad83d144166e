// DeepSeek-R1's structure at a scaled shape (bench/sparse-deepseek.ts: the 671B model's metadata
// keys and per-tensor type mix — IQ1_S / IQ2_XXS routed experts, Q6_K shared experts, Q4_K
// attention and dense layers, attn_kv_b — on all 61 blocks with all 256 experts, 8 used, hidden 256),
// its weights file holes. Streamed under the smallest budget, one decode token must read exactly the
// attention, the shared expert, the dense layer, the head and 8 routed experts per MoE layer, as
// the file's own tensor table adds them up; and the plan's decode bytes per token agree. The
// 671B file itself is bench/deepseek-671b.ts (a token there reads ~14 GB: too slow for CI). The
// 61 blocks' 300-odd norms, routers and biases load as one block of more reads than the native
// reader queues at once (256), as the real model's do.
import { afterAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DEEPSEEK_SCALED as S, writeSparseDeepseekGguf } from "../bench/sparse-deepseek.ts";
import { decodePassBytes } from "../src/engine/cost-model.ts";
import { expertFraction } from "../src/cli/plan-report.ts";
import { AutoModel } from "../src/index.ts";
import { ROOT } from "./paths.ts";

const dir = mkdtempSync(join(tmpdir(), "airllm-deepseek-sparse-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const path = join(dir, "deepseek-scaled.gguf");
const tensors = writeSparseDeepseekGguf(path, S);

const moeLayers = S.layers - S.leadingDense;
const isExpert = (n: string) => n.includes("_exps.");
// Matrices a decode token reads whole: everything but norms, routers, biases (resident, f32
// vectors or the router), the embedding (one row) and the routed experts.
const matrix = (n: string) => !n.endsWith("norm.weight") && !n.includes("ffn_gate_inp") && !n.includes("exp_probs_b") && n !== "token_embd.weight";
const bodyBytes = tensors.filter((t) => matrix(t.name) && !isExpert(t.name)).reduce((a, t) => a + t.bytes, 0);
// One expert of one layer: its gate, up and down slices (1/experts of each merged tensor).
const expertBytesOf = (layer: number) =>
  tensors.filter((t) => t.name.startsWith(`blk.${layer}.`) && isExpert(t.name)).reduce((a, t) => a + t.bytes / S.experts, 0);
const routedBytes = Array.from({ length: moeLayers }, (_, j) => S.used * expertBytesOf(S.leadingDense + j)).reduce((a, b) => a + b, 0);

const OPTIONS = { device: "cpu", threads: 2, max_seq_len: 16, min_seq_len: 16 } as const;
let minBudget: Promise<number> | undefined;
/** The smallest budget the planner accepts for the file (from one planning load). */
const smallestBudget = () =>
  (minBudget ??= AutoModel.from_pretrained(path, { ...OPTIONS, max_memory: 2 ** 40 }).then((m) => {
    const b = m.memoryPlan!.minBudget;
    m.dispose();
    return b;
  }));

test("the scaled file keeps the real model's structure and type mix", () => {
  const types = new Map(tensors.map((t) => [t.name, t.dtype]));
  expect(types.get("blk.2.ffn_down.weight")).toBe("q6_k");
  expect(types.get("blk.3.ffn_gate_exps.weight")).toBe("iq1_s");
  expect(types.get("blk.5.ffn_down_exps.weight")).toBe("iq2_xxs");
  expect(types.get("blk.6.ffn_down_exps.weight")).toBe("iq1_s");
  expect(types.get("blk.3.ffn_up_shexp.weight")).toBe("q6_k");
  expect(types.get("blk.0.attn_kv_b.weight")).toBe("q4_k");
  // Whole 256-byte units everywhere, so the packed units hold exactly these bytes.
  expect(tensors.every((t) => t.bytes % 256 === 0 || !matrix(t.name))).toBe(true);
});

test("airllm plan: decode bytes per token are the non-expert weights, the embedding row aside, plus 8 experts per MoE layer", () => {
  // Every tensor but the embedding and the routed experts: norms, routers and biases are read too.
  const others = tensors.filter((t) => !isExpert(t.name) && t.name !== "token_embd.weight").reduce((a, t) => a + t.bytes, 0);
  const p = Bun.spawnSync([join(ROOT, "dist/airllm"), "plan", path, "--json", "--device", "cpu", "--max-memory", "8GiB", "--ctx", "64"], { env: { ...process.env, AIRLLM_DEBUG: "" } });
  expect(p.stderr.toString()).toBe("");
  const plan = JSON.parse(p.stdout.toString());
  expect(plan.model_type).toBe("deepseek_v3");
  // The resident norms and routers count as their one allocation, rounded up to a 4 KiB granule.
  expect(plan.decode_bytes_per_token - (others + routedBytes)).toBeGreaterThanOrEqual(0);
  expect(plan.decode_bytes_per_token - (others + routedBytes)).toBeLessThan(4096);
});

test("one streamed decode token reads attention + shared + dense + head + 8 routed experts per MoE layer", async () => {
  const model = await AutoModel.from_pretrained(path, { ...OPTIONS, max_memory: await smallestBudget(), expert_cache: 0, expert_prediction: false });
  try {
    const plan = model.memoryPlan!;
    expect(model.config.modelType).toBe("deepseek_v3");
    // What the budget's slack keeps resident is read from memory, the rest from the file.
    const residentBody = plan.resident.filter((u) => u.kind === "body").reduce((a, u) => a + u.bytes, 0);
    const residentExperts = plan.resident.filter((u) => u.kind === "expert");
    const residentExpertBytes = residentExperts.reduce((a, u) => a + u.bytes, 0);
    expect(residentBody + residentExpertBytes).toBeLessThan((bodyBytes + routedBytes) / 4);
    // The plan's decode bytes: every body unit whole, the experts at top-k / experts of their bytes.
    const d = decodePassBytes(plan, expertFraction(model.config));
    const residentDecode = residentBody + residentExpertBytes * expertFraction(model.config);
    expect(d.diskBytes + d.hostCachedBytes + residentDecode).toBeCloseTo(bodyBytes + routedBytes, 3);

    const seq = model.newSequence();
    model.forward([seq], [[5]]);
    const before = model.engine.fetchStats()!;
    model.forward([seq], [[7]]);
    const after = model.engine.fetchStats()!;
    // All-zero routers tie and the lowest ids win, so the experts the slack keeps resident (the
    // first experts of the first MoE layer) are among the 8 used: read from memory, not fetched.
    const residentUses = after.expertResidentUses - before.expertResidentUses;
    expect(residentUses).toBe(residentExperts.length);
    expect(residentExperts.every((u) => u.expert < S.used)).toBe(true);
    expect(after.expertMisses - before.expertMisses + residentUses).toBe(S.used * moeLayers);
    expect(after.expertBytes - before.expertBytes + residentExpertBytes).toBe(routedBytes);
    expect(after.chunkBytes - before.chunkBytes + residentBody).toBe(bodyBytes);
    expect(after.rowBytes - before.rowBytes).toBe(tensors[0]!.bytes / S.vocab);
  } finally {
    model.dispose();
  }
});

test("a large expert cache with guessing serves the 8 experts of every MoE layer, token after token", async () => {
  // Hundreds of expert slots, filled ahead by the next layer's guess and kept across tokens: reads
  // taken long before they are used (the reader queues 256 tickets; src/engine/read-ahead.ts).
  const expert = expertBytesOf(S.leadingDense + S.downIq2Layers);
  const cache = 200 * (Math.ceil(expert / 4096) * 4096);
  // Room for every body unit resident, then the cache: the experts still stream through it.
  const budget = (await smallestBudget()) + bodyBytes + cache + 2 ** 20;
  const model = await AutoModel.from_pretrained(path, { ...OPTIONS, max_memory: budget, expert_cache: cache, expert_prediction: true });
  try {
    expect(model.memoryPlan!.expertSlots * 3).toBeGreaterThan(256);
    const seq = model.newSequence();
    for (const id of [5, 7]) model.forward([seq], [[id]]);
    const s = model.engine.fetchStats()!;
    expect(s.expertMisses + s.expertHits + s.expertGuessedUses + s.expertResidentUses).toBe(2 * S.used * moeLayers);
  } finally {
    model.dispose();
  }
});
