// The sampling flags shared by `run` and `chat`, and their translation into generation options.
import type { GenerateOptions } from "../engine/generate.ts";
import type { FlagSpec, Flags } from "./args.ts";

export const SAMPLING_FLAGS: readonly FlagSpec[] = [
  { name: "temp", value: "T", help: "sampling temperature; 0 = greedy (default: generation_config.json, else 0)" },
  { name: "top-k", value: "K", help: "keep the K most likely tokens (0 = off)" },
  { name: "top-p", value: "P", help: "keep the smallest set of tokens with probability mass P (1 = off)" },
  { name: "min-p", value: "P", help: "drop tokens less likely than P × the most likely (0 = off)" },
  { name: "repeat-penalty", value: "R", help: "divide positive logits of seen tokens by R, multiply negative ones (1 = off)" },
  { name: "seed", value: "S", help: "random seed: the same seed gives the same output" },
  { name: "stop", value: "STR", repeat: true, help: "stop when STR appears (repeatable); STR is not printed" },
];

/** Generation options from the sampling flags (unset ones fall back to generation_config.json). */
export function samplingOptions(f: Flags, maxNewTokens: number | undefined): GenerateOptions {
  return {
    maxNewTokens,
    temperature: f.number("temp"),
    topK: f.number("top-k", { integer: true }),
    topP: f.number("top-p"),
    minP: f.number("min-p"),
    repetitionPenalty: f.number("repeat-penalty"),
    seed: f.number("seed", { integer: true }),
    stop: f.all("stop"),
  };
}
