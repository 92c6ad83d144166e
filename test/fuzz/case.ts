// What one fuzz case is: inputs written into a fresh folder, how the real binary is run on them,
// and what a correct binary must do — fail with a clear error ("error"), succeed ("ok"), or
// either ("either": a mutation that may still leave a valid model, such as a flipped weight bit).
import { copyFileSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ROOT, SHARED, STORIES_HF } from "../paths.ts";
import type { Rng } from "./rng.ts";

export type Expect = "error" | "ok" | "either";

/** Where the binary's stdout goes (the output-failure cases), and what its stdin is. */
export type StdoutMode = "pipe" | "devfull" | "closed" | "head";
export type StdinMode = "null" | "closed" | { readonly bytes: Uint8Array };

export interface Invocation {
  readonly args: readonly string[];
  readonly stdout?: StdoutMode;
  readonly stdin?: StdinMode;
}

export interface Case {
  /** "<family>/<n>": with the seed, enough to rerun it alone. */
  readonly id: string;
  readonly family: string;
  /** The mutation, in words: what the report lists. */
  readonly what: string;
  readonly expect: Expect;
  /** A count or size far beyond the input: its peak RSS must stay under the bound. */
  readonly hugeCount?: boolean;
  /** Writes the case's inputs under `dir` and says how to run the binary there (some inputs are made by running it first). */
  build(dir: string, binary: string): Invocation;
}

/** A family makes its `n`-th case from its generator. */
export type Family = (rng: Rng, n: number) => Omit<Case, "id" | "family">;

export const BASES = {
  /** stories260K as a Hugging Face folder: F32, tied, SentencePiece-style BPE tokenizer.json. */
  hf: STORIES_HF,
  /** The same model as GGUF v1 (32-bit counts), F32, tokenizer inside. */
  ggufV1: join(SHARED, "models/stories260K/tinyllamas-stories-260k-f32.gguf"),
  /** GGUF v3, F16 matrices, the full 32000-token Llama-2 vocabulary. */
  ggufV3: join(SHARED, "models/tiny-random-gguf/llama-2-tiny-random.gguf"),
  /** GGUF v3 with Q8_0 matrices (llama.cpp's quantizer). */
  ggufQ8: join(ROOT, "test/fixtures/gguf-models/llama-q8_0.gguf"),
  /** GGUF v3 Mixtral (6 experts merged per layer), F32, a 128-piece vocabulary: driven by ids. */
  ggufMixtral: join(ROOT, "test/fixtures/gguf-arch/mixtral-f32.gguf"),
  /** Mixtral and Qwen2 fixtures without a tokenizer: driven by ids through `logits`. */
  mixtral: join(ROOT, "test/fixtures/hf-moe/mixtral"),
  qwen2: join(ROOT, "test/fixtures/hf/qwen2"),
} as const;

export const HF_FILES = ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "generation_config.json"] as const;

/**
 * A model folder at `dir/model` with `changed` files written and the rest linked to `base` (large
 * weights are not copied for a config mutation).
 */
export function modelFolder(dir: string, base: string, changed: Readonly<Record<string, Uint8Array | string>>, files: readonly string[] = HF_FILES): string {
  const model = join(dir, "model");
  Bun.spawnSync(["mkdir", "-p", model]);
  for (const f of files) {
    if (Object.hasOwn(changed, f)) writeFileSync(join(model, f), changed[f]!);
    else if (f === "model.safetensors") symlinkSync(join(base, f), join(model, f));
    else copyFileSync(join(base, f), join(model, f));
  }
  for (const [f, v] of Object.entries(changed)) if (!files.includes(f)) writeFileSync(join(model, f), v);
  return model;
}

/** How a model is run by default: a short generation on the CPU. */
export function runArgs(model: string): string[] {
  return ["run", model, "-p", "Once upon a time", "-n", "4", "--device", "cpu"];
}

/** The commands a case may run on its model. */
export type Command = "run" | "logits" | "bench" | "split";

/**
 * A command picked by `rng`: run mostly, also logits (ids 1,2,3: BOS first, as every prompt) and
 * bench (random ids); split only where asked (it copies weights without computing with them).
 */
export function pickCommand(rng: Rng, opts: { split?: boolean; tokenizer?: boolean } = {}): Command {
  const r = rng.next();
  if (opts.split && r < 0.1) return "split";
  if (opts.tokenizer === false || r < 0.25) return "logits";
  if (r < 0.35) return "bench";
  return "run";
}

export function commandArgs(command: Command, model: string, dir: string): string[] {
  switch (command) {
    case "run":
      return runArgs(model);
    case "logits":
      return ["logits", model, "--ids", "1,2,3", "-o", join(dir, "logits.f32"), "--device", "cpu"];
    case "bench":
      return ["bench", model, "--prompt-tokens", "8", "--decode-tokens", "2", "--device", "cpu"];
    case "split":
      return ["split", model, "--out", join(dir, "out")];
  }
}
