// The layer streamer on the CPU: every residency mix — the zero-copy mmap path, everything
// resident in allocated RAM, everything read from disk every pass in row chunks of several sizes,
// and a mix — with prefetching off and 1..3 chunks ahead, must give logits bitwise identical to
// the mmap path: the ops see the same bytes in the same order, only their address, the way they
// got there and how a matrix's rows were cut differ.
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { CpuBackend } from "../src/backend/cpu/index.ts";
import { ReadAhead } from "../src/engine/read-ahead.ts";
import { UsageError } from "../src/errors.ts";
import { AutoModel, type FromPretrainedOptions } from "../src/model/auto-model.ts";
import { ROOT, STORIES_HF } from "./paths.ts";

const CTX = 64;
const PROMPT = [1, 43, 47, 61, 78];
const DECODE_STEPS = 4;
const TB = 2 ** 40;

interface Run {
  logits: Float32Array[];
  resident: number;
  streamed: number;
  chunkBytes: number;
  slotBytes: number;
}

/** Prompt logits, then greedy decode steps fed with `feed` (the reference's own choices). */
async function run(path: string, opts: FromPretrainedOptions, feed?: readonly number[]): Promise<Run & { chosen: number[] }> {
  const model = await AutoModel.from_pretrained(path, { device: "cpu", threads: 2, max_seq_len: CTX, min_seq_len: CTX, kv_dtype: "f32", ...opts });
  try {
    const seq = model.newSequence();
    const logits = [model.forward([seq], [PROMPT])[0]!];
    const chosen: number[] = [];
    for (let i = 0; i < DECODE_STEPS; i++) {
      const last = logits[logits.length - 1]!;
      const next = feed?.[i] ?? last.indexOf(Math.max(...last));
      chosen.push(next);
      logits.push(model.forward([seq], [[next]])[0]!);
    }
    const s = model.engine.weightStats();
    const chunkBytes = model.engine.fetchStats()?.chunkBytes ?? 0;
    return { logits, chosen, resident: s.residentUnits, streamed: s.streamedUnits, chunkBytes, slotBytes: model.memoryPlan?.slotBytes ?? 0 };
  } finally {
    model.dispose();
  }
}

/** The smallest budget that streams every unit with these options (nothing resident). */
async function minBudget(path: string, opts: FromPretrainedOptions): Promise<{ budget: number; units: number; largest: number }> {
  const model = await AutoModel.from_pretrained(path, { device: "cpu", threads: 2, max_seq_len: CTX, min_seq_len: CTX, kv_dtype: "f32", max_memory: TB, ...opts });
  try {
    const p = model.memoryPlan!;
    const body = p.resident.filter((u) => u.kind === "body");
    return { budget: p.minBudget, units: p.resident.length, largest: Math.max(...body.map((u) => u.bytes)) };
  } finally {
    model.dispose();
  }
}

describe("layer streamer on the CPU (stories260K, F32)", async () => {
  const reference = await run(STORIES_HF, {});
  const whole = await minBudget(STORIES_HF, {});

  test("the mmap path (no budget) reads every tensor in place", () => {
    expect(reference.streamed).toBe(0);
    expect(reference.logits.length).toBe(DECODE_STEPS + 1);
  });

  test("a budget holding everything keeps every unit resident in RAM, same logits", async () => {
    const r = await run(STORIES_HF, { max_memory: TB }, reference.chosen);
    expect([r.resident, r.streamed]).toEqual([whole.units, 0]);
    expect(r.logits).toEqual(reference.logits);
  });

  const depths: [string, FromPretrainedOptions][] = [
    ["prefetching off", { prefetching: false }],
    ["depth 1", { prefetch_depth: 1 }],
    ["depth 2", { prefetch_depth: 2 }],
    ["depth 3", { prefetch_depth: 3 }],
  ];
  for (const [name, opts] of depths) {
    test(`everything from disk, whole units per slot, ${name}: identical logits`, async () => {
      // One slot holds the largest unit: today's whole-entry streaming.
      const o = { ...opts, chunk_size: whole.largest };
      const { budget } = await minBudget(STORIES_HF, o);
      const r = await run(STORIES_HF, { ...o, max_memory: budget }, reference.chosen);
      expect(r.resident).toBe(0);
      expect(r.streamed).toBeGreaterThan(0);
      expect(r.logits).toEqual(reference.logits);
    });

    test(`some units resident, the rest from disk, ${name}: identical logits`, async () => {
      const o = { ...opts, chunk_size: whole.largest };
      const { budget } = await minBudget(STORIES_HF, o);
      // Room for one layer besides the ring: the first units in plan order that fit stay resident.
      const r = await run(STORIES_HF, { ...o, max_memory: budget + whole.largest + 4096 }, reference.chosen);
      expect(r.resident).toBeGreaterThan(0);
      expect(r.streamed).toBeGreaterThan(0);
      expect(r.logits).toEqual(reference.logits);
    });
  }

  test("a budget below the smallest ring and context is a UsageError naming the parts and the flag", async () => {
    const o = { chunk_size: whole.largest, prefetch_depth: 2 };
    const { budget } = await minBudget(STORIES_HF, o);
    const err = await run(STORIES_HF, { ...o, max_memory: budget - 4096 }).catch((e) => e);
    expect(err).toBeInstanceOf(UsageError);
    expect(err.message).toContain(`cannot hold a context of ${CTX} tokens`);
    expect(err.message).toContain("3 slots of");
    expect(err.hint).toContain("--max-memory");
  });
});

