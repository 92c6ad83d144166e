// The single binary, dist/airllm (built by `bun run build`, which the test command runs first):
// the keystone text through the CLI, --json, help, and bad input turned into one clear error line.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { RUN_FLAGS } from "../src/cli/run-command.ts";
import { ROOT, STORIES_HF } from "./paths.ts";
import { storiesExpectedText, storiesRef } from "./stories-reference.ts";

const BUILT = join(ROOT, "dist/airllm");
let work: string;
let binary: string;

function airllm(args: string[], opts: { stdin?: string } = {}) {
  const p = Bun.spawnSync([binary, ...args], { cwd: work, stdin: opts.stdin !== undefined ? Buffer.from(opts.stdin) : "ignore", env: { ...process.env, AIRLLM_DEBUG: "" } });
  return { code: p.exitCode, stdout: p.stdout.toString(), stderr: p.stderr.toString() };
}

/** A model folder with stories260K's config and tokenizer, and `weights` as model.safetensors. */
function modelDir(name: string, weights: Uint8Array | null, edit?: { config?: (c: any) => any; skip?: string[] }): string {
  const dir = join(work, name);
  Bun.spawnSync(["mkdir", "-p", dir]);
  for (const f of ["config.json", "tokenizer.json", "tokenizer_config.json", "generation_config.json"]) {
    if (edit?.skip?.includes(f)) continue;
    if (f === "config.json" && edit?.config) {
      writeFileSync(join(dir, f), JSON.stringify(edit.config(JSON.parse(readFileSync(join(STORIES_HF, f), "utf8")))));
    } else copyFileSync(join(STORIES_HF, f), join(dir, f));
  }
  if (weights) writeFileSync(join(dir, "model.safetensors"), weights);
  return dir;
}

function safetensors(header: object, data: Uint8Array): Uint8Array {
  const json = new TextEncoder().encode(JSON.stringify(header));
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out;
}

function expectCleanError(r: { code: number | null; stderr: string }, pattern: RegExp) {
  expect(r.code).not.toBe(0);
  expect(r.stderr).toMatch(/^airllm: error: /m);
  expect(r.stderr).toMatch(/^hint: /m);
  expect(r.stderr).toMatch(pattern);
  expect(r.stderr).not.toMatch(/^\s+at /m); // no stack trace
}

