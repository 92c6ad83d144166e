// The hub's pure parts: how an id is read, where the cache and the token come from (as Python's
// huggingface_hub reads them), which files of a repo are fetched, the disk verdict and the
// progress line's figures.
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { homedir, tmpdir } from "node:os";
import { join } from "node:path";
import { formatEta, progressText } from "../src/cli/download-progress.ts";
import { chooseFiles, ggufQuantMatches, shardsOfIndex } from "../src/hub/file-choice.ts";
import { diskCheck } from "../src/hub/fit-check.ts";
import { parseHubId } from "../src/hub/hub-id.ts";
import { hubSettings } from "../src/hub/hub-settings.ts";
import { AirLLMError } from "../src/errors.ts";

/** `f` throws one of our errors, with a hint, whose message matches `re`. */
function expectError(f: () => unknown, re: RegExp): void {
  let caught: unknown;
  try {
    f();
  } catch (e) {
    caught = e;
  }
  expect(caught).toBeInstanceOf(AirLLMError);
  expect((caught as AirLLMError).message).toMatch(re);
  expect((caught as AirLLMError).hint).toBeString();
}

describe("hub ids", () => {
  test("ORG/NAME, @REVISION and :QUANT", () => {
    expect(parseHubId("garage-bAInd/Platypus2-70B-instruct")).toEqual({ repo: "garage-bAInd/Platypus2-70B-instruct", revision: "main", quant: null });
    expect(parseHubId("org/name@v1.0")).toEqual({ repo: "org/name", revision: "v1.0", quant: null });
    expect(parseHubId("org/name@refs/pr/1")).toEqual({ repo: "org/name", revision: "refs/pr/1", quant: null });
    expect(parseHubId("bartowski/Llama-3.2-1B-Instruct-GGUF:Q4_K_M")).toEqual({ repo: "bartowski/Llama-3.2-1B-Instruct-GGUF", revision: "main", quant: "Q4_K_M" });
    expect(parseHubId("org/name@0123456789abcdef0123456789abcdef01234567:Q8_0")).toEqual({ repo: "org/name", revision: "0123456789abcdef0123456789abcdef01234567", quant: "Q8_0" });
  });
  test("paths are not ids", () => {
    for (const p of ["./org/name", "/abs/org/name", "../x/y", "a/b/c", "model.gguf", "name", "org/", "org/..", "~/x"]) expect(parseHubId(p)).toBeNull();
  });
  test("a revision with empty or dot segments is refused", () => {
    expectError(() => parseHubId("org/name@refs//x"), /revision/);
    expectError(() => parseHubId("org/name@../main"), /revision/);
  });
});

describe("settings, read as huggingface_hub reads them", () => {
  const home = mkdtempSync(join(tmpdir(), "airllm-hfhome-"));
  test("cache: HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub", () => {
    expect(hubSettings({}, { HF_HUB_CACHE: "/c", HF_HOME: "/h" }).cacheDir).toBe("/c");
    expect(hubSettings({}, { HF_HOME: "/h" }).cacheDir).toBe("/h/hub");
    expect(hubSettings({}, {}).cacheDir).toBe(join(homedir(), ".cache/huggingface/hub"));
    expect(hubSettings({}, { XDG_CACHE_HOME: "/x" }).cacheDir).toBe("/x/huggingface/hub");
  });
  test("token: --token, else HF_TOKEN, else the token file in HF_HOME", () => {
    writeFileSync(join(home, "token"), "hf_from_file\n");
    expect(hubSettings({ token: "hf_flag" }, { HF_TOKEN: "hf_env", HF_HOME: home })).toMatchObject({ token: "hf_flag", tokenSource: "--token" });
    expect(hubSettings({}, { HF_TOKEN: "hf_env", HF_HOME: home })).toMatchObject({ token: "hf_env", tokenSource: "HF_TOKEN" });
    expect(hubSettings({}, { HF_HOME: home })).toMatchObject({ token: "hf_from_file", tokenSource: join(home, "token") });
    expect(hubSettings({}, { HF_HOME: join(home, "none") }).token).toBeNull();
  });
  test("endpoint and offline", () => {
    expect(hubSettings({}, {}).endpoint).toBe("https://huggingface.co");
    expect(hubSettings({}, { HF_ENDPOINT: "http://127.0.0.1:9/" }).endpoint).toBe("http://127.0.0.1:9");
    for (const v of ["1", "true", "YES", "on"]) expect(hubSettings({}, { HF_HUB_OFFLINE: v }).offline).toBe(true);
    for (const v of ["0", "", "false"]) expect(hubSettings({}, { HF_HUB_OFFLINE: v }).offline).toBe(false);
    expect(hubSettings({ offline: true }, {}).offline).toBe(true);
  });
  afterAll(() => rmSync(home, { recursive: true, force: true }));
});

