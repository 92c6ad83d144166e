// The paged KV cache at the model level (stories260K): the page size does not change a single bit
// of the logits with an f32 cache (a page larger than the sequence is the old contiguous cache),
// sequences take pages only as they grow and give every one back, and a full pool is a clear error.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { AutoModel } from "../src/index.ts";
import type { CausalLM } from "../src/model/causal-lm.ts";
import { UsageError } from "../src/errors.ts";
import { STORIES_HF } from "./paths.ts";
import { storiesRef } from "./stories-reference.ts";

/** Prompt logits at every position, then 8 decode steps fed the reference's greedy ids. */
async function logitsWithPages(pageSize: number): Promise<Float32Array[]> {
  const model = await AutoModel.from_pretrained(STORIES_HF, { device: "cpu", kv_dtype: "f32", kv_page_size: pageSize, max_seq_len: 64 });
  try {
    const ref = storiesRef().sequence_after_bos_prompt_then_greedy;
    const seq = model.newSequence();
    const out = model.forward([seq], [[1, ...ref.slice(0, 20)]], { allLogits: true });
    for (const id of ref.slice(20, 28)) out.push(model.forward([seq], [[id]])[0]!);
    return out;
  } finally {
    model.dispose();
  }
}

describe("paged KV cache", () => {
  test("page sizes 1, 16 and one larger than the sequence give bitwise-identical logits (f32 KV)", async () => {
    const contiguous = await logitsWithPages(1000);
    for (const size of [1, 16, 7]) expect(await logitsWithPages(size)).toEqual(contiguous);
  });

  describe("pages are taken as sequences grow and returned when they end", () => {
    let model: CausalLM;
    beforeAll(async () => {
      model = await AutoModel.from_pretrained(STORIES_HF, { device: "cpu", kv_page_size: 16, max_seq_len: 512 });
    });
    afterAll(() => model.dispose());

    test("a new sequence holds no page; T tokens take ceil(T / 16)", () => {
      const pool = model.engine.kvPool;
      const start = pool.freePages;
      expect(start).toBe(32); // 512 positions in pages of 16
      const seq = model.newSequence();
      expect(pool.freePages).toBe(start);
      model.forward([seq], [[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17]]);
      expect(pool.freePages).toBe(start - 2);
      seq.truncate(10);
      expect(pool.freePages).toBe(start - 1);
      seq.dispose();
      expect(pool.freePages).toBe(start);
    });

    test("after 100 sequences of random lengths are created, run and disposed, every page is free again", () => {
      const pool = model.engine.kvPool;
      const start = pool.freePages;
      let x = 7;
      const rand = (n: number) => (x = (x * 1103515245 + 12345) % 2 ** 31) % n;
      const live: ReturnType<CausalLM["newSequence"]>[] = [];
      for (let i = 0; i < 100; i++) {
        const seq = model.newSequence();
        const len = 1 + rand(40);
        model.forward([seq], [Array.from({ length: len }, () => 1 + rand(500))]);
        for (let s = rand(4); s > 0; s--) model.forward([seq], [[1 + rand(500)]]);
        live.push(seq);
        // Keep a few alive at once, and dispose in a scrambled order.
        while (live.length > 3) live.splice(rand(live.length), 1)[0]!.dispose();
        expect(pool.freePages).toBeLessThan(start);
      }
      for (const s of live) s.dispose();
      expect(pool.freePages).toBe(start);
    });

    test("a full pool is a UsageError that names the pages and what to change", () => {
      const seqs = Array.from({ length: 3 }, () => model.newSequence());
      try {
        model.forward([seqs[0]!], [new Array(500).fill(5)]);
        let err: unknown;
        try {
          model.forward([seqs[1]!], [new Array(100).fill(5)]);
        } catch (e) {
          err = e;
        }
        expect(err).toBeInstanceOf(UsageError);
        expect((err as UsageError).message).toContain("the KV cache is full: all 32 pages of 16 tokens are in use");
        expect((err as UsageError).hint).toContain("--ctx");
      } finally {
        for (const s of seqs) s.dispose();
      }
      expect(model.engine.kvPool.freePages).toBe(32);
    });
  });
});
