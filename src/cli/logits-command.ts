// `airllm logits MODEL --ids 1,2,3 --out FILE`: one prefill pass, the logits of every position
// written as raw little-endian f32 [T, vocab]. For comparing with other implementations
// (transformers, llama.cpp) and for scoring text.
import { writeFileSync } from "node:fs";
import { UsageError } from "../errors.ts";
import { AutoModel } from "../model/auto-model.ts";
import { Flags, flagHelp, parseArgs, type FlagSpec } from "./args.ts";
import { resolveModelArg } from "./hub-resolve.ts";
import { MODEL_FLAGS, modelOptions } from "./model-flags.ts";

const FLAGS: readonly FlagSpec[] = [
  { name: "ids", value: "LIST", help: "comma-separated token ids (fed as they are)" },
  { name: "prompt", short: "p", value: "TEXT", help: "text to encode instead of --ids (BOS per the tokenizer config)" },
  { name: "out", short: "o", value: "FILE", help: "where to write the f32 logits [tokens, vocab]" },
  ...MODEL_FLAGS,
  { name: "help", short: "h", help: "show this help" },
];

export const LOGITS_HELP = `usage: airllm logits MODEL (--ids LIST | -p TEXT) --out FILE [options]

Runs one pass over the tokens and writes the logits of every position as raw f32.

options:
${flagHelp(FLAGS)}
`;

export async function logitsCommand(argv: readonly string[], out: (s: string) => void, err: (s: string) => void): Promise<number> {
  const parsed = parseArgs(argv, FLAGS, "logits");
  const f = new Flags(parsed);
  if (f.has("help")) {
    out(LOGITS_HELP);
    return 0;
  }
  if (parsed.positionals.length !== 1) throw new UsageError("expected one model folder", "airllm logits MODEL --ids 1,2,3 --out logits.f32");
  const file = f.string("out");
  if (!file) throw new UsageError("--out FILE is required");
  const ids = f.has("ids")
    ? f.string("ids")!.split(",").map((s) => {
        const v = Number(s);
        if (s.trim() === "" || !Number.isInteger(v) || v < 0) throw new UsageError(`--ids: "${s}" is not a token id`);
        return v;
      })
    : null;
  const model = await AutoModel.from_pretrained(await resolveModelArg(parsed.positionals[0], f, err, { mustRun: true }), {
    ...modelOptions(f, err),
    // One pass needs a cache only as long as the prompt.
    max_seq_len: ids ? Math.max(1, ids.length) : undefined,
    min_seq_len: ids ? Math.max(1, ids.length) : undefined,
  });
  try {
    const tokens = ids ?? model.encodePrompt(f.string("prompt") ?? "");
    const seq = model.newSequence();
    const [logits] = model.forward([seq], [tokens], { allLogits: true });
    seq.dispose();
    writeFileSync(file, new Uint8Array(logits.buffer, logits.byteOffset, logits.byteLength));
    err(`airllm: wrote ${tokens.length} × ${model.config.vocabSize} logits to ${file} (backend ${model.backend.name})\n`);
    return 0;
  } finally {
    model.dispose();
  }
}
