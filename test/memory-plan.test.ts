// The memory plan as pure arithmetic: the order in which the budget is filled (fixed parts, KV
// pool, ring, resident units, expert cache), the chunk size, the context that shrinks to fit, the
// error when nothing fits, and the cost model's prediction.
import { describe, expect, test } from "bun:test";
import { decodePassBytes, NOMINAL_BANDWIDTH, predictPassSeconds } from "../src/engine/cost-model.ts";
import { DEFAULT_CHUNK_CAP, planMemory, type MemoryPlanInput } from "../src/engine/memory-plan.ts";
import type { Unit, UnitKind } from "../src/engine/units.ts";
import { UsageError } from "../src/errors.ts";
import type { PlanEntry } from "../src/model/architecture.ts";

const MiB = 2 ** 20;
let nextId = 0;
function unit(kind: UnitKind, mib: number, tensors: string[] = [`t${nextId}`], expert = -1): Unit {
  const entry: PlanEntry = { index: nextId, name: `e${nextId}`, layer: nextId, tensors: [], experts: 0 };
  return { id: nextId++, kind, entry, expert, tensors, bytes: mib * MiB, offsets: new Map(), minSlot: MiB };
}
// An embedding table, 10 layers of 100 MiB, lm_head.
const table = unit("table", 50, ["embed"]);
const layers = Array.from({ length: 10 }, () => unit("body", 100));
const head = unit("body", 50, ["head"]);
const units = [table, ...layers, head];

const input = (budgetMiB: number, o: Partial<MemoryPlanInput> = {}): MemoryPlanInput => ({
  units,
  pinnedBytes: MiB,
  activationBytes: (rows) => rows * 0.01 * MiB,
  rowStagingBytes: (rows) => rows * 4096,
  kvBytesPerToken: 0.25 * MiB, // 4 MiB per page of 16
  pageSize: 16,
  sequences: 1,
  context: { wanted: 64, min: 1, max: 4096 },
  prefillRows: 512,
  budget: budgetMiB * MiB,
  granule: 2 * MiB,
  prefetchDepth: 1,
  hostCacheBudget: 0,
  backendBytes: 4 * MiB,
  budgetFlag: "--max-gpu-memory",
  ...o,
});
const ids = (us: readonly Unit[]) => us.map((u) => u.id);

