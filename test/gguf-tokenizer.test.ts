import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { UsageError } from "../src/errors.ts";
import { GgufFile } from "../src/formats/gguf.ts";
import { GgufTokenizer } from "../src/tokenizer/gguf-tokenizer.ts";
import { ROOT, SHARED } from "./paths.ts";
import { storiesExpectedText, storiesRef } from "./stories-reference.ts";

const VECTORS = join(SHARED, "tokenizers/llamacpp-vocab");

/** llama.cpp's test-tokenizer-0 files (see tokenizer.test.ts): strings, then ids without BOS. */
function readVectors(name: string): { text: string; ids: number[] }[] {
  const texts = readFileSync(join(VECTORS, `${name}.inp`), "utf8").split("\n__ggml_vocab_test__\n");
  expect(texts.pop()).toBe("");
  const lines = readFileSync(join(VECTORS, `${name}.out`), "utf8").split("\n");
  expect(lines.pop()).toBe("");
  expect(lines.length).toBe(texts.length);
  return texts.map((text, i) => ({ text, ids: lines[i]!.split(" ").filter((s) => s !== "").map(Number) }));
}

function tokenizerOf(path: string): GgufTokenizer {
  const f = GgufFile.open(path);
  try {
    return new GgufTokenizer(f);
  } finally {
    f.close(); // the tokenizer keeps copies of the metadata it needs
  }
}

function expectVectors(tok: GgufTokenizer, vectors: string) {
  const cases = readVectors(vectors);
  expect(cases.length).toBe(46);
  for (const { text, ids } of cases) {
    expect([text, tok.encode(text, { addBos: false })]).toEqual([text, ids]);
    // SentencePiece keeps every character (byte fallback), so llama.cpp round-trips all 46.
    expect(tok.decode(ids)).toBe(text);
  }
}

describe("SentencePiece vocabularies (tokenizer.ggml.model = llama)", () => {
  test("llama-spm: llama.cpp's 46 vectors", () => {
    const tok = tokenizerOf(join(VECTORS, "ggml-vocab-llama-spm.gguf"));
    expectVectors(tok, "ggml-vocab-llama-spm.gguf");
    expect([tok.bosId, tok.eosIds, tok.addsBos, tok.vocabSize]).toEqual([1, [2], true, 32000]);
    expect(tok.encode("Hello world")).toEqual([1, 15043, 3186]);
  });

  test("phi-3: llama.cpp's 46 vectors; its chat template is kept", () => {
    const tok = tokenizerOf(join(VECTORS, "ggml-vocab-phi-3.gguf"));
    expectVectors(tok, "ggml-vocab-phi-3.gguf");
    expect(tok.chatTemplate).toContain("<|user|>");
    expect(tok.eosIds).toEqual([32000]);
    // Control-token text becomes the token; the text after it starts a new ▁-prefixed fragment.
    expect(tok.encode("<|user|>Hi", { addBos: false })).toEqual([32010, ...tok.encode("Hi", { addBos: false })]);
    expect(tok.decode(tok.encode("<|user|>Hi", { addBos: false }), { skipSpecial: true })).toBe("Hi");
  });

  test("tiny-random's embedded Llama-2 vocabulary tokenizes like llama-spm", () => {
    const tok = tokenizerOf(join(SHARED, "models/tiny-random-gguf/llama-2-tiny-random.gguf"));
    expectVectors(tok, "ggml-vocab-llama-spm.gguf");
  });

  test("stories260K GGUF: llama2.c's encoding and its 200 greedy ids decoded to expected_stdout", () => {
    const tok = tokenizerOf(join(SHARED, "models/stories260K/tinyllamas-stories-260k-f32.gguf"));
    expect(tok.encode("Once upon a time")).toEqual([1, 403, 407, 261, 378]);
    const ids = storiesRef().sequence_after_bos_prompt_then_greedy;
    expect(ids.length).toBe(200);
    expect(tok.decode(ids)).toBe(storiesExpectedText());
    expect(tok.decode([1, ...ids], { skipSpecial: true })).toBe(storiesExpectedText());
    expect(tok.decode([1, 403, 407])).toBe("<s> Once upon");
    expect(tok.decode([])).toBe("");
    const text = "Ünïcødé: 你好 🦙";
    expect(tok.decode(tok.encode(text))).toBe(`<s> ${text}`);
    expect(tok.decode(tok.encode(text), { skipSpecial: true })).toBe(text);
    expect(() => tok.decode([512])).toThrow(UsageError);
  });
});