// Row-chunked streaming: a matrix cut into row chunks multiplies into its columns of the output in
// place, so every cut gives the same logits as resident weights, bit for bit. Chunk sizes: whole
// units, one that divides no matrix's rows (7 rows of the widest row and a bit), and one below a
// single row group (raised to it: one row, or for NF4 the rows that make whole 64-weight blocks).
describe("row-chunked streaming equals resident weights", async () => {
  const tmp = mkdtempSync(join(tmpdir(), "airllm-chunks-"));
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));
  const models: [string, string, FromPretrainedOptions, number][] = [
    // name, path, options, bytes of the widest row group (NF4: 16 rows of 172 weights make 43 blocks)
    ["F32 (stories260K)", STORIES_HF, {}, 172 * 4],
    ["BF16", resolve(ROOT, "test/fixtures/hf/llama-bf16"), {}, 172 * 2],
    ["GGUF Q4_K", resolve(ROOT, "test/fixtures/gguf-models/llama-q4_k.gguf"), {}, 256 * 2],
    ["NF4 (4bit split)", resolve(ROOT, "test/fixtures/hf/llama"), { compression: "4bit", layer_shards_saving_path: tmp }, 43 * 36],
  ];
  for (const [name, path, opts, rowBytes] of models) {
    test(`${name}: chunk sizes whole, ragged and below one row group`, async () => {
      const reference = await run(path, { ...opts, max_memory: TB });
      const whole = await minBudget(path, opts);
      const ragged = 7 * rowBytes + 100;
      for (const chunk of [whole.largest, ragged, 1]) {
        const o = { ...opts, chunk_size: chunk };
        const { budget } = await minBudget(path, o);
        const r = await run(path, { ...o, max_memory: budget }, reference.chosen);
        expect({ chunk, resident: r.resident }).toEqual({ chunk, resident: 0 });
        // The slot is the size asked for, or one row group when that is less.
        if (chunk === 1) expect([r.slotBytes > 1, r.slotBytes < ragged]).toEqual([true, true]);
        else expect(r.slotBytes).toBe(chunk);
        expect(r.chunkBytes).toBeGreaterThan(0);
        expect(r.logits).toEqual(reference.logits);
      }
    });
  }
});

describe("native read-ahead", () => {
  const dir = mkdtempSync(join(tmpdir(), "airllm-read-ahead-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  test("reads file ranges into host memory off the JS thread, and names the file on failure", () => {
    const data = new Uint8Array(9 << 20).map((_, i) => (i * 2654435761) >>> 24);
    const path = join(dir, "ranges.bin");
    writeFileSync(path, data);
    const be = new CpuBackend({ threads: 1 });
    const reader = new ReadAhead(2);
    try {
      const dst = be.alloc(data.length);
      const ranges = [[0, 100], [100, (5 << 20) + 3], [(5 << 20) + 103, data.length - (5 << 20) - 103]] as const;
      const tickets = ranges.map(([off, n]) => reader.submit(path, off, n, dst + off));
      for (const t of tickets.reverse()) reader.wait(t);
      const out = new Uint8Array(data.length);
      be.download(out, dst, data.length);
      expect(out).toEqual(data);
      const past = reader.submit(path, data.length - 10, 20, dst);
      expect(() => reader.wait(past)).toThrow(/ranges\.bin.*errno 5/);
    } finally {
      reader.destroy();
      be.destroy();
    }
  });
});
