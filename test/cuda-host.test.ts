// The CUDA backend's logic that needs no GPU: argument packing, launch geometry, the staging
// ring, the slot pool, weight encoding, and how detection and backend selection behave on a
// machine without (or with) a usable GPU.
import { describe, expect, test } from "bun:test";
import type { Backend, PagedKv, RouteOptions, Weight } from "../src/backend/backend.ts";
import { checkGeometry, MAX_ARGS, packArgs, type LaunchPlan } from "../src/backend/cuda/launch.ts";
import * as plans from "../src/backend/cuda/launch-plans.ts";
import { encodeWeights } from "../src/backend/cuda/op-selftest.ts";
import { SlotPool } from "../src/backend/cuda/slot-pool.ts";
import { StagingRing } from "../src/backend/cuda/staging-ring.ts";
import { probeCuda } from "../src/backend/cuda/detect.ts";
import { selectBackend } from "../src/backend/select.ts";
import { NativeError, UsageError } from "../src/errors.ts";

describe("packArgs", () => {
  const view = new DataView(new ArrayBuffer(MAX_ARGS * 8));

  test("writes each argument little-endian into its own 8-byte slot", () => {
    const addr = 0x7f12_3456_7890; // above 2^32, as device pointers are
    packArgs(view, ["ptr", "u32", "f32"], [addr, 4096, 0.5], "k");
    expect(view.getBigUint64(0, true)).toBe(BigInt(addr));
    expect(view.getUint32(8, true)).toBe(4096);
    expect(view.getUint32(12, true)).toBe(0);
    expect(view.getFloat32(16, true)).toBe(0.5);
  });

  test("rejects values that do not fit their kind, naming kernel and argument", () => {
    expect(() => packArgs(view, ["u32"], [2 ** 32], "rope_f32")).toThrow(/rope_f32: argument 0 \(u32\) = 4294967296/);
    expect(() => packArgs(view, ["u32"], [-1], "k")).toThrow(NativeError);
    expect(() => packArgs(view, ["u32"], [1.5], "k")).toThrow(NativeError);
    expect(() => packArgs(view, ["ptr"], [0], "k")).toThrow(/null device pointer/);
    expect(() => packArgs(view, ["f32"], [Number.NaN], "k")).toThrow(NativeError);
    expect(() => packArgs(view, ["u32", "u32"], [1], "k")).toThrow(/1 arguments given, 2 expected/);
  });
});