describe("planMemory", () => {
  test("everything fits: all resident, no ring, no row reads, the wanted context", () => {
    const p = planMemory(input(2000));
    expect(ids(p.resident)).toEqual(ids(units));
    expect([p.slots, p.slotBytes, p.expertSlots, p.hostCached.length, p.disk.length]).toEqual([0, 0, 0, 0, 0]);
    expect([p.context, p.contextShrunk, p.kvPages, p.kvBytes]).toEqual([64, false, 4, 16 * MiB]);
    expect(p.usedBytes).toBeLessThanOrEqual(p.budget);
  });

  test("fixed parts, KV, then the ring, then resident units in plan order, tables last; the rest from disk", () => {
    const p = planMemory(input(600));
    // ring: 2 slots of min(100 MiB, 256 MiB, what the budget leaves / 4)
    expect([p.slots, p.slotBytes]).toEqual([2, 100 * MiB]);
    // 600 - (4 backend + 2 activations + 2 rows + 2 pinned + 16 KV + 200 ring) = 374 MiB: three
    // layers, then lm_head still fits in what is left (first fit in plan order); the table does not.
    expect(ids(p.resident)).toEqual(ids([...layers.slice(0, 3), head]));
    expect(ids(p.disk)).toEqual(ids([...layers.slice(3), table]));
    expect(p.usedBytes).toBeLessThanOrEqual(p.budget);
    expect(p.usedBytes).toBe(4 * MiB + p.activationBytes + 2 * MiB + p.kvBytes + p.ringBytes + p.residentAllocBytes);
  });

  test("with a host cache (CUDA) streamed units go to pinned RAM in plan order, tables after the rest", () => {
    const p = planMemory(input(600, { hostCacheBudget: 520 * MiB }));
    expect(ids(p.hostCached)).toEqual(ids([...layers.slice(3, 8)]));
    expect(ids(p.disk)).toEqual(ids([...layers.slice(8), table]));
    const roomy = planMemory(input(600, { hostCacheBudget: 2000 * MiB }));
    expect(ids(roomy.hostCached)).toEqual(ids([...layers.slice(3), table]));
  });

  test("a big unit streams in chunks sized from the budget, never below one row group", () => {
    const big = [unit("body", 2000), unit("body", 2000)];
    const p = planMemory(input(1000, { units: big }));
    expect(p.slotBytes).toBeLessThan(DEFAULT_CHUNK_CAP);
    expect(p.slots * p.slotBytes).toBeLessThanOrEqual(p.budget / 2);
    expect(planMemory(input(4000, { units: big })).slotBytes).toBe(DEFAULT_CHUNK_CAP);
    expect(planMemory(input(1000, { units: big, chunkBytes: 3 * MiB + 5 })).slotBytes).toBe(3 * MiB + 5);
    // A flag below the smallest piece is raised to it.
    expect(planMemory(input(1000, { units: big, chunkBytes: 1000 })).slotBytes).toBe(MiB);
  });

  test("the context shrinks to what fits when the wanted one does not", () => {
    const p = planMemory(input(300, { context: { wanted: 4096, min: 1, max: 8192 } }));
    expect(p.contextShrunk).toBe(true);
    expect(p.context).toBe(p.maxContext);
    expect(p.context).toBeLessThan(4096);
    expect(p.context).toBeGreaterThan(0);
    expect(p.usedBytes).toBeLessThanOrEqual(p.budget);
    // One more page would not fit beside the ring.
    const more = planMemory(input(300, { context: { wanted: p.context + 16, min: p.context + 16, max: 8192 } })).context;
    expect(more).toBe(p.context + 16);
  });

  test("a budget below the smallest context: a UsageError naming each part, the smallest budget and the flag", () => {
    let err: unknown;
    try {
      planMemory(input(40, { context: { wanted: 512, min: 512, max: 4096 } }));
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(UsageError);
    const e = err as UsageError;
    expect(e.message).toContain("cannot hold a context of 512 tokens");
    expect(e.message).toContain("KV cache 128.0 MiB");
    expect(e.message).toContain("streaming ring");
    expect(e.hint).toContain("smallest budget");
    expect(e.hint).toContain("--max-gpu-memory");
  });

  test("a tied table is the lm_head matrix: never a second resident copy, no unit of its own", () => {
    const tiedTable = unit("table", 50, ["embed"]);
    const tiedHead = unit("body", 50, ["embed"]);
    const p = planMemory(input(2000, { units: [tiedTable, ...layers, tiedHead] }));
    expect(ids(p.resident)).toEqual(ids([...layers, tiedHead]));
  });

  test("sizes count in whole granules", () => {
    const odd = [unit("body", 100), { ...unit("body", 100), bytes: 100 * MiB + 1 }, unit("body", 100)];
    // 302 MiB counted (102 for the odd one) + 4 backend + 2 activations + 2 pinned + 16 KV:
    // 326 MiB holds all, 325 does not.
    expect(planMemory(input(326, { units: odd })).slots).toBe(0);
    expect(planMemory(input(325, { units: odd })).slots).toBe(2);
  });

  test("MoE: expert slots beside the ring, then half of what residency leaves as the LRU expert cache", () => {
    const attn = [unit("body", 20), unit("body", 20)];
    const experts = Array.from({ length: 16 }, (_, e) => unit("expert", 10, [`x${e}`], e));
    const moe = [...attn, ...experts];
    const p = planMemory(input(150, { units: moe }));
    // The dense parts stay resident before any expert does.
    expect(ids(p.resident).slice(0, 2)).toEqual(ids(attn));
    expect(p.expertSlots).toBeGreaterThanOrEqual(2);
    expect(p.expertSlotBytes).toBe(10 * MiB);
    expect(p.usedBytes).toBeLessThanOrEqual(p.budget);
    const noCache = planMemory(input(150, { units: moe, expertCacheBytes: 0 }));
    expect(noCache.expertSlots).toBe(2);
    expect(noCache.resident.filter((u) => u.kind === "expert").length).toBeGreaterThan(p.resident.filter((u) => u.kind === "expert").length);
  });
});

describe("cost model (DESIGN.md)", () => {
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

  test("a decode pass needs its routed experts only, and no table", () => {
    const attn = unit("body", 20);
    const experts = Array.from({ length: 8 }, (_, e) => unit("expert", 10, [`y${e}`], e));
    const p = planMemory(input(2000, { units: [unit("table", 50, ["emb"]), attn, ...experts] }));
    const b = decodePassBytes(p, 2 / 8);
    expect(b.residentBytes).toBe(20 * MiB + 8 * 10 * MiB * (2 / 8) + p.pinnedBytes);
  });
});
