// --profile's report: every plan entry timed, the bytes read per token equal to what the residency
// plan reads from disk, the disk bandwidth measured by the native reader, and a bottleneck line.
import { expect, test } from "bun:test";
import { Profiler } from "../src/engine/profiler.ts";
import { AutoModel } from "../src/index.ts";
import { STORIES_HF } from "./paths.ts";

test("a streamed run reports per-entry times, bytes per token, disk bandwidth and a bottleneck", async () => {
  const model = await AutoModel.from_pretrained(STORIES_HF, { device: "cpu", max_memory: "1MiB", max_seq_len: 64 });
  try {
    const prof = (model.engine.profiler = new Profiler());
    await model.generate([1], { maxNewTokens: 6 });
    const w = model.engine.weightStats();
    const reads = model.engine.readStats();
    expect(w.diskBytes).toBeGreaterThan(0);
    expect(prof.passes).toBe(6); // one prefill pass + 5 decode passes (the 6th token needs no pass)
    // Each pass reads the disk tier once; the ring also reads ahead into the next pass.
    expect(reads.bytes).toBeGreaterThanOrEqual(prof.passes * w.diskBytes);
    expect(reads.bytes).toBeLessThanOrEqual((prof.passes + 2) * w.diskBytes + w.ringBytes);
    expect(reads.activeSeconds).toBeGreaterThan(0);
    const lines = prof.report({ weights: w, reads, asyncBackend: false });
    for (const e of model.engine.plan) expect(lines.some((l) => l.trimStart().startsWith(e.name))).toBe(true);
    expect(lines.join("\n")).toContain("read from disk");
    expect(lines.at(-1)).toMatch(/^ {2}bottleneck: (disk-bound|compute-bound|waiting for weights)/);
  } finally {
    model.dispose();
  }
});