describe("launch geometry", () => {
  const w = (dtype: Weight["dtype"], shape: number[]): Weight => ({ addr: 4096, dtype, shape });

  test("matmul: matvec for decode, 4-token matvec up to 8 tokens, tiles beyond", () => {
    const decode = plans.matmulPlan(1, 2, w("bf16", [4100, 512]), 1);
    expect([decode.kernel, decode.grid]).toEqual(["matvec_t1_bf16", [513, 1, 1]]);
    expect(decode.args).toEqual([1, 2, 4096, 4100, 512, 1, 1]);
    const few = plans.matmulPlan(1, 2, w("f16", [64, 512]), 7);
    expect([few.kernel, few.grid]).toEqual(["matvec_t4_f16", [8, 2, 1]]);
    // out, x, w, rows, cols, T, ld (= rows by default), split
    expect(few.args).toEqual([1, 2, 4096, 64, 512, 7, 64, 1]);
    const prefillF16 = plans.matmulPlan(1, 2, w("f16", [300, 512]), 65);
    expect([prefillF16.kernel, prefillF16.grid]).toEqual(["matmul_mma_f16", [3, 2, 1]]);
    expect(prefillF16.args).toEqual([1, 2, 4096, 65, 300, 512, 300]);
    const prefillF32 = plans.matmulPlan(1, 2, w("f32", [300, 512]), 65);
    expect([prefillF32.kernel, prefillF32.grid]).toEqual(["matmul_simt_f32", [5, 2, 1]]);
    expect(() => plans.matmulPlan(1, 2, w("f32", [300]), 1)).toThrow(UsageError);
  });

  test("matmul ldOut: every kernel that writes several output rows takes the row stride", () => {
    // A 1000-row chunk of a 32000-row lm_head, written into columns 8000.. of the whole logits.
    const ld = 32000;
    const out = 1 << 20;
    const chunk = (dtype: Weight["dtype"], cols = 512): Weight => w(dtype, [1000, cols]);
    const last = (p: LaunchPlan): number => p.args[p.args.length - 1];
    for (const dtype of ["f32", "f16", "bf16"] as const) {
      expect(plans.matmulPlan(out, 2, chunk(dtype), 1, ld).args).toEqual(plans.matmulPlan(out, 2, chunk(dtype), 1).args);
      const t4 = plans.matmulPlan(out, 2, chunk(dtype), 5, ld);
      expect([t4.kernel, t4.args.slice(5, 7)]).toEqual([`matvec_t4_${dtype}`, [5, ld]]);
      expect(last(plans.matmulPlan(out, 2, chunk(dtype), 70, ld))).toBe(ld);
    }
    expect(plans.matmulPlan(out, 2, chunk("bf16"), 70, ld).kernel).toBe("matmul_mma_bf16");
    for (const dtype of ["q4_k", "q8_0", "nf4", "q8_block"] as const) {
      const t1 = plans.matmulPlan(out, 2, chunk(dtype), 1, ld);
      expect([t1.kernel, t1.args]).toEqual([`matvec_t1_${dtype}`, [out, 2, 4096, 1000, 512, 1]]);
      const t4 = plans.matmulPlan(out, 2, chunk(dtype), 8, ld);
      expect([t4.kernel, t4.grid, t4.args]).toEqual([`matvec_t4_${dtype}`, [125, 2, 1], [out, 2, 4096, 1000, 512, 8, ld]]);
      const mm = plans.matmulPlan(out, 2, chunk(dtype), 70, ld);
      expect([mm.kernel, mm.grid, mm.args]).toEqual([`matmul_dq_${dtype}`, [16, 2, 1], [out, 2, 4096, 70, 1000, 512, ld]]);
    }
    expect(() => plans.matmulPlan(out, 2, chunk("f16"), 3, 999)).toThrow(/ldOut 999/);
    expect(() => plans.matmulPlan(out, 2, chunk("f16"), 3, 1000.5)).toThrow(UsageError);
  });

  test("matvec: matrices of few rows share each row among warps, keeping two loads per lane", () => {
    // A 3B Llama's k/v (1024 rows), q/o (3072) and gate/up (8192) projections.
    expect(plans.matvecSplit(1024, 3072, "bf16")).toBe(4);
    expect(plans.matvecSplit(3072, 3072, "bf16")).toBe(2);
    expect(plans.matvecSplit(8192, 3072, "bf16")).toBe(1);
    expect(plans.matvecSplit(64, 64, "f32")).toBe(1);
    expect(plans.matvecSplit(64, 4096, "f32")).toBe(8);
    const kv = plans.matmulPlan(1, 2, w("bf16", [1024, 3072]), 1);
    expect([kv.kernel, kv.grid, kv.args]).toEqual(["matvec_t1_bf16", [512, 1, 1], [1, 2, 4096, 1024, 3072, 1, 4]]);
    // Quantized matvecs keep one warp per row and no split argument.
    const q = plans.matmulPlan(1, 2, w("q8_0", [1024, 3072]), 1);
    expect([q.grid, q.args]).toEqual([[128, 1, 1], [1, 2, 4096, 1024, 3072, 1]]);
  });

  test("fused decode matvecs: q/k/v in one launch, residual accumulate, gate/up with swiglu; float weights and T ≤ 8 only", () => {
    const q = w("bf16", [3072, 3072]);
    const k = w("bf16", [1024, 3072]);
    const qkv = plans.matmulMultiPlan([10, 20, 30], 2, [q, k, k], 1, false)!;
    // 5120 rows, split 1: 640 blocks of 8 rows
    expect([qkv.kernel, qkv.grid]).toEqual(["matvec_multi_t1_bf16", [640, 1, 1]]);
    expect(qkv.args).toEqual([10, 20, 30, 2, 4096, 4096, 4096, 3072, 1024, 1024, 3072, 1, 1, 0]);
    const acc = plans.matmulMultiPlan([10], 2, [q], 3, true)!;
    expect([acc.kernel, acc.grid, acc.args]).toEqual(["matvec_multi_t4_bf16", [768, 1, 1], [10, 10, 10, 2, 4096, 4096, 4096, 3072, 0, 0, 3072, 3, 2, 1]]);
    const gu = plans.matvecSwigluPlan(10, 2, w("f16", [8192, 3072]), w("f16", [8192, 3072]), 1)!;
    expect([gu.kernel, gu.grid, gu.args]).toEqual(["matvec_swiglu_t1_f16", [1024, 1, 1], [10, 2, 4096, 4096, 8192, 3072, 1, 1]]);
    // The plain ops take the rest: prefill, quantized or mixed weights, gate/up of unequal height.
    // Prefill: tensor-core tiles over the three matrices (k/v alone were 64 blocks), 16-bit weights only.
    const pre = plans.matmulMultiPlan([10, 20, 30], 2, [q, k, k], 512, false)!;
    expect([pre.kernel, pre.grid, pre.args]).toEqual(["matmul_mma_multi_bf16", [40, 8, 1], [10, 20, 30, 2, 4096, 4096, 4096, 512, 3072, 1024, 1024, 3072, 0]]);
    expect(plans.matmulMultiPlan([10], 2, [q], 9, true)!.args).toEqual([10, 10, 10, 2, 4096, 4096, 4096, 9, 3072, 0, 0, 3072, 1]);
    expect(plans.matmulMultiPlan([10], 2, [w("f32", [64, 64])], 9, true)).toBeNull();
    expect(plans.matmulMultiPlan([10, 20], 2, [w("bf16", [100, 64]), w("bf16", [128, 64])], 9, false)).toBeNull();
    expect(plans.matvecSwigluPlan(10, 2, q, q, 9)).toBeNull();
    expect(plans.matmulMultiPlan([10, 20], 2, [q, w("q4_k", [1024, 3072])], 1, false)).toBeNull();
    expect(plans.matmulMultiPlan([10, 20], 2, [q, w("f16", [1024, 3072])], 1, false)).toBeNull();
    expect(plans.matmulMultiPlan([10, 20], 2, [q, w("bf16", [1024, 2048])], 1, false)).toBeNull();
    expect(plans.matvecSwigluPlan(10, 2, q, k, 1)).toBeNull();
  });

  test("attention: one block per (token, head), keys split across blocks when that fills the GPU", () => {
    const s = { T: 70000, nHeads: 32, nKvHeads: 8, headDim: 128, pos0: 0, window: 0, scale: 0.1 };
    const kv: PagedKv = { k: 4096, v: 8192, dtype: "f16", pageSize: 16, pageTable: 12288 };
    const prefill = plans.attentionPlans(1, 2, kv, s, 5, 132);
    expect(prefill.map((p) => [p.kernel, p.grid])).toEqual([["attention_prefill_f16", [4375, 32, 1]]]);
    // ..., pageSize, then the ALiBi slopes (none: the query stands in for the unread pointer) and their flag
    expect(prefill[0].args).toEqual([1, 2, 4096, 8192, 12288, 32, 8, 128, 70000, 0, 0, 0.1, 16, 2, 0]);
    expect(plans.attentionPlans(1, 2, kv, { ...s, alibiSlopes: 777 }, 5, 132)[0].args.slice(-2)).toEqual([777, 1]);
    expect(() => checkGeometry(prefill[0])).not.toThrow();
    // Query tiles that would not fill the GPU, heads over 128, or K/V off four-element
    // alignment (the tiled kernel's loads need it) take one block per query.
    const short = plans.attentionPlans(1, 2, kv, { ...s, T: 16, nHeads: 4, nKvHeads: 4 }, 5, 132);
    expect(short.map((p) => [p.kernel, p.grid])).toEqual([["attention_f16", [16, 4, 1]]]);
    const wide = plans.attentionPlans(1, 2, kv, { ...s, T: 4096, headDim: 256 }, 5, 132);
    expect(wide.map((p) => [p.kernel, p.grid])).toEqual([["attention_f16", [4096, 32, 1]]]);
    expect(plans.attentionPlans(1, 2, { ...kv, k: 4096 + 2 }, s, 5, 132)[0].kernel).toBe("attention_f16");
    expect(plans.attentionPlans(1, 2, { ...kv, dtype: "f32", v: 8192 + 8 }, s, 5, 132)[0].kernel).toBe("attention_f32");
    expect(plans.attentionPlans(1, 2, { ...kv, dtype: "bf16", v: 8192 + 8 }, s, 5, 132)[0].kernel).toBe("attention_prefill_bf16");
    // Decode at position 8191: 32 heads fill 264 blocks with 9 splits of ~910 keys.
    const decode = plans.attentionPlans(1, 2, { ...kv, dtype: "bf16", pageSize: 1 }, { ...s, T: 1, pos0: 8191 }, 5, 132);
    expect(decode.map((p) => [p.kernel, p.grid])).toEqual([["attention_bf16", [1, 32, 9]], ["attention_combine_f32", [1, 32, 1]]]);
    // out, q, kPages, vPages, pageTable, scratch, nHeads, nKvHeads, headDim, pos0, window, scale, splits, pageSize, alibi, useAlibi,
    // then the tree rows and their count (none: the query again, 0)
    expect(decode[0].args).toEqual([1, 2, 4096, 8192, 12288, 5, 32, 8, 128, 8191, 0, 0.1, 9, 1, 2, 0, 2, 0]);
    const alibi = plans.attentionPlans(1, 2, { ...kv, dtype: "bf16", pageSize: 1 }, { ...s, T: 1, pos0: 8191, alibiSlopes: 777 }, 5, 132);
    expect(alibi[0].args.slice(-4, -2)).toEqual([777, 1]);
    // A draft tree takes the per-query kernel even where query tiles would fill the GPU.
    const tree = plans.attentionPlans(1, 2, kv, { ...s, T: 4096, tree: 999 }, 5, 132);
    expect(tree.map((p) => [p.kernel, p.grid])).toEqual([["attention_f16", [4096, 32, 1]]]);
    expect(tree[0].args.slice(-2)).toEqual([999, 4096]);
    expect(decode[1].args).toEqual([1, 5, 32, 128, 9]);
    // Short contexts and sliding windows keep at least 256 keys per split.
    expect(plans.attentionSplits({ ...s, T: 1, pos0: 300 }, 132)).toBe(2);
    expect(plans.attentionSplits({ ...s, T: 1, pos0: 100000, window: 4096 }, 132)).toBe(9);
    expect(plans.attentionSplits({ ...s, T: 1, pos0: 10 }, 132)).toBe(1);
    // The scratch bound holds for every decode-like shape.
    for (const [T, nHeads] of [[1, 1], [1, 7], [3, 32], [1, 64]]) {
      const splits = plans.attentionSplits({ ...s, T, nHeads, pos0: 1 << 20 }, 132);
      expect(T * nHeads * splits * (640 + 2) * 4).toBeLessThanOrEqual(plans.attentionScratchBytes(132));
    }
    // Heads of 257 .. 640 (multi-head latent attention's absorbed 512 + 64) take the wide kernel.
    const mla = plans.attentionPlans(1, 2, kv, { ...s, T: 1, nHeads: 128, nKvHeads: 1, headDim: 576, pos0: 99 }, 5, 132);
    expect(mla.map((p) => [p.kernel, p.grid])).toEqual([["attention_wide_f16", [1, 128, 1]]]);
    expect(() => plans.attentionPlans(1, 2, kv, { ...s, headDim: 704 }, 5, 132)).toThrow(/headDim 704/);
    expect(() => plans.attentionPlans(1, 2, kv, { ...s, nKvHeads: 5 }, 5, 132)).toThrow(UsageError);
    expect(() => plans.attentionPlans(1, 2, { ...kv, pageSize: 0 }, s, 5, 132)).toThrow(/page size 0/);
  });

  test("rope: one thread per rotated pair of the first rotaryDim elements of each head", () => {
    const full = plans.ropePlan(1, 5, 4, 128, 7, 2, 1);
    expect([full.kernel, full.grid, full.args]).toEqual(["rope_f32", [5, 1, 1], [1, 5, 4, 128, 128, 7, 2, 1, 0]]);
    // ChatGLM: interleaved pairs over half of each 128-wide head, 32 pairs per head.
    const half = plans.ropePlan(1, 5, 4, 128, 7, 2, 1, true, 64);
    expect([half.grid, half.args]).toEqual([[3, 1, 1], [1, 5, 4, 128, 64, 7, 2, 1, 1]]);
    expect(() => plans.ropePlan(1, 5, 4, 128, 7, 2, 1, false, 130)).toThrow(/rotaryDim 130/);
    expect(() => plans.ropePlan(1, 5, 4, 128, 7, 2, 1, false, 63)).toThrow(UsageError);
  });

  test("scaleRows and scaleColumns: one thread per element, the row or column factor by index", () => {
    const rows = plans.scaleRowsPlan(1, 2, 3, 1000);
    expect([rows.kernel, rows.grid, rows.args]).toEqual(["scale_rows_f32", [12, 1, 1], [1, 2, 1000, 3000]]);
    const cols = plans.scaleColumnsPlan(1, w("bf16", [1000]), 3);
    expect([cols.kernel, cols.grid, cols.args]).toEqual(["scale_columns_bf16", [12, 1, 1], [1, 4096, 1000, 3000]]);
    expect(() => plans.scaleColumnsPlan(1, w("q4_k", [1024]), 3)).toThrow(UsageError);
  });

  test("storeKv: one block per stored row and tensor (k, then v), in the cache's dtype", () => {
    const kv: PagedKv = { k: 4096, v: 8192, dtype: "bf16", pageSize: 7, pageTable: 12288 };
    const plan = plans.storeKvPlan(kv, 100, 200, 33, 5, 1024);
    expect([plan.kernel, plan.grid, plan.block]).toEqual(["store_kv_bf16", [5, 2, 1], [256, 1, 1]]);
    // kPages, vPages, pageTable, k, v, pos0, width, pageSize
    expect(plan.args).toEqual([4096, 8192, 12288, 100, 200, 33, 1024, 7]);
    expect(plans.storeKvPlan({ ...kv, dtype: "f32" }, 100, 200, 0, 1, 8).kernel).toBe("store_kv_f32");
    expect(() => plans.storeKvPlan({ ...kv, pageSize: 1.5 }, 100, 200, 0, 1, 8)).toThrow(UsageError);
  });

  test("moeRoute: one warp per row, kernel by bias dtype, options as flags; limits checked", () => {
    const o: RouteOptions = { experts: 256, topK: 8, scoring: "sigmoid", normalize: true, scale: 2.5 };
    const plain = plans.moeRoutePlan(10, 20, 30, 70, { ...o, scoring: "softmax", normalize: false, scale: 1 });
    expect([plain.kernel, plain.grid, plain.block]).toEqual(["moe_route_f32", [9, 1, 1], [256, 1, 1]]);
    // ids, weights, logits, bias (the logits stand in), N, E, k, sigmoid, normalize, scale, hasBias, groups, groupTopk, top2sum
    expect(plain.args).toEqual([10, 20, 30, 30, 70, 256, 8, 0, 0, 1, 0, 0, 0, 0]);
    const v3 = plans.moeRoutePlan(10, 20, 30, 1, { ...o, selectionBias: w("bf16", [256]), groups: { count: 8, topk: 4, rule: "top2sum" } });
    expect([v3.kernel, v3.grid, v3.args]).toEqual(["moe_route_bf16", [1, 1, 1], [10, 20, 30, 4096, 1, 256, 8, 1, 1, 2.5, 1, 8, 4, 1]]);
    const v2 = plans.moeRoutePlan(10, 20, 30, 8, { ...o, experts: 160, topK: 6, groups: { count: 8, topk: 3, rule: "max" } });
    expect(v2.args.slice(11)).toEqual([8, 3, 0]);
    expect(() => checkGeometry(plans.moeRoutePlan(10, 20, 30, 1 << 20, o))).not.toThrow();
    expect(() => plans.moeRoutePlan(10, 20, 30, 1, { ...o, experts: 513 })).toThrow(/513 experts/);
    expect(() => plans.moeRoutePlan(10, 20, 30, 1, { ...o, topK: 33 })).toThrow(UsageError);
    expect(() => plans.moeRoutePlan(10, 20, 30, 1, { ...o, experts: 4, topK: 5 })).toThrow(UsageError);
    expect(() => plans.moeRoutePlan(10, 20, 30, 1, { ...o, selectionBias: w("f16", [255]) })).toThrow(/255 entries/);
    expect(() => plans.moeRoutePlan(10, 20, 30, 1, { ...o, selectionBias: w("q8_0", [256]) })).toThrow(UsageError);
    expect(() => plans.moeRoutePlan(10, 20, 30, 1, { ...o, groups: { count: 7, topk: 2, rule: "max" } })).toThrow(/7 groups/);
    expect(() => plans.moeRoutePlan(10, 20, 30, 1, { ...o, groups: { count: 8, topk: 9, rule: "max" } })).toThrow(UsageError);
    expect(() => plans.moeRoutePlan(10, 20, 30, 1, { ...o, groups: { count: 256, topk: 9, rule: "top2sum" } })).toThrow(/at least 2/);
  });

  test("gatherRows and scatterAddRows: one block row per listed row", () => {
    const g = plans.gatherRowsPlan(1, 2, 3, 7, 4096);
    expect([g.kernel, g.grid, g.args]).toEqual(["embedding_f32", [7, 16, 1], [1, 2, 3, 4096]]);
    const sc = plans.scatterAddRowsPlan(1, 2, 3, 4, 7, 4097);
    expect([sc.kernel, sc.grid, sc.args]).toEqual(["scatter_add_rows_f32", [7, 17, 1], [1, 2, 3, 4, 4097]]);
  });

  test("element-wise, row and gather ops", () => {
    expect(plans.swigluPlan(1, 2, 3, 1000).grid).toEqual([4, 1, 1]);
    expect(plans.softmaxPlan(1, 3, 50000).grid).toEqual([3, 1, 1]);
    expect(plans.rmsnormPlan(1, 2, w("f16", [4096]), 5, 1e-5).kernel).toBe("rmsnorm_f16");
    expect(plans.rmsnormPlan(1, 2, w("f16", [4096]), 1, 1e-5).block).toEqual([1024, 1, 1]);
    expect(plans.rmsnormPlan(1, 2, w("f16", [4096]), 512, 1e-5).block).toEqual([256, 1, 1]);
    expect(plans.addBiasPlan(1, w("bf16", [100]), 3).args).toEqual([1, 4096, 100, 300]);
    expect(plans.embeddingPlan(1, w("f32", [32000, 4096]), 9, 5).grid).toEqual([5, 16, 1]);
    expect(plans.ropePlan(1, 2, 4, 64, 0, 5, 1).grid).toEqual([1, 1, 1]);
    expect(() => plans.ropePlan(1, 2, 4, 63, 0, 5, 1)).toThrow(/odd/);
  });

  test("checkGeometry refuses grids beyond the hardware limits", () => {
    const plan: LaunchPlan = { kernel: "add_f32", grid: [1, 70000, 1], block: [256, 1, 1], args: [1, 2, 3, 4] };
    expect(() => checkGeometry(plan)).toThrow(/out of range/);
    expect(() => checkGeometry({ ...plan, grid: [0, 1, 1] })).toThrow(NativeError);
    expect(() => checkGeometry({ ...plan, grid: [1, 1, 1], block: [2048, 1, 1] })).toThrow(NativeError);
  });
});

