// `airllm pull ORG/NAME[@REVISION][:QUANT]`: download what running the model needs into the shared
// Hugging Face cache, after a fit check (disk and memory plan for the flags' budget) printed before
// any weight byte is fetched. Prints the model's path in the cache on stdout.
import { UsageError } from "../errors.ts";
import { Flags, flagHelp, parseArgs, type FlagSpec } from "./args.ts";
import { HUB_FLAGS } from "./hub-flags.ts";
import { pullArg } from "./hub-resolve.ts";
import { PLAN_BUDGET_FLAGS } from "./plan-command.ts";

const FLAGS: readonly FlagSpec[] = [
  { name: "dry-run", help: "print the fit check and stop: only config and tokenizer files are downloaded" },
  ...HUB_FLAGS,
  ...PLAN_BUDGET_FLAGS,
  { name: "help", short: "h", help: "show this help" },
];

export const PULL_HELP = `usage: airllm pull ORG/NAME[@REVISION][:QUANT] [options]

Download a model from the Hugging Face hub (HF_ENDPOINT) into the cache Python's huggingface_hub
shares (HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub): config, tokenizer and the
safetensors weights (sharded per the index); with :QUANT (e.g. :Q4_K_M) one GGUF file of a GGUF
repo. First the fit check: the bytes to download against the free disk space, and the memory plan
for this machine (or the budget given), from the weights' headers read remotely. A download that
does not fit on the disk is refused (--force overrides). Files download in parallel, each checked
against its sha256; an interrupted download resumes. The model's path is printed on stdout.

options:
${flagHelp(FLAGS)}
`;

export async function pullCommand(argv: readonly string[], out: (s: string) => void, err: (s: string) => void): Promise<number> {
  const parsed = parseArgs(argv, FLAGS, "pull");
  const f = new Flags(parsed);
  if (f.has("help")) {
    out(PULL_HELP);
    return 0;
  }
  if (parsed.positionals.length !== 1) throw new UsageError(parsed.positionals.length === 0 ? "no model given" : `expected one model, got ${parsed.positionals.length}`, "airllm pull ORG/NAME");
  const r = await pullArg(parsed.positionals[0]!, f, err, f.has("dry-run"));
  if (r.downloaded) out(`${r.modelPath}\n`);
  return 0;
}
