// `airllm split MODEL`: write AirLLM's split layout (one safetensors file per layer) into
// MODEL/splitted_model or --out DIR/splitted_model, resuming an interrupted split.
import { UsageError } from "../errors.ts";
import { parseCompression, splitModel } from "../split/split-model.ts";
import { formatBytes } from "../util/size.ts";
import { Flags, flagHelp, parseArgs, type FlagSpec } from "./args.ts";
import { HUB_FLAGS } from "./hub-flags.ts";
import { resolveModelArg } from "./hub-resolve.ts";

const SPLIT_FLAGS: readonly FlagSpec[] = [
  { name: "out", short: "o", value: "DIR", help: "put splitted_model/ in DIR instead of MODEL (AirLLM layer_shards_saving_path)" },
  { name: "compression", value: "4bit|8bit", help: "store 2-D weights as NF4 (4bit) or blockwise 8-bit (8bit) in splitted_model.4bit|8bit/" },
  { name: "delete-original", help: "delete MODEL's safetensors weights (and index) once the split is complete" },
  ...HUB_FLAGS,
  { name: "help", short: "h", help: "show this help" },
];

const SPLIT_HELP = `usage: airllm split MODEL [options]

Split the model in folder MODEL into AirLLM's layout: splitted_model/ with one safetensors file per
layer (model.embed_tokens, model.layers.N, model.norm, lm_head), each followed by an empty .done
marker once it is on disk, plus config.json and the tokenizer. An interrupted split resumes where it
stopped; a complete one is reused. \`airllm run\` reads the split folder, or MODEL once its originals
are deleted.

options:
${flagHelp(SPLIT_FLAGS)}
`;

export async function splitCommand(argv: readonly string[], out: (s: string) => void, err: (s: string) => void): Promise<number> {
  const parsed = parseArgs(argv, SPLIT_FLAGS, "split");
  const f = new Flags(parsed);
  if (f.has("help")) {
    out(SPLIT_HELP);
    return 0;
  }
  if (parsed.positionals.length !== 1) {
    throw new UsageError(parsed.positionals.length === 0 ? "no model given" : `expected one model, got ${parsed.positionals.length}`, "airllm split MODEL_DIR [--out DIR] [--compression 4bit|8bit]");
  }
  const modelPath = await resolveModelArg(parsed.positionals[0], f, err);
  const t0 = performance.now();
  const result = splitModel(modelPath, {
    outDir: f.path("out"),
    compression: parseCompression(f.string("compression")),
    deleteOriginal: f.has("delete-original"),
    onProgress: (p) => err(`split ${p.done}/${p.total} ${p.name} (${p.kept ? "done earlier" : formatBytes(p.bytes)})\n`),
  });
  const seconds = (performance.now() - t0) / 1000;
  if (result.reused) err(`airllm: reusing complete split in ${result.splitDir} (${result.entries} files, ${formatBytes(result.totalBytes)})\n`);
  else {
    err(
      `airllm: split ${result.entries} files (${formatBytes(result.totalBytes)}) into ${result.splitDir}: ` +
        `wrote ${formatBytes(result.writtenBytes)} in ${seconds.toFixed(2)} s (${formatBytes(result.writtenBytes / Math.max(seconds, 1e-9))}/s)\n`,
    );
  }
  if (result.deleted.length > 0) err(`airllm: deleted the originals: ${result.deleted.join(", ")}\n`);
  return 0;
}