describe("StagingRing", () => {
  test("hands out aligned spans front to back, then wraps and asks for a sync", () => {
    const ring = new StagingRing(1024, 256);
    expect(ring.reserve(10)).toEqual({ offset: 0, mustSync: false });
    expect(ring.reserve(300)).toEqual({ offset: 256, mustSync: false });
    expect(ring.reserve(256)).toEqual({ offset: 768, mustSync: false });
    expect(ring.reserve(1)).toEqual({ offset: 0, mustSync: true });
    expect(ring.reserve(1024)).toEqual({ offset: 0, mustSync: true });
    ring.reset();
    expect(ring.reserve(4)).toEqual({ offset: 0, mustSync: false });
    expect(() => ring.reserve(1025)).toThrow(RangeError);
  });
});

describe("SlotPool", () => {
  test("fixed slots at base + i*size; a released slot keeps its entry for a later hit", () => {
    const pool = new SlotPool(1 << 20, 4096, 2);
    const a = pool.acquire("model.layers.0", 4000);
    const b = pool.acquire("model.layers.1", 4096);
    expect([a.addr, b.addr, a.hit, b.hit]).toEqual([1 << 20, (1 << 20) + 4096, false, false]);
    expect(pool.free).toBe(0);
    expect(() => pool.acquire("model.layers.2", 10)).toThrow(/all 2 slots are in use \(model.layers.0, model.layers.1\)/);
    pool.release(a);
    pool.release(b);
    expect(pool.acquire("model.layers.1", 4096)).toEqual({ index: 1, addr: (1 << 20) + 4096, hit: true });
    // The least recently released free slot is reused for a new entry.
    const c = pool.acquire("model.layers.2", 100);
    expect(c).toEqual({ index: 0, addr: 1 << 20, hit: false });
    pool.release(c);
    expect(() => pool.release(c)).toThrow(/released twice/);
  });

  test("an entry larger than a slot is refused with its name and both sizes", () => {
    const pool = new SlotPool(4096, 2 ** 20, 3);
    expect(() => pool.acquire("lm_head", 3 * 2 ** 20)).toThrow(/lm_head needs 3.0 MiB \(3145728 bytes\) but a device slot holds 1.0 MiB \(1048576 bytes\)/);
  });

  test("allocate takes one piece from the backend; destroy frees it once", () => {
    const calls: string[] = [];
    const backend = { alloc: (n: number) => (calls.push(`alloc ${n}`), 8192), free: (a: number) => calls.push(`free ${a}`) };
    const pool = SlotPool.allocate(backend as unknown as Backend, 1000, 3);
    expect(pool.slotBytes).toBe(1024);
    pool.destroy();
    pool.destroy();
    expect(calls).toEqual(["alloc 3072", "free 8192"]);
  });
});

