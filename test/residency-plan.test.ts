// The residency planner as pure arithmetic: which entries stay resident, which are cached in
// host RAM, which stream from disk, how many slots the ring has, and the predicted pass time.
import { describe, expect, test } from "bun:test";
import { UsageError } from "../src/errors.ts";
import type { PlanEntry } from "../src/model/layer-plan.ts";
import { NOMINAL_BANDWIDTH, planResidency, predictPassSeconds, type EntryLayout, type PlanOptions } from "../src/engine/residency-plan.ts";

const MiB = 2 ** 20;
const layout = (index: number, mib: number): EntryLayout => ({
  entry: { index, kind: "layer", name: `model.layers.${index}`, layer: index, tensors: [] } as PlanEntry,
  bytes: mib * MiB,
  offsets: new Map(),
});
// 10 layers of 100 MiB.
const layers = Array.from({ length: 10 }, (_, i) => layout(i, 100));
const opts = (weightMiB: number, o: Partial<PlanOptions> = {}): PlanOptions => ({
  weightBudget: weightMiB * MiB, prefetchDepth: 1, hostCacheBudget: 0, granule: 2 * MiB, budgetFlag: "--max-gpu-memory", ...o,
});
const names = (ls: readonly EntryLayout[]) => ls.map((l) => l.entry.index);

describe("planResidency", () => {
  test("everything fits: all resident, no ring", () => {
    const p = planResidency(layers, opts(1000));
    expect([p.resident.length, p.hostCached.length, p.disk.length, p.slots, p.slotBytes]).toEqual([10, 0, 0, 0, 0]);
  });

  test("the ring is reserved first, then entries stay resident in plan order", () => {
    const p = planResidency(layers, opts(999, { prefetchDepth: 2 }));
    expect(names(p.resident)).toEqual([0, 1, 2, 3, 4, 5]);
    expect(names(p.disk)).toEqual([6, 7, 8, 9]);
    expect([p.slots, p.slotBytes]).toEqual([3, 100 * MiB]);
  });

  test("the host cache takes streamed entries in plan order, the rest read from disk", () => {
    const p = planResidency(layers, opts(400, { hostCacheBudget: 350 * MiB }));
    expect(names(p.resident)).toEqual([0, 1]);
    expect(names(p.hostCached)).toEqual([2, 3, 4]);
    expect(names(p.disk)).toEqual([5, 6, 7, 8, 9]);
  });

  test("sizes count in whole granules", () => {
    // 100 MiB + 1 byte takes 102 MiB of 2 MiB pages: two slots of it no longer fit in 203 MiB.
    const odd = [layout(0, 100), { ...layout(1, 100), bytes: 100 * MiB + 1 }, layout(2, 100)];
    expect(() => planResidency(odd, opts(203))).toThrow(UsageError);
    expect(planResidency(odd, opts(204)).slots).toBe(2);
  });

  test("fewer streamed entries than slots: only as many slots as entries", () => {
    const p = planResidency(layers, opts(990, { prefetchDepth: 3 }));
    expect(p.slots).toBeLessThanOrEqual(p.disk.length);
  });

  test("a budget below slots × the largest entry is a UsageError naming the entry, its size and the flag", () => {
    const big = [...layers, layout(10, 300)];
    let err: unknown;
    try {
      planResidency(big, opts(599, { budgetFlag: "--max-memory" }));
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(UsageError);
    expect((err as UsageError).message).toContain("2 slots of the largest plan entry (model.layers.10, 300.0 MiB)");
    expect((err as UsageError).hint).toContain("--max-memory");
  });
});

describe("predictPassSeconds (DESIGN.md cost model)", () => {
  const GB = 1e9;
  test("GPU: the slowest of h2d, disk and device bandwidth bounds the pass", () => {
    const bw = NOMINAL_BANDWIDTH.gpu;
    expect(predictPassSeconds({ residentBytes: 10 * GB, hostCachedBytes: 0, diskBytes: 0 }, false)).toBeCloseTo(10 * GB / bw.device);
    expect(predictPassSeconds({ residentBytes: 0, hostCachedBytes: 50 * GB, diskBytes: 0 }, false)).toBeCloseTo(50 * GB / bw.h2d);
    expect(predictPassSeconds({ residentBytes: 0, hostCachedBytes: 0, diskBytes: 4 * GB }, false)).toBeCloseTo(4 * GB / bw.disk);
  });
  test("CPU: no upload term, disk and memory bandwidth only", () => {
    const bw = NOMINAL_BANDWIDTH.cpu;
    expect(predictPassSeconds({ residentBytes: 2 * GB, hostCachedBytes: 0, diskBytes: 0 }, true)).toBeCloseTo(2 * GB / bw.device);
    expect(predictPassSeconds({ residentBytes: 0, hostCachedBytes: 0, diskBytes: 2 * GB }, true)).toBeCloseTo(2 * GB / bw.disk);
  });
});
