#!/usr/bin/env bun
// The `airllm` executable. The only place that turns errors into exit codes: library code throws,
// reportError makes one line (plus a hint) on stderr and the exit status, never a stack trace for a
// user error — whether the error comes from a command, a stray callback or a failed write.
import { benchCommand } from "./bench-command.ts";
import { chatCommand } from "./chat-command.ts";
import { listCommand } from "./list-command.ts";
import { logitsCommand } from "./logits-command.ts";
import { planCommand } from "./plan-command.ts";
import { pullCommand } from "./pull-command.ts";
import { rmCommand } from "./rm-command.ts";
import { reportError } from "./report-error.ts";
import { runCommand } from "./run-command.ts";
import { selftestCommand } from "./selftest-command.ts";
import { serveCommand } from "./serve-command.ts";
import { splitCommand } from "./split-command.ts";
import { OutputClosed, writeStderr, writeStdout } from "./std-streams.ts";
import { UsageError } from "../errors.ts";
import { quote } from "../util/validate.ts";
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
  airllm pull ID                 download a model from the Hugging Face hub into its shared cache
  airllm list                    the models in that cache, with sizes and revisions
  airllm rm ORG/NAME             remove a model from the cache
  airllm selftest                check the CUDA backend against the CPU on this machine
  airllm --version               print the version
  airllm --help                  this help

MODEL is a Hugging Face model folder (config.json, model.safetensors or sharded
model-*.safetensors with model.safetensors.index.json, or pytorch_model*.bin; tokenizer.json,
tokenizer.model or qwen.tiktoken), an AirLLM split folder (splitted_model/, made by
airllm split), a llama.cpp .gguf file, or a hub id ORG/NAME[@REVISION][:QUANT]: found in the
Hugging Face cache, else downloaded there first (HF_HUB_OFFLINE=1 or --offline: the cache only;
--token or HF_TOKEN for gated models).
`;

type Command = (argv: readonly string[], out: (s: string) => void, err: (s: string) => void) => Promise<number>;

const COMMANDS: Readonly<Record<string, Command>> = {
  run: runCommand,
  chat: chatCommand,
  serve: serveCommand,
  logits: logitsCommand,
  plan: planCommand,
  bench: benchCommand,
  selftest: selftestCommand,
  split: splitCommand,
  tokenize: tokenizeCommand,
  pull: pullCommand,
  list: listCommand,
  rm: rmCommand,
};

const debug = Boolean(process.env.AIRLLM_DEBUG);

/** The exit status for `e`: 0 when stdout's reader left (as `head` expects), else the report's. */
function fail(e: unknown, command: string): number {
  if (e instanceof OutputClosed) return 0;
  const r = reportError(e, command, debug);
  writeStderr(r.text);
  return r.code;
}

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  try {
    if (command === undefined || command === "--help" || command === "-h" || command === "help") {
      writeStdout(HELP);
      return command === undefined ? 2 : 0;
    }
    if (command === "--version" || command === "-V") {
      writeStdout(`airllm ${pkg.version}\n`);
      return 0;
    }
  } catch (e) {
    return fail(e, "");
  }
  const run = Object.hasOwn(COMMANDS, command) ? COMMANDS[command] : undefined;
  if (!run) {
    writeStderr(reportError(new UsageError(`unknown command ${quote(command)}`, `commands are ${Object.keys(COMMANDS).join(", ")}; see airllm --help`), "", debug).text);
    return 2;
  }
  // Errors that escape the command's promise (a callback, a stream event) end the same way.
  const escaped = (e: unknown) => process.exit(fail(e, command));
  process.on("uncaughtException", escaped);
  process.on("unhandledRejection", escaped);
  try {
    return await run(rest, writeStdout, writeStderr);
  } catch (e) {
    return fail(e, command);
  }
}

// Writes are synchronous (std-streams.ts): nothing is left to flush.
process.exit(await main(process.argv.slice(2)));