describe("encodeWeights", () => {
  test("f16 and bf16 bit patterns, rounding to nearest even", () => {
    const v = Float32Array.from([1, -2, 0.1]);
    expect([...new Uint16Array(encodeWeights(v, "f16").buffer)]).toEqual([0x3c00, 0xc000, 0x2e66]);
    // bf16(0.1): f32 0x3dcccccd rounds up to 0x3dcd; 1 + 2^-8 is a tie and rounds to even 0x3f80.
    const b = Float32Array.from([1, -2, 0.1, 1 + 2 ** -8]);
    expect([...new Uint16Array(encodeWeights(b, "bf16").buffer)]).toEqual([0x3f80, 0xc000, 0x3dcd, 0x3f80]);
  });
});

describe("detection and selection", () => {
  const probe = probeCuda();

  // CI has no GPU, so the first branch is the one CI checks; on a GPU machine the second runs.
  test("auto and cuda: the GPU when usable, else a CPU fallback with a notice and a UsageError with a hint", () => {
    if (probe.ok) {
      for (const device of ["auto", "cuda"] as const) {
        const { backend, notice } = selectBackend(device);
        expect([backend.name, notice]).toEqual(["cuda", undefined]);
        backend.destroy();
      }
      return;
    }
    expect(probe.reason.length).toBeGreaterThan(10);
    const { backend, notice } = selectBackend("auto", { threads: 1 });
    try {
      expect(backend.name).toBe("cpu");
      expect(notice).toMatch(/no usable CUDA GPU .*running on the CPU/);
    } finally {
      backend.destroy();
    }
    let err: unknown;
    try {
      selectBackend("cuda");
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(UsageError);
    expect((err as UsageError).hint).toMatch(/--device cpu/);
  });

  test("cpu is the CPU backend, without a notice", () => {
    const { backend, notice } = selectBackend("cpu", { threads: 1 });
    expect([backend.name, notice]).toEqual(["cpu", undefined]);
    backend.destroy();
  });
});
