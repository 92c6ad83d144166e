// `airllm tokenize` through the built binary, for every kind of tokenizer a model can have:
// tokenizer.json (stories260K-hf: llama2.c's ids for "Once upon a time"), GGUF metadata (the same
// model's GGUF), SentencePiece's tokenizer.model (InternLM2) and tiktoken ranks (Qwen), the last
// two against the ids their original tokenization code produced (family-tokenizers fixtures).
import { beforeAll, describe, expect, test } from "bun:test";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { ROOT, SHARED, STORIES_HF } from "./paths.ts";

const BUILT = join(ROOT, "dist/airllm");
beforeAll(() => {
  if (!existsSync(BUILT)) throw new Error(`${BUILT} is missing: run \`bun run build\` first (the test command does)`);
});

function tokenize(...args: string[]) {
  const p = Bun.spawnSync([BUILT, "tokenize", ...args], { env: { ...process.env, AIRLLM_DEBUG: "" } });
  return { code: p.exitCode, stdout: p.stdout.toString(), stderr: p.stderr.toString() };
}
/** The ids column of the output. */
const idsOf = (stdout: string) => stdout.split("\n").filter((l) => l !== "").map((l) => Number(l.split("\t")[0]));

const fixture = (name: string) => JSON.parse(readFileSync(join(ROOT, "test/fixtures/family-tokenizers", `${name}.json`), "utf8")) as { cases: { text: string; ids: number[]; ids_with_special: number[]; decoded: string }[] };

describe("airllm tokenize", () => {
  const ONCE = [1, 403, 407, 261, 378]; // llama2.c's encoding (../shared/README.md)
  for (const [kind, model] of [
    ["tokenizer.json", STORIES_HF],
    ["GGUF", join(SHARED, "models/stories260K/tinyllamas-stories-260k-f32.gguf")],
  ] as const) {
    test(`${kind}: ids with their vocabulary entries, --no-special, and --ids back to the text`, () => {
      const r = tokenize(model, "Once upon a time");
      expect(r.code).toBe(0);
      expect(idsOf(r.stdout)).toEqual(ONCE);
      expect(r.stdout.split("\n")[1]).toBe('403\t"▁Once"');
      expect(r.stderr).toBe("airllm: 5 tokens\n");
      expect(idsOf(tokenize(model, "Once upon a time", "--no-special").stdout)).toEqual(ONCE.slice(1));
      // As transformers decodes it: the decoder drops the space in front of the whole text only.
      expect(tokenize(model, ONCE.join(","), "--ids").stdout).toBe("<s> Once upon a time\n");
      expect(tokenize(model, ONCE.join(" "), "--ids", "--no-special").stdout).toBe("Once upon a time\n");
    });
  }

  for (const [kind, name, dir] of [
    ["SentencePiece tokenizer.model", "internlm2", "refcode/internlm2"],
    ["tiktoken ranks", "qwen", "refcode/qwen"],
  ] as const) {
    test(`${kind} (${name}): the original tokenizer's ids, and back`, () => {
      // (Each run builds the full vocabulary's tokenizer, about a second: two runs, not more.)
      const model = join(SHARED, dir);
      const c = fixture(name).cases.find((x) => x.text.startsWith("混合"))!;
      expect(idsOf(tokenize(model, c.text).stdout)).toEqual(c.ids_with_special);
      expect(tokenize(model, c.ids.join(","), "--ids").stdout).toBe(`${c.decoded}\n`);
    });
  }

  test("usage errors are one line with a hint", () => {
    for (const r of [tokenize(STORIES_HF), tokenize(join(ROOT, "no-such-model"), "x"), tokenize(STORIES_HF, "1,x", "--ids"), tokenize(STORIES_HF, "99999", "--ids")]) {
      expect(r.code).not.toBe(0);
      expect(r.stderr).toMatch(/^airllm: error: .*\nhint: /);
    }
  });
});