// Byte-level BPE: no vocab-only GGUF of it ships in shared/, so one is written from the npm
// packages' tokenizer.json the way convert_hf_to_gguf.py does (tokens by id, "a b" merges,
// token_type 3 for special added tokens, 4 for the others).
const dir = mkdtempSync(join(tmpdir(), "airllm-gguf-tok-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function bpeGguf(pkg: string, pre: string, bos?: number): string {
  const json = JSON.parse(readFileSync(join(ROOT, "node_modules/@lenml", pkg, "models/tokenizer.json"), "utf8"));
  const tokens: string[] = [];
  const types: number[] = [];
  for (const [t, id] of Object.entries(json.model.vocab as Record<string, number>)) [tokens[id], types[id]] = [t, 1];
  for (const a of json.added_tokens) [tokens[a.id], types[a.id]] = [a.content, a.special ? 3 : 4];
  const merges = (json.model.merges as (string | string[])[]).map((m) => (Array.isArray(m) ? m.join(" ") : m));
  const parts: Buffer[] = [];
  const u32 = (v: number) => { const b = Buffer.alloc(4); b.writeUInt32LE(v); parts.push(b); };
  const u64 = (v: number) => { const b = Buffer.alloc(8); b.writeBigUInt64LE(BigInt(v)); parts.push(b); };
  const str = (s: string) => { const b = Buffer.from(s, "utf8"); u64(b.length); parts.push(b); };
  const kv: [string, () => void][] = [
    ["tokenizer.ggml.model", () => { u32(8); str("gpt2"); }],
    ["tokenizer.ggml.pre", () => { u32(8); str(pre); }],
    ["tokenizer.ggml.tokens", () => { u32(9); u32(8); u64(tokens.length); tokens.forEach((t) => str(t ?? "")); }],
    ["tokenizer.ggml.token_type", () => { u32(9); u32(5); u64(types.length); types.forEach((t) => u32(t ?? 1)); }],
    ["tokenizer.ggml.merges", () => { u32(9); u32(8); u64(merges.length); merges.forEach(str); }],
  ];
  if (bos !== undefined) kv.push(["tokenizer.ggml.bos_token_id", () => { u32(4); u32(bos); }]);
  parts.push(Buffer.from("GGUF"));
  u32(3);
  u64(0);
  u64(kv.length);
  for (const [key, write] of kv) { str(key); write(); }
  const path = join(dir, `${pkg}.gguf`);
  writeFileSync(path, Buffer.concat(parts));
  return path;
}

describe("byte-level BPE vocabularies (tokenizer.ggml.model = gpt2)", () => {
  test("llama-bpe (Llama-3): llama.cpp's 46 vectors", () => {
    const tok = tokenizerOf(bpeGguf("tokenizer-llama3", "llama-bpe", 128000));
    for (const { text, ids } of readVectors("ggml-vocab-llama-bpe.gguf")) {
      expect([text, tok.encode(text, { addBos: false })]).toEqual([text, ids]);
      expect(tok.decode(ids)).toBe(text);
    }
    expect(tok.encode("<|eot_id|>", { addBos: false })).toEqual([128009]);
    // llama.cpp adds BOS for this pre-tokenizer when the file does not say.
    expect(tok.encode("Hello")).toEqual([128000, 9906]);
  });

  test("qwen2: llama.cpp's 46 vectors", () => {
    const tok = tokenizerOf(bpeGguf("tokenizer-qwen3", "qwen2"));
    expect(tok.addsBos).toBe(false);
    for (const { text, ids } of readVectors("ggml-vocab-qwen2.gguf")) {
      expect([text, tok.encode(text)]).toEqual([text, ids]);
      expect(tok.decode(ids)).toBe(text);
    }
  });
});
