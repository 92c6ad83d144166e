// The layer streamer on the CPU (stories260K): every residency mix — the zero-copy mmap path,
// everything resident in allocated RAM, everything read from disk every pass, and a mix — with
// prefetching off and 1..3 entries ahead, must give logits bitwise identical to the mmap path:
// the ops see the same bytes, only their address and the way they got there differ.
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CpuBackend } from "../src/backend/cpu/index.ts";
import { ReadAhead } from "../src/engine/read-ahead.ts";
import { layoutEntry } from "../src/engine/residency-plan.ts";
import { UsageError } from "../src/errors.ts";
import { openWeightFiles } from "../src/formats/model-files.ts";
import { AutoModel, reservedBytes, type FromPretrainedOptions } from "../src/model/auto-model.ts";
import { loadModelConfig } from "../src/model/config.ts";
import { buildLayerPlan } from "../src/model/layer-plan.ts";
import { STORIES_HF } from "./paths.ts";

const CTX = 64;
const PROMPT = [1, 403, 407, 261, 378];
const DECODE_STEPS = 6;
const page = (b: number) => Math.ceil(b / 4096) * 4096;

// Entry sizes as the planner counts them (whole pages on the CPU).
const config = loadModelConfig(STORIES_HF);
const files = openWeightFiles(STORIES_HF);
const plan = buildLayerPlan({
  numLayers: config.numLayers,
  bias: { qkv: config.attentionBias, out: config.attentionOutBias, mlp: config.mlpBias },
  tiedEmbeddings: config.tieWordEmbeddings || !files.has("lm_head.weight"),
});
const layouts = plan.map((e) => layoutEntry(e, files));
files.close();
const largest = layouts.reduce((a, l) => (l.bytes > a.bytes ? l : a));
const fixed = reservedBytes(config, CTX, 4096);
const total = layouts.reduce((a, l) => a + page(l.bytes), 0);
/** The smallest budget that streams everything with `depth` entries ahead. */
const ringOnly = (depth: number) => fixed + (depth + 1) * page(largest.bytes);

interface Run {
  logits: Float32Array[];
  resident: number;
  streamed: number;
}

/** Prompt logits, then greedy decode steps fed with `feed` (the reference's own choices). */
async function run(opts: FromPretrainedOptions, feed?: readonly number[]): Promise<Run & { chosen: number[] }> {
  const model = await AutoModel.from_pretrained(STORIES_HF, { device: "cpu", threads: 2, max_seq_len: CTX, ...opts });
  try {
    const seq = model.newSequence();
    const logits = [model.forward([seq], [PROMPT])[0]];
    const chosen: number[] = [];
    for (let i = 0; i < DECODE_STEPS; i++) {
      const last = logits[logits.length - 1];
      const next = feed?.[i] ?? last.indexOf(Math.max(...last));
      chosen.push(next);
      logits.push(model.forward([seq], [[next]])[0]);
    }
    const s = model.engine.weightStats();
    return { logits, chosen, resident: s.residentEntries, streamed: s.streamedEntries };
  } finally {
    model.dispose();
  }
}

describe("layer streamer on the CPU", async () => {
  const reference = await run({});

  test("the mmap path (no budget) is fully resident", () => {
    expect(reference.resident).toBe(plan.length);
    expect(reference.logits.length).toBe(DECODE_STEPS + 1);
  });

  test("a budget holding everything keeps every entry resident in RAM, same logits", async () => {
    const r = await run({ max_memory: fixed + total + 2 * page(largest.bytes) }, reference.chosen);
    expect([r.resident, r.streamed]).toEqual([plan.length, 0]);
    expect(r.logits).toEqual(reference.logits);
  });

  const depths: [string, FromPretrainedOptions, number][] = [
    ["prefetching off", { prefetching: false }, 0],
    ["depth 1", { prefetch_depth: 1 }, 1],
    ["depth 2", { prefetch_depth: 2 }, 2],
    ["depth 3", { prefetch_depth: 3 }, 3],
  ];
  for (const [name, opts, depth] of depths) {
    test(`everything from disk, ${name}: identical logits`, async () => {
      const r = await run({ ...opts, max_memory: ringOnly(depth) }, reference.chosen);
      expect([r.resident, r.streamed]).toEqual([0, plan.length]);
      expect(r.logits).toEqual(reference.logits);
    });

    test(`some entries resident, the rest from disk, ${name}: identical logits`, async () => {
      // Room for one entry besides the ring: the first entries in plan order that fit stay resident.
      const r = await run({ ...opts, max_memory: ringOnly(depth) + page(largest.bytes) }, reference.chosen);
      expect(r.resident).toBeGreaterThan(0);
      expect(r.streamed).toBeGreaterThan(0);
      expect(r.logits).toEqual(reference.logits);
    });
  }

  test("a budget below the ring of the largest entry is a UsageError naming the entry and its size", async () => {
    const err = await run({ prefetch_depth: 2, max_memory: ringOnly(2) - 1 }).catch((e) => e);
    expect(err).toBeInstanceOf(UsageError);
    expect(err.message).toContain(`3 slots of the largest plan entry (${largest.entry.name}, `);
    expect(err.hint).toContain("--max-memory");
  });
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
