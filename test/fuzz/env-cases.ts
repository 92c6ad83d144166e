// The environment around a run: where stdout goes (a full device, a closed descriptor, a reader
// that leaves after one byte), stdin closed or endless, output paths that cannot be written, and
// model files that are FIFOs, devices, folders, broken or looping links, or damaged splits.
import { copyFileSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { BASES, commandArgs, HF_FILES, modelFolder, runArgs, type Expect, type Family, type Invocation } from "./case.ts";
import { ROOT, SHARED } from "../paths.ts";

interface EnvCase {
  readonly what: string;
  readonly expect: Expect;
  readonly hugeCount?: boolean;
  build(dir: string, binary: string): Invocation;
}

const fifo = (path: string) => Bun.spawnSync(["mkfifo", path]);

/** A model folder whose `file` is replaced by `make(path)` (a FIFO, a folder, a link). */
function replaced(dir: string, file: string, make: (path: string) => void): string {
  const model = modelFolder(dir, BASES.hf, {}, HF_FILES.filter((f) => f !== file));
  make(join(model, file));
  return model;
}

const TEN_MB = 10 * 2 ** 20;

const CASES: EnvCase[] = [
  { what: "stdout on /dev/full", expect: "error", build: (d) => ({ args: runArgs(modelFolder(d, BASES.hf, {})), stdout: "devfull" }) },
  { what: "stdout closed", expect: "error", build: (d) => ({ args: runArgs(modelFolder(d, BASES.hf, {})), stdout: "closed" }) },
  { what: "stdout read by head -c1 (EPIPE ends quietly)", expect: "ok", build: (d) => ({ args: ["run", modelFolder(d, BASES.hf, {}), "-p", "Once", "-n", "200", "--device", "cpu"], stdout: "head" }) },
  { what: "stdin closed, prompt from stdin", expect: "error", build: (d) => ({ args: ["run", modelFolder(d, BASES.hf, {}), "-n", "4", "--device", "cpu"], stdin: "closed" }) },
  { what: "stdin closed, prompt from -p", expect: "ok", build: (d) => ({ args: runArgs(modelFolder(d, BASES.hf, {})), stdin: "closed" }) },
  { what: "a 10 MB prompt on stdin", expect: "error", hugeCount: true, build: (d) => ({ args: ["run", modelFolder(d, BASES.hf, {}), "-n", "4", "--device", "cpu"], stdin: { bytes: new Uint8Array(TEN_MB).fill(0x61) } }) },
  {
    what: "a 10 MB prompt file", expect: "error", hugeCount: true, build: (d) => {
      writeFileSync(join(d, "big.txt"), new Uint8Array(TEN_MB).fill(0x61));
      return { args: ["run", modelFolder(d, BASES.hf, {}), "-f", join(d, "big.txt"), "-n", "4", "--device", "cpu"] };
    },
  },
  { what: "-f /dev/zero", expect: "error", hugeCount: true, build: (d) => ({ args: ["run", modelFolder(d, BASES.hf, {}), "-f", "/dev/zero", "-n", "4", "--device", "cpu"] }) },
  { what: "-f a folder", expect: "error", build: (d) => ({ args: ["run", modelFolder(d, BASES.hf, {}), "-f", d, "-n", "4", "--device", "cpu"] }) },
  { what: "logits -o a folder", expect: "error", build: (d) => ({ args: ["logits", modelFolder(d, BASES.hf, {}), "--ids", "1,2", "-o", d, "--device", "cpu"] }) },
  { what: "logits -o in a missing folder", expect: "error", build: (d) => ({ args: ["logits", modelFolder(d, BASES.hf, {}), "--ids", "1,2", "-o", join(d, "no/such/l.f32"), "--device", "cpu"] }) },
  { what: "logits -o /dev/full", expect: "error", build: (d) => ({ args: ["logits", modelFolder(d, BASES.hf, {}), "--ids", "1,2", "-o", "/dev/full", "--device", "cpu"] }) },
  ...["config.json", "tokenizer.json", "tokenizer_config.json", "generation_config.json", "model.safetensors"].map((f): EnvCase => ({
    what: `${f} is a FIFO`, expect: "error", build: (d) => ({ args: runArgs(replaced(d, f, fifo)) }),
  })),
  ...["config.json", "model.safetensors", "tokenizer.json"].map((f): EnvCase => ({
    what: `${f} is a broken symbolic link`, expect: "error", build: (d) => ({ args: runArgs(replaced(d, f, (p) => symlinkSync(join(d, "gone"), p))) }),
  })),
  // The remote-code families' tokenizer files and PyTorch shards go through the same check.
  ...([["internlm2", "tokenizer.model"], ["qwen", "qwen.tiktoken"]] as const).map(([family, f]): EnvCase => ({
    what: `${f} (${family}) is a FIFO`, expect: "error", build: (d) => {
      const model = join(d, "model");
      mkdirSync(model);
      for (const side of ["config.json", "tokenizer_config.json"]) copyFileSync(join(SHARED, "refcode", family, side), join(model, side));
      fifo(join(model, f));
      return { args: ["tokenize", model, "Once upon a time"] };
    },
  })),
  {
    what: "a pytorch_model.bin shard is a FIFO", expect: "error", build: (d) => {
      const base = join(ROOT, "test/fixtures/torch-bin/llama-bin");
      const shard = "pytorch_model-00001-of-00002.bin";
      const model = modelFolder(d, base, {}, ["config.json", "generation_config.json", "pytorch_model-00002-of-00002.bin", "pytorch_model.bin.index.json"]);
      fifo(join(model, shard));
      return { args: commandArgs("logits", model, d) };
    },
  },
  { what: "config.json is a link to itself", expect: "error", build: (d) => ({ args: runArgs(replaced(d, "config.json", (p) => symlinkSync(p, p))) }) },
  { what: "config.json is a folder", expect: "error", build: (d) => ({ args: runArgs(replaced(d, "config.json", (p) => mkdirSync(p))) }) },
  { what: "model.safetensors is /dev/zero", expect: "error", build: (d) => ({ args: runArgs(replaced(d, "model.safetensors", (p) => symlinkSync("/dev/zero", p))) }) },
  { what: "the model is a FIFO named .gguf", expect: "error", build: (d) => (fifo(join(d, "m.gguf")), { args: runArgs(join(d, "m.gguf")) }) },
  { what: "the model is /dev/null", expect: "error", build: () => ({ args: runArgs("/dev/null") }) },
  { what: "the model is an empty .gguf", expect: "error", build: (d) => (writeFileSync(join(d, "e.gguf"), ""), { args: runArgs(join(d, "e.gguf")) }) },
  {
    what: "a shard index naming a FIFO", expect: "error", build: (d) => {
      const model = modelFolder(d, BASES.hf, { "model.safetensors.index.json": JSON.stringify({ weight_map: { "model.norm.weight": "shard.safetensors" } }) }, HF_FILES.filter((f) => f !== "model.safetensors"));
      fifo(join(model, "shard.safetensors"));
      return { args: runArgs(model) };
    },
  },
  {
    what: "a shard index naming ../config.json", expect: "error", build: (d) => ({
      args: runArgs(modelFolder(d, BASES.hf, { "model.safetensors.index.json": JSON.stringify({ weight_map: { "model.norm.weight": "../config.json" } }) }, HF_FILES.filter((f) => f !== "model.safetensors"))),
    }),
  },
  {
    what: "split: a side file cannot be copied (config.json is a folder in the split)", expect: "error", build: (d) => {
      const model = modelFolder(d, BASES.hf, {});
      mkdirSync(join(d, "out/splitted_model/config.json"), { recursive: true });
      return { args: ["split", model, "--out", join(d, "out")] };
    },
  },
  {
    what: "split --out inside a file", expect: "error", build: (d) => {
      writeFileSync(join(d, "file"), "");
      return { args: ["split", modelFolder(d, BASES.hf, {}), "--out", join(d, "file/out")] };
    },
  },
  {
    // A split file of the right size with a damaged header and its .done marker: a resumed
    // compression must redo it, so the run that follows works.
    what: "run --compression 8bit over a damaged split file marked done", expect: "ok", build: (d, binary) => {
      const model = modelFolder(d, BASES.hf, {});
      Bun.spawnSync([binary, "split", model, "--compression", "8bit"], { stdout: "ignore", stderr: "ignore" });
      const file = join(model, "splitted_model.8bit/model.layers.2.safetensors");
      const bytes = new Uint8Array(readFileSync(file));
      bytes[12] ^= 0x20; // inside the header JSON: a quote or brace no longer where it belongs
      writeFileSync(file, bytes);
      return { args: ["run", model, "-p", "Once", "-n", "2", "--device", "cpu", "--compression", "8bit"] };
    },
  },
];

export const envFamily: Family = (rng) => {
  const c = rng.pick(CASES);
  return { what: c.what, expect: c.expect, hugeCount: c.hugeCount, build: (dir, binary) => c.build(dir, binary) };
};

/** Every environment case once, for the test that covers them all. */
export const ENV_CASE_COUNT = CASES.length;
export function envCase(i: number): ReturnType<Family> {
  const c = CASES[i]!;
  return { what: c.what, expect: c.expect, hugeCount: c.hugeCount, build: (dir, binary) => c.build(dir, binary) };
}