beforeAll(() => {
  if (!existsSync(BUILT)) throw new Error(`${BUILT} is missing: run \`bun run build\` first (the test command does)`);
  // Run a copy from an empty folder: the binary needs nothing beside it.
  work = mkdtempSync(join(tmpdir(), "airllm-cli-"));
  binary = join(work, "airllm");
  copyFileSync(BUILT, binary);
  Bun.spawnSync(["chmod", "+x", binary]);
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe("airllm run", () => {
  test("greedy 200 tokens from <s> print llama2.c's expected_stdout (and its final newline)", () => {
    const r = airllm(["run", STORIES_HF, "-p", "", "-n", "200", "--device", "cpu"]);
    expect(r.stderr).toMatch(/finish: length/);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(storiesExpectedText() + "\n");
  });

  test("--json prints exactly one object with ids, text, finish reason and timings", () => {
    const r = airllm(["run", STORIES_HF, "-n", "200", "--json", "--device", "cpu"], { stdin: "" });
    expect(r.code).toBe(0);
    const lines = r.stdout.trim().split("\n");
    expect(lines.length).toBe(1);
    const j = JSON.parse(lines[0]);
    expect(j.prompt_tokens).toEqual([1]);
    expect(j.tokens).toEqual(storiesRef().sequence_after_bos_prompt_then_greedy);
    expect(j.text).toBe(storiesExpectedText());
    expect(j.finish_reason).toBe("length");
    expect(typeof j.timings.tokens_per_s).toBe("number");
  });

  test("--speculate ngram, --draft-model and --speculate tree give the same tokens, with tokens per pass in the summary", () => {
    for (const flags of [["--speculate", "ngram"], ["--draft-model", STORIES_HF, "--draft-tokens", "4"], ["--speculate", "tree", "--draft-model", STORIES_HF]]) {
      const r = airllm(["run", STORIES_HF, "-p", "", "-n", "200", "--device", "cpu", "--json", ...flags]);
      expect(r.code).toBe(0);
      const j = JSON.parse(r.stdout);
      expect(j.tokens).toEqual(storiesRef().sequence_after_bos_prompt_then_greedy);
      expect(j.speculation.decode_passes).toBeLessThanOrEqual(200);
      expect(r.stderr).toMatch(/tokens\/pass \(\d+ of \d+ drafts accepted/);
    }
    const bad = airllm(["run", STORIES_HF, "-p", "x", "--speculate", "draft"]);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/--speculate draft needs --draft-model PATH/);
  });

  test("the prompt can come from a file or stdin", () => {
    writeFileSync(join(work, "prompt.txt"), "Once upon a time");
    const a = airllm(["run", STORIES_HF, "-f", "prompt.txt", "-n", "10", "--json"]);
    const b = airllm(["run", STORIES_HF, "-n", "10", "--json"], { stdin: "Once upon a time" });
    expect(a.code).toBe(0);
    expect(JSON.parse(a.stdout).prompt_tokens).toEqual([1, 403, 407, 261, 378]);
    expect(JSON.parse(b.stdout)).toMatchObject({ prompt_tokens: [1, 403, 407, 261, 378], tokens: JSON.parse(a.stdout).tokens });
  });

  test("--help describes every flag", () => {
    const r = airllm(["run", "--help"]);
    expect(r.code).toBe(0);
    for (const f of RUN_FLAGS) expect(r.stdout).toContain(`--${f.name}`);
    const top = airllm(["--help"]);
    expect(top.code).toBe(0);
    expect(top.stdout).toContain("airllm run MODEL");
  });
});

describe("bad input: one error line with a hint, non-zero exit, no stack trace", () => {
  const f32 = (n: number) => new Uint8Array(n * 4);

  test("missing config.json", () => {
    expectCleanError(airllm(["run", modelDir("no-config", f32(1), { skip: ["config.json"] }), "-p", "x"]), /config\.json/);
  });
  test("missing tokenizer.json", () => {
    const weights = readFileSync(join(STORIES_HF, "model.safetensors"));
    expectCleanError(airllm(["run", modelDir("no-tok", weights, { skip: ["tokenizer.json"] }), "-p", "x"]), /tokenizer\.json/);
  });
  test("unsupported model_type lists the supported ones", () => {
    const dir = modelDir("gpt2", f32(1), { config: (c) => ({ ...c, model_type: "gpt2" }) });
    expectCleanError(airllm(["run", dir, "-p", "x"]), /gpt2.*llama.*mistral.*qwen2.*qwen3.*mixtral.*qwen2_moe.*qwen3_moe/s);
  });
  test("truncated safetensors file", () => {
    const full = readFileSync(join(STORIES_HF, "model.safetensors"));
    expectCleanError(airllm(["run", modelDir("trunc", full.subarray(0, full.length - 1000)), "-p", "x"]), /model\.safetensors/);
  });
  test("header offset past the end", () => {
    const w = safetensors({ "model.norm.weight": { dtype: "F32", shape: [64], data_offsets: [0, 4096] } }, f32(64));
    expectCleanError(airllm(["run", modelDir("past-end", w), "-p", "x"]), /model\.norm\.weight/);
  });
  test("dtype and shape disagree with the byte length", () => {
    const w = safetensors({ "model.norm.weight": { dtype: "F16", shape: [64], data_offsets: [0, 256] } }, f32(64));
    expectCleanError(airllm(["run", modelDir("bad-len", w), "-p", "x"]), /model\.norm\.weight/);
  });
  test("prompt longer than the context", () => {
    const r = airllm(["run", STORIES_HF, "--ctx", "4", "-p", "Once upon a time there was"]);
    expectCleanError(r, /context/);
  });
  test("a memory budget too small for even the prompt's context names each part and what would fit", () => {
    const r = airllm(["run", STORIES_HF, "--device", "cpu", "--max-memory", "16KiB", "-p", "Once upon a time"]);
    expectCleanError(r, /cannot hold a context of \d+ tokens: activations.*KiB, KV cache .*B, streaming ring .*B/);
    expect(r.stderr).toMatch(/hint: the smallest budget that fits is about .*--max-memory/);
  });
  test("unknown option and missing model", () => {
    expectCleanError(airllm(["run", STORIES_HF, "--bogus"]), /--bogus/);
    expectCleanError(airllm(["run"]), /no model/);
    expectCleanError(airllm(["run", join(work, "nowhere"), "-p", "x"]), /nowhere/);
  });
});
