#!/usr/bin/env bun
// The `airllm` executable. The only place that turns errors into exit codes: library code throws,
// this prints one line (plus a hint) on stderr and exits non-zero, never a stack trace for a
// user error.
import { AirLLMError } from "../errors.ts";
import { benchCommand } from "./bench-command.ts";
import { chatCommand } from "./chat-command.ts";
import { logitsCommand } from "./logits-command.ts";
import { planCommand } from "./plan-command.ts";
import { runCommand } from "./run-command.ts";
import { selftestCommand } from "./selftest-command.ts";
import { serveCommand } from "./serve-command.ts";
import { splitCommand } from "./split-command.ts";
import { tokenizeCommand } from "./tokenize-command.ts";
import pkg from "../../package.json" with { type: "json" };

const HELP = `airllm ${pkg.version}: run large language models layer by layer, on a GPU smaller than the model or on the CPU

usage:
  airllm run MODEL [options]     generate text (airllm run --help for every option)
  airllm chat MODEL [options]    chat in the terminal, in the model's chat template
  airllm serve MODEL [options]   OpenAI-compatible HTTP server, concurrent requests batched
  airllm logits MODEL --ids L -o F   write the logits of every position (raw f32)
  airllm plan MODEL [options]    the memory plan for a budget, from the headers alone (no GPU needed)
  airllm bench MODEL [options]   time prefill and decode, with bytes streamed per pass
  airllm split MODEL [--out DIR] write AirLLM's per-layer split (splitted_model/), resumable
  airllm tokenize MODEL TEXT     print the token ids of TEXT (--ids: decode ids back)
  airllm selftest                check the CUDA backend against the CPU on this machine
  airllm --version               print the version
  airllm --help                  this help

MODEL is a Hugging Face model folder (config.json, model.safetensors or sharded
model-*.safetensors with model.safetensors.index.json, or pytorch_model*.bin; tokenizer.json,
tokenizer.model or qwen.tiktoken), an AirLLM split folder (splitted_model/, made by
airllm split), or a llama.cpp .gguf file.
`;

type Command = (argv: readonly string[], out: (s: string) => void, err: (s: string) => void) => Promise<number>;

const COMMANDS: Record<string, Command> = {
  run: runCommand,
  chat: chatCommand,
  serve: serveCommand,
  logits: logitsCommand,
  plan: planCommand,
  bench: benchCommand,
  selftest: selftestCommand,
  split: splitCommand,
  tokenize: tokenizeCommand,
};

const out = (s: string) => void process.stdout.write(s);
const err = (s: string) => void process.stderr.write(s);

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === undefined || command === "--help" || command === "-h" || command === "help") {
    out(HELP);
    return command === undefined ? 2 : 0;
  }
  if (command === "--version" || command === "-V") {
    out(`airllm ${pkg.version}\n`);
    return 0;
  }
  const run = COMMANDS[command];
  if (!run) {
    err(`airllm: unknown command "${command}"\nhint: commands are ${Object.keys(COMMANDS).join(", ")}; see airllm --help\n`);
    return 2;
  }
  try {
    return await run(rest, out, err);
  } catch (e) {
    if (e instanceof AirLLMError) {
      err(`airllm: error: ${e.message}\n`);
      if (e.hint) err(`hint: ${e.hint}\n`);
      return 1;
    }
    const message = e instanceof Error ? e.message : String(e);
    err(`airllm: internal error: ${message}\nhint: this is a bug in airllm; rerun with AIRLLM_DEBUG=1 for the stack trace and report it\n`);
    if (process.env.AIRLLM_DEBUG) err(`${(e as Error).stack}\n`);
    return 3;
  }
}

const code = await main(process.argv.slice(2));
// Flush stdout before exiting: a pipe may still hold streamed text.
process.stdout.write("", () => process.exit(code));
