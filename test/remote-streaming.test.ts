// Every remote-code family under a memory budget on the CPU: all units resident in allocated RAM,
// and everything read from disk on every pass through 4 KiB slots (so the fused q|k|v, gate|up
// and NormHead's head matrices are cut into row chunks, each multiplied into its own columns),
// must give logits bitwise identical to the mmap path with no budget: the ops see the same bytes
// in the same order, only where they live and how a matrix's rows were cut differ.
import { describe, expect, test } from "bun:test";
import { join } from "node:path";
import { AutoModel, type FromPretrainedOptions } from "../src/index.ts";
import { readExpected } from "./parity.ts";
import { REMOTE_FAMILIES, REMOTE_FIXTURES, REMOTE_GENERATOR } from "./remote-fixtures.ts";

const TB = 2 ** 40;
const CHUNK = 4096;

async function run(dir: string, opts: FromPretrainedOptions) {
  const e = readExpected(dir, REMOTE_GENERATOR);
  const model = await AutoModel.from_pretrained(dir, { device: "cpu", threads: 2, max_seq_len: 64, min_seq_len: 64, kv_dtype: "f32", ...opts });
  try {
    const seq = model.newSequence();
    const out = model.forward([seq], [e.prompt], { allLogits: true });
    for (const id of e.greedy_ids.slice(0, 4)) out.push(model.forward([seq], [[id]])[0]!);
    return { out, plan: model.memoryPlan, fetched: model.engine.fetchStats()?.chunkBytes ?? 0 };
  } finally {
    model.dispose();
  }
}

describe("remote-code families stream under a memory budget with the logits of the resident model", () => {
  for (const family of REMOTE_FAMILIES) {
    test(family, async () => {
      const dir = join(REMOTE_FIXTURES, family);
      const mapped = await run(dir, {});
      const resident = await run(dir, { max_memory: TB });
      expect(resident.plan!.disk.length).toBe(0);
      expect(resident.out).toEqual(mapped.out);
      // The smallest budget that streams everything through 4 KiB slots.
      const budget = (await run(dir, { max_memory: TB, chunk_size: CHUNK })).plan!.minBudget;
      const streamed = await run(dir, { max_memory: budget, chunk_size: CHUNK });
      const p = streamed.plan!;
      expect(p.slotBytes).toBe(CHUNK);
      expect(p.resident.filter((u) => u.kind === "body").length).toBe(0);
      // Every family but InternLM (v1) has a fused q|k|v matrix; at 16 KiB and more it spans several slots.
      const fused = p.disk.flatMap((u) => u.tensors).filter((n) => /query_key_value|W_pack|wqkv|c_attn/.test(n));
      expect(fused.length > 0).toBe(family !== "internlm");
      expect(streamed.fetched).toBeGreaterThan(0);
      expect(streamed.out).toEqual(mapped.out);
    });
  }
});
