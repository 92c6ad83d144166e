// `airllm tokenize MODEL TEXT`: the token ids of TEXT, one per line with its vocabulary entry, from
// whatever tokenizer the model has (tokenizer.json, GGUF metadata, SentencePiece's tokenizer.model,
// tiktoken ranks). `--ids` goes the other way: TEXT is ids and the decoded text is printed. The
// quickest check of a tokenizer, as llama.cpp's llama-tokenize is; nothing but the tokenizer loads.
import { UsageError } from "../errors.ts";
import { openTokenizer } from "../tokenizer/load-tokenizer.ts";
import { Flags, flagHelp, parseArgs, type FlagSpec } from "./args.ts";
import { HUB_FLAGS } from "./hub-flags.ts";
import { resolveTokenizerArg } from "./hub-resolve.ts";

const FLAGS: readonly FlagSpec[] = [
  { name: "ids", help: "TEXT is token ids (comma- or space-separated): print their decoded text" },
  { name: "no-special", help: "add no BOS/prefix tokens (with --ids: leave special tokens out of the text)" },
  ...HUB_FLAGS,
  { name: "help", short: "h", help: "show this help" },
];

const HELP = `usage: airllm tokenize MODEL TEXT [--ids] [--no-special]

Prints the token ids of TEXT, one line each: the id, a tab, and the token's vocabulary entry as a
JSON string. Special-token text in TEXT ("<|im_start|>") becomes that token where the model's
tokenizer does so. MODEL is a model folder (tokenizer.json, tokenizer.model or qwen.tiktoken) or a
.gguf file, or a hub id (ORG/NAME): one the cache lacks brings only its config and tokenizer
files (a GGUF repo: its file). No weights are read.

options:
${flagHelp(FLAGS)}
`;

export async function tokenizeCommand(argv: readonly string[], out: (s: string) => void, err: (s: string) => void): Promise<number> {
  const parsed = parseArgs(argv, FLAGS, "tokenize");
  const f = new Flags(parsed);
  if (f.has("help")) {
    out(HELP);
    return 0;
  }
  if (parsed.positionals.length !== 2) {
    throw new UsageError(`expected MODEL and TEXT, got ${parsed.positionals.length} arguments`, 'airllm tokenize MODEL "some text" (quote the text), or airllm tokenize MODEL "1,2,3" --ids');
  }
  const [model, text] = parsed.positionals as [string, string];
  const special = !f.has("no-special");
  const { tokenizer, close } = openTokenizer(await resolveTokenizerArg(model, f, err));
  try {
    if (f.has("ids")) {
      const ids = text.split(/[\s,[\]]+/).filter((s) => s !== "").map((s) => {
        const v = Number(s);
        if (!Number.isSafeInteger(v) || v < 0) throw new UsageError(`--ids: "${s}" is not a token id`, "pass ids like 1,15043,3186");
        return v;
      });
      out(`${tokenizer.decode(ids, { skipSpecial: !special })}\n`);
      err(`airllm: ${ids.length} tokens\n`);
      return 0;
    }
    const ids = tokenizer.encode(text, { addBos: special });
    out(ids.map((id) => `${id}\t${JSON.stringify(tokenizer.idToToken(id) ?? "")}\n`).join(""));
    err(`airllm: ${ids.length} tokens\n`);
    return 0;
  } finally {
    close();
  }
}
