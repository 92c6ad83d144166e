// The model-loading flags every command shares (src/cli/model-flags.ts), translated into
// AutoModel options: --exact-activations reaches from_pretrained's exact_activations.
import { expect, test } from "bun:test";
import { Flags, parseArgs } from "../src/cli/args.ts";
import { BENCH_FLAGS } from "../src/cli/bench-command.ts";
import { CHAT_FLAGS } from "../src/cli/chat-command.ts";
import { LOGITS_FLAGS } from "../src/cli/logits-command.ts";
import { MODEL_FLAGS, modelOptions } from "../src/cli/model-flags.ts";
import { RUN_FLAGS } from "../src/cli/run-command.ts";
import { SERVE_FLAGS } from "../src/cli/serve-command.ts";

const options = (argv: string[]) => modelOptions(new Flags(parseArgs(argv, MODEL_FLAGS, "run")), () => {});

test("--exact-activations sets exact_activations; without it the default (int8) path is left alone", () => {
  expect(options(["m.gguf", "--exact-activations"]).exact_activations).toBe(true);
  expect(options(["m.gguf"]).exact_activations).toBeUndefined();
});

test("run, chat, serve, bench and logits all take --exact-activations", () => {
  for (const flags of [RUN_FLAGS, CHAT_FLAGS, SERVE_FLAGS, BENCH_FLAGS, LOGITS_FLAGS]) {
    expect(flags.some((f) => f.name === "exact-activations" && f.value === undefined)).toBe(true);
  }
});
