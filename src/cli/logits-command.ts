// `airllm logits MODEL --ids 1,2,3 --out FILE`: one prefill pass, the logits of every position
// written as raw little-endian f32 [T, vocab]. For comparing with other implementations
// (transformers, llama.cpp) and for scoring text.
import { writeFileSync } from "node:fs";
import { dirname } from "node:path";
import { errnoCode, IoError, UsageError } from "../errors.ts";
import { pathKind } from "../formats/input-files.ts";
import { AutoModel } from "../model/auto-model.ts";
import { inspectModelSource } from "../model/model-source.ts";
import { quote } from "../util/validate.ts";
import { Flags, flagHelp, parseArgs, type FlagSpec } from "./args.ts";
import { resolveModelArg } from "./hub-resolve.ts";
import { MODEL_FLAGS, modelOptions } from "./model-flags.ts";
import { checkIdsFit, checkPromptFits, readPromptText } from "./prompt-input.ts";

export const LOGITS_FLAGS: readonly FlagSpec[] = [
  { name: "ids", value: "LIST", help: "comma-separated token ids (fed as they are)" },
  { name: "prompt", short: "p", value: "TEXT", help: "text to encode instead of --ids (BOS per the tokenizer config)" },
  { name: "out", short: "o", value: "FILE", help: "where to write the f32 logits [tokens, vocab]" },
  ...MODEL_FLAGS,
  { name: "help", short: "h", help: "show this help" },
];

export const LOGITS_HELP = `usage: airllm logits MODEL (--ids LIST | -p TEXT) --out FILE [options]

Runs one pass over the tokens and writes the logits of every position as raw f32.

options:
${flagHelp(LOGITS_FLAGS)}
`;

export async function logitsCommand(argv: readonly string[], out: (s: string) => void, err: (s: string) => void): Promise<number> {
  const parsed = parseArgs(argv, LOGITS_FLAGS, "logits");
  const f = new Flags(parsed);
  if (f.has("help")) {
    out(LOGITS_HELP);
    return 0;
  }
  if (parsed.positionals.length !== 1) throw new UsageError("expected one model folder", "airllm logits MODEL --ids 1,2,3 --out logits.f32");
  if (f.has("ids") && f.has("prompt")) throw new UsageError("give only one of --ids, --prompt", "the tokens come from --ids LIST or from -p TEXT");
  const file = f.path("out");
  if (file === undefined) throw new UsageError("--out FILE is required", "airllm logits MODEL --ids 1,2,3 --out logits.f32");
  checkOutputPath(file);
  const options = modelOptions(f, err);

  // The tokens first, from the headers alone: how many the model can take bounds them.
  const path = await resolveModelArg(parsed.positionals[0], f, err, { mustRun: true });
  const headers = inspectModelSource(path);
  let tokens: number[];
  try {
    const maxPos = headers.config.maxPositionEmbeddings;
    if (f.has("ids")) {
      tokens = f.ids("ids", maxPos)!;
    } else {
      const tokenizer = headers.tokenizer();
      tokens = tokenizer.encode(readPromptText({ text: f.string("prompt") ?? "" }, tokenizer, maxPos));
    }
    checkIdsFit(tokens, headers.config.vocabSize, headers.configName, !f.has("ids"));
    if (tokens.length === 0) throw new UsageError("no tokens to run: --ids is empty or the prompt encodes to nothing", "pass --ids 1,2,3 or a non-empty -p TEXT");
    // One pass: the prompt may fill the whole context (no new token follows).
    checkPromptFits(tokens.length - 1, maxPos, false);
  } finally {
    headers.close();
  }
  const model = await AutoModel.from_pretrained(path, {
    ...options,
    // One pass needs a cache only as long as the prompt.
    max_seq_len: tokens.length,
    min_seq_len: tokens.length,
  });
  try {
    const seq = model.newSequence();
    const [logits] = model.forward([seq], [tokens], { allLogits: true });
    seq.dispose();
    try {
      writeFileSync(file, new Uint8Array(logits.buffer, logits.byteOffset, logits.byteLength));
    } catch (e) {
      if (errnoCode(e) === undefined) throw e;
      throw new IoError(`cannot write the logits to ${quote(file, 200)}: ${(e as Error).message}`, "pass --out a file path on a disk with room");
    }
    err(`airllm: wrote ${tokens.length} × ${model.config.vocabSize} logits to ${quote(file, 200)} (backend ${model.backend.name})\n`);
    return 0;
  } finally {
    model.dispose();
  }
}

/** Refuses, before the model loads, an --out that cannot be a file: a folder, or a path in no folder. */
function checkOutputPath(file: string): void {
  const kind = pathKind(file);
  if (kind === "dir") throw new UsageError(`--out ${quote(file, 200)} is a folder`, "pass --out the path of the file to write, e.g. logits.f32");
  if (pathKind(dirname(file)) !== "dir") throw new IoError(`--out ${quote(file, 200)}: the folder ${quote(dirname(file), 200)} does not exist`, "create the folder first, or write the file elsewhere");
}