describe("which files are fetched", () => {
  const o = { quant: null, readsPytorchBin: false };
  // The file list of meta-llama/Llama-3.1-8B-Instruct on the hub (names only).
  const llama = [
    ".gitattributes", "LICENSE", "README.md", "USE_POLICY.md", "config.json", "generation_config.json",
    "model-00001-of-00004.safetensors", "model-00002-of-00004.safetensors", "model-00003-of-00004.safetensors", "model-00004-of-00004.safetensors",
    "model.safetensors.index.json", "original/consolidated.00.pth", "original/params.json", "original/tokenizer.model",
    "special_tokens_map.json", "tokenizer.json", "tokenizer_config.json",
  ];
  test("sharded safetensors: config, tokenizer, index; never original/ or the .pth", () => {
    const c = chooseFiles("meta-llama/Llama-3.1-8B-Instruct", llama, o);
    expect(c.kind).toBe("safetensors");
    expect(c.index).toBe("model.safetensors.index.json");
    expect([...c.small].sort()).toEqual(["config.json", "generation_config.json", "model.safetensors.index.json", "special_tokens_map.json", "tokenizer.json", "tokenizer_config.json"]);
    const shards = shardsOfIndex("model.safetensors.index.json", { weight_map: { a: "model-00002-of-00004.safetensors", b: "model-00001-of-00004.safetensors", c: "model-00001-of-00004.safetensors" } });
    expect(shards).toEqual(["model-00001-of-00004.safetensors", "model-00002-of-00004.safetensors"]);
  });
  test("a repo with safetensors and .bin gets the safetensors only", () => {
    const c = chooseFiles("x/y", ["config.json", "model.safetensors", "pytorch_model.bin", "tokenizer.json", "flax_model.msgpack", "onnx/model.onnx"], o);
    expect(c).toMatchObject({ kind: "safetensors", weights: ["model.safetensors"], index: null });
    expect(c.small).toEqual(["config.json", "tokenizer.json"]);
  });
  test(".bin only: refused before any download unless a safe reader exists", () => {
    expectError(() => chooseFiles("x/y", ["config.json", "pytorch_model.bin"], o), /no weights airllm reads.*pytorch_model\.bin/);
    expect(chooseFiles("x/y", ["config.json", "pytorch_model.bin"], { ...o, readsPytorchBin: true })).toMatchObject({ kind: "pytorch-bin", weights: ["pytorch_model.bin"] });
    expect(chooseFiles("x/y", ["config.json", "pytorch_model.bin.index.json", "pytorch_model-00001-of-00002.bin"], { ...o, readsPytorchBin: true })).toMatchObject({ kind: "pytorch-bin", index: "pytorch_model.bin.index.json" });
  });
  test("an index naming a shard outside the repo is refused", () => {
    expectError(() => shardsOfIndex("model.safetensors.index.json", { weight_map: { a: "../../etc/passwd" } }), /unsafe shard/);
  });
  // The file list of bartowski/Llama-3.2-1B-Instruct-GGUF (a subset).
  const gguf = ["README.md", "Llama-3.2-1B-Instruct-IQ4_XS.gguf", "Llama-3.2-1B-Instruct-Q4_K_M.gguf", "Llama-3.2-1B-Instruct-Q4_K_L.gguf", "Llama-3.2-1B-Instruct-Q8_0.gguf", "Llama-3.2-1B-Instruct-f16.gguf"];
  test("GGUF: :QUANT picks one file; none given means Q4_K_M, as llama.cpp's -hf", () => {
    expect(chooseFiles("b/L", gguf, { ...o, quant: "Q8_0" }).ggufFile).toBe("Llama-3.2-1B-Instruct-Q8_0.gguf");
    expect(chooseFiles("b/L", gguf, { ...o, quant: "q4_k_m" }).ggufFile).toBe("Llama-3.2-1B-Instruct-Q4_K_M.gguf");
    expect(chooseFiles("b/L", gguf, o)).toMatchObject({ kind: "gguf", ggufFile: "Llama-3.2-1B-Instruct-Q4_K_M.gguf", weights: ["Llama-3.2-1B-Instruct-Q4_K_M.gguf"], small: [] });
    expectError(() => chooseFiles("b/L", gguf, { ...o, quant: "Q2_K" }), /no GGUF file of quantization Q2_K.*Q8_0/);
    expectError(() => chooseFiles("b/L", ["a-Q4_K_M-00001-of-00002.gguf", "a-Q4_K_M-00002-of-00002.gguf"], { ...o, quant: "Q4_K_M" }), /split into several GGUF files/);
  });
  test("quantization names match whole, in the usual spellings", () => {
    expect(ggufQuantMatches("model-Q4_K_M.gguf", "Q4_K_M")).toBe(true);
    expect(ggufQuantMatches("model.q4_k_m.gguf", "Q4_K_M")).toBe(true);
    expect(ggufQuantMatches("Q4_K_M/model-00001-of-00002.gguf", "Q4_K_M")).toBe(true);
    expect(ggufQuantMatches("model_Q4_K_M.gguf", "Q4_K_M")).toBe(true);
    expect(ggufQuantMatches("model-Q4_K_M.gguf", "Q4_K")).toBe(false);
    expect(ggufQuantMatches("model-IQ4_XS.gguf", "Q4_XS")).toBe(false);
  });
});

describe("the fit check's verdict and the progress line", () => {
  test("the disk fits when what is missing is at most what is free", () => {
    const free = diskCheck(tmpdir(), 0, 0).freeBytes;
    expect(free).toBeGreaterThan(0);
    expect(diskCheck(tmpdir(), 2 * free, free).fits).toBe(true);
    expect(diskCheck(tmpdir(), 2 * free, free + 1).fits).toBe(false);
    expect(diskCheck(join(tmpdir(), "not", "yet", "made"), 1, 1).freeBytes).toBe(free);
  });
  test("bytes, rate and ETA", () => {
    expect(progressText({ totalBytes: 4 * 2 ** 30, doneBytes: 2 ** 30, files: 4, filesDone: 1 }, 2000)).toBe(
      "downloading 1.00 GiB / 4.00 GiB (25%) · 512.0 MiB/s · ETA 6 s · 1/4 files",
    );
    expect(formatEta(3725)).toBe("1 h 2 min");
    expect(formatEta(Infinity)).toBe("?");
  });
});
