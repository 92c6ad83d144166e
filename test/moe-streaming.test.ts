// Expert-level streaming on the CPU, on the transformers-made MoE fixtures: experts are units of
// their own, fetched only when a pass routes a row to them, through an LRU cache; guesses of the
// next layer's experts fill free slots. Whatever the budget, cache size or guessing, the logits are
// bit for bit those of resident weights (the same bytes, the same order of ops), and the streamer's
// counters show that a decode step fetches exactly the routed experts and a batched prefill each
// routed expert once.
import { afterAll, describe, expect, test } from "bun:test";
import { copyFileSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import type { Backend, RouteOptions } from "../src/backend/backend.ts";
import { ModelFormatError } from "../src/errors.ts";
import { WeightFiles } from "../src/formats/model-files.ts";
import { AutoModel, type FromPretrainedOptions } from "../src/model/auto-model.ts";
import { writeSafetensors } from "../src/split/safetensors-writer.ts";
import { readExpected } from "./parity.ts";
import { ROOT } from "./paths.ts";

const FIXTURES = resolve(ROOT, "test/fixtures/hf-moe");
const GENERATOR = "test/fixtures/gen_moe_fixtures.py";
const TB = 2 ** 40;
const CTX = 64;

interface Routed {
  /** Per moeRoute call: the chosen expert ids [N * k]. */
  readonly calls: Int32Array[];
}

/** Records every routing the backend computes (the ids, read back right after the op). */
function spyRoutes(be: Backend): Routed {
  const calls: Int32Array[] = [];
  const original = be.moeRoute.bind(be);
  be.moeRoute = (ids: number, weights: number, logits: number, N: number, o: RouteOptions) => {
    original(ids, weights, logits, N, o);
    const got = new Int32Array(N * o.topK);
    be.download(new Uint8Array(got.buffer), ids, got.byteLength);
    calls.push(got);
  };
  return { calls };
}

async function load(dir: string, o: FromPretrainedOptions) {
  return AutoModel.from_pretrained(dir, { device: "cpu", threads: 2, kv_dtype: "f32", max_seq_len: CTX, min_seq_len: CTX, ...o });
}

/** Prompt logits (all positions) and 6 decode steps fed the reference's greedy ids. */
async function logits(dir: string, o: FromPretrainedOptions): Promise<Float32Array[]> {
  const { prompt, greedy_ids } = readExpected(dir, GENERATOR);
  const model = await load(dir, o);
  try {
    const seq = model.newSequence();
    const out = model.forward([seq], [prompt], { allLogits: true });
    for (const id of greedy_ids.slice(0, 6)) out.push(model.forward([seq], [[id]])[0]!);
    return out;
  } finally {
    model.dispose();
  }
}

/** The budget that streams everything: nothing resident, the smallest expert cache. */
async function streamingBudget(dir: string, o: FromPretrainedOptions): Promise<{ budget: number; expertBytes: number }> {
  const model = await load(dir, { ...o, max_memory: TB });
  try {
    const experts = model.memoryPlan!.resident.filter((u) => u.kind === "expert");
    return { budget: model.memoryPlan!.minBudget, expertBytes: Math.max(...experts.map((u) => u.bytes)) };
  } finally {
    model.dispose();
  }
}

for (const family of ["mixtral", "qwen2_moe", "qwen3_moe"]) {
  describe(`${family}: experts streamed through their own slots`, async () => {
    const dir = join(FIXTURES, family);
    const resident = await logits(dir, { max_memory: TB });
    const { budget } = await streamingBudget(dir, { expert_cache: 0 });

    const cases: [string, FromPretrainedOptions][] = [
      ["two expert slots, no guessing", { max_memory: budget, expert_cache: 0, expert_prediction: false }],
      ["two expert slots, guessing the next layer", { max_memory: budget, expert_cache: 0, expert_prediction: true }],
      ["an LRU cache of a few experts, guessing", { max_memory: budget + 200_000, expert_cache: 200_000, expert_prediction: true }],
      ["no prefetch", { max_memory: budget, expert_cache: 0, prefetching: false }],
    ];
    for (const [name, o] of cases) {
      test(`${name}: logits identical to resident weights`, async () => {
        expect(await logits(dir, o)).toEqual(resident);
      });
    }
  });
}

describe("what the streamer fetches (mixtral: 2 layers of 6 experts, top-2)", async () => {
  const dir = join(FIXTURES, "mixtral");
  const { prompt } = readExpected(dir, GENERATOR);
  const { budget, expertBytes } = await streamingBudget(dir, { expert_cache: 0 });

  test("the budget holds less than one layer's experts", async () => {
    const model = await load(dir, { max_memory: budget, expert_cache: 0, expert_prediction: false });
    try {
      const p = model.memoryPlan!;
      expect(p.resident.filter((u) => u.kind === "expert").length).toBe(0);
      expect(p.expertSlots).toBe(2);
      expect(p.expertSlots * p.expertSlotBytes).toBeLessThan(6 * expertBytes);
    } finally {
      model.dispose();
    }
  });

  test("a batched prefill fetches each routed expert once; a decode step exactly its routed experts' bytes", async () => {
    const model = await load(dir, { max_memory: budget, expert_cache: 0, expert_prediction: false });
    try {
      const routed = spyRoutes(model.backend);
      const seq = model.newSequence();
      const before = model.engine.fetchStats()!;
      model.forward([seq], [prompt]);
      const afterPrefill = model.engine.fetchStats()!;
      // One routing per sparse layer; each routed expert is fetched once, whatever the rows.
      expect(routed.calls.length).toBe(2);
      const distinct = routed.calls.map((ids) => new Set(ids).size);
      expect(distinct.every((n) => n <= 6)).toBe(true);
      expect(afterPrefill.expertMisses - before.expertMisses).toBe(distinct[0]! + distinct[1]!);
      expect(afterPrefill.expertBytes - before.expertBytes).toBe((distinct[0]! + distinct[1]!) * expertBytes);

      // Decode: two slots cannot keep layer 0's experts until the next step (layer 1 used them),
      // so every routed expert is fetched: its bytes, and not one expert more.
      routed.calls.length = 0;
      const chunksBefore = model.engine.fetchStats()!.chunkBytes;
      model.forward([seq], [[5]]);
      const afterStep = model.engine.fetchStats()!;
      const step = routed.calls.map((ids) => new Set(ids).size);
      expect(step).toEqual([2, 2]);
      expect(afterStep.expertBytes - afterPrefill.expertBytes).toBe(4 * expertBytes);
      // The always-needed part: every dense chunk (attention, lm_head) streams once per pass.
      const dense = model.memoryPlan!.disk.filter((u) => u.kind === "body").reduce((a, u) => a + u.bytes, 0);
      expect(afterStep.chunkBytes - chunksBefore).toBeGreaterThanOrEqual(dense);
      expect(afterStep.chunkBytes - chunksBefore).toBeLessThan(dense * 1.1);
    } finally {
      model.dispose();
    }
  });

  test("guessing the next layer's experts: counted, and cache hits where a guess was right", async () => {
    const model = await load(dir, { max_memory: budget + 2 * expertBytes + 8192, expert_cache: 2 * expertBytes + 8192, expert_prediction: true });
    try {
      const seq = model.newSequence();
      model.forward([seq], [prompt]);
      for (let i = 0; i < 8; i++) model.forward([seq], [[3 + i]]);
      const s = model.engine.fetchStats()!;
      // Layer 1 is guessed from layer 0 on each of the 9 passes (layer 0 has no predecessor).
      expect(s.predictedRouted).toBeGreaterThan(0);
      expect(s.predictionHits).toBeLessThanOrEqual(s.predictedRouted);
      expect(s.guessFetches).toBeGreaterThan(0);
      expect(s.expertGuessedUses).toBeLessThanOrEqual(s.guessFetches);
      expect(s.expertHits + s.expertMisses + s.expertGuessedUses).toBeGreaterThan(0);
    } finally {
      model.dispose();
    }
  });
});

describe("whole-layer streaming (AirLLM's way, for comparison)", () => {
  test("mixtral and qwen2_moe: experts streamed with their layer give the resident logits, and every expert's bytes per pass", async () => {
    for (const family of ["mixtral", "qwen2_moe"]) {
      const dir = join(FIXTURES, family);
      const resident = await logits(dir, { max_memory: TB });
      const probe = await load(dir, { moe_streaming: "layers", max_memory: TB });
      // Slots of the largest layer, so the smallest budget leaves no room for a resident one.
      const chunk = Math.max(...probe.memoryPlan!.resident.filter((u) => u.kind === "body").map((u) => u.bytes));
      probe.dispose();
      const layers = { moe_streaming: "layers" as const, chunk_size: chunk };
      const { budget } = await streamingBudget(dir, layers);
      expect(await logits(dir, { ...layers, max_memory: budget })).toEqual(resident);
      const model = await load(dir, { ...layers, max_memory: budget });
      try {
        const p = model.memoryPlan!;
        expect([p.expertSlots, p.resident.length]).toEqual([0, 0]);
        const seq = model.newSequence();
        model.forward([seq], [[1, 2, 3]]);
        const before = model.engine.fetchStats()!;
        model.forward([seq], [[4]]);
        const after = model.engine.fetchStats()!;
        // A decode step moves every dense chunk, routed experts or not.
        const all = p.disk.filter((u) => u.kind === "body").reduce((a, u) => a + u.bytes, 0);
        expect(after.chunkBytes - before.chunkBytes).toBeGreaterThanOrEqual(all);
        expect(after.expertBytes).toBe(0);
      } finally {
        model.dispose();
      }
    }
  });
});

describe("checkpoint errors", () => {
  const tmp = mkdtempSync(join(tmpdir(), "airllm-moe-missing-"));
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));

  test("a MoE checkpoint missing one expert's tensor is an error naming it", async () => {
    const src = join(FIXTURES, "mixtral");
    const files = WeightFiles.open(src);
    try {
      const missing = "model.layers.1.block_sparse_moe.experts.4.w3.weight";
      const names = [...files.names()].filter((n) => n !== missing);
      writeSafetensors(join(tmp, "model.safetensors"), names.map((n) => {
        const t = files.get(n);
        return { name: n, dtype: t.dtype, shape: t.shape, addr: t.addr, bytes: t.bytes };
      }));
      copyFileSync(join(src, "config.json"), join(tmp, "config.json"));
      const err = await load(tmp, {}).catch((e) => e);
      expect(err).toBeInstanceOf(ModelFormatError);
      expect((err as Error).message).toContain(missing);
    } finally {
      files.close();
    }
  });
});
