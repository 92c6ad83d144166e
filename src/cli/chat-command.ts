// `airllm chat MODEL`: a terminal conversation in the model's own chat template. Earlier turns
// stay in the KV cache (ChatSession), so each turn prefills only its new tokens; the line after
// each reply says how many were cached and how many were prefilled. /reset forgets the history,
// /exit or Ctrl-D quits, Ctrl-C stops the reply being generated (at the prompt it says how to quit).
import { createInterface } from "node:readline";
import { UsageError } from "../errors.ts";
import type { GenerationResult } from "../engine/generate.ts";
import { AutoModel } from "../model/auto-model.ts";
import { inspectModelSource } from "../model/model-source.ts";
import { noChatTemplate } from "../tokenizer/chat-template.ts";
import { Flags, flagHelp, parseArgs, type FlagSpec } from "./args.ts";
import { resolveDraftArg, resolveModelArg } from "./hub-resolve.ts";
import { MODEL_FLAGS, modelOptions } from "./model-flags.ts";
import { SAMPLING_FLAGS, samplingOptions } from "./sampling-flags.ts";
import { SPECULATION_FLAGS, speculationFlags, speculationSummary } from "./speculation-flags.ts";

const DEFAULT_CONTEXT = 4096;

export const CHAT_FLAGS: readonly FlagSpec[] = [
  { name: "system", value: "TEXT", help: "system message at the start of the conversation" },
  { name: "max-tokens", short: "n", value: "N", help: "at most N tokens per reply (default: until the model stops or the context is full)" },
  ...SAMPLING_FLAGS,
  ...SPECULATION_FLAGS,
  { name: "ctx", value: "N", help: `context length the whole conversation shares (default: max_position_embeddings, at most ${DEFAULT_CONTEXT})` },
  { name: "chat-template", value: "FILE", help: "Jinja chat template to use instead of the model's own" },
  ...MODEL_FLAGS,
  { name: "help", short: "h", help: "show this help" },
];

export const CHAT_HELP = `usage: airllm chat MODEL [options]

Chat with MODEL in its own chat template. Type a message and press Enter.
  /reset   forget the conversation (the system message stays)
  /exit    quit (Ctrl-D too)
  Ctrl-C   stop the reply being generated

options:
${flagHelp(CHAT_FLAGS)}
`;

export async function chatCommand(argv: readonly string[], out: (s: string) => void, err: (s: string) => void): Promise<number> {
  const parsed = parseArgs(argv, CHAT_FLAGS, "chat");
  const f = new Flags(parsed);
  if (f.has("help")) {
    out(CHAT_HELP);
    return 0;
  }
  if (parsed.positionals.length !== 1) {
    throw new UsageError(parsed.positionals.length === 0 ? "no model given" : `expected one model, got ${parsed.positionals.length}`, "airllm chat MODEL_DIR");
  }
  const modelPath = await resolveModelArg(parsed.positionals[0]!, f, err, { mustRun: true });
  const headers = inspectModelSource(modelPath);
  const maxPos = headers.config.maxPositionEmbeddings;
  headers.close();
  const ctx = f.number("ctx", { integer: true });
  if (ctx !== undefined && (ctx < 1 || ctx > maxPos)) throw new UsageError(`--ctx ${ctx} is outside 1..${maxPos} (max_position_embeddings)`);
  const spec = speculationFlags(f);
  const model = await AutoModel.from_pretrained(modelPath, {
    ...modelOptions(f, err),
    draft_model: await resolveDraftArg(spec.draftModel, f, err),
    max_seq_len: ctx ?? Math.min(maxPos, DEFAULT_CONTEXT),
    min_seq_len: ctx ?? Math.min(maxPos, 256),
    chat_template: f.string("chat-template"),
  });
  const interactive = process.stdin.isTTY === true;
  const rl = createInterface({ input: process.stdin, output: process.stdout, terminal: interactive, prompt: "> " });
  try {
    if (model.chatTemplate === null) throw noChatTemplate(modelPath);
    const session = model.newChat(f.string("system"));
    const opts = { ...samplingOptions(f, f.number("max-tokens", { integer: true }) ?? model.engine.context), speculate: spec.speculate, draftTokens: spec.draftTokens };
    if (interactive) err(`airllm: ${model.config.modelType} · context ${model.engine.context} · /reset clears the history, /exit or Ctrl-D quits, Ctrl-C stops a reply\n`);

    let replying: AbortController | null = null;
    const onInterrupt = () => {
      if (replying) replying.abort();
      else if (interactive) {
        out("\n(Ctrl-D or /exit quits)\n");
        rl.prompt();
      } else rl.close();
    };
    rl.on("SIGINT", onInterrupt);
    process.on("SIGINT", onInterrupt);

    const lines: string[] = [];
    let wake: (() => void) | null = null;
    let closed = false;
    rl.on("line", (l) => {
      lines.push(l);
      wake?.();
    });
    rl.on("close", () => {
      closed = true;
      wake?.();
    });
    rl.prompt();
    for (;;) {
      while (lines.length === 0 && !closed) await new Promise<void>((r) => (wake = r));
      const line = lines.shift();
      if (line === undefined) break;
      const text = line.trim();
      if (text === "/exit" || text === "/quit") break;
      if (text === "/reset") {
        session.reset();
        err("airllm: history cleared\n");
      } else if (text !== "") {
        replying = new AbortController();
        let result: GenerationResult | null = null;
        try {
          const it = session.send(text, { ...opts, signal: replying.signal });
          for (;;) {
            const r = await it.next();
            if (r.done) {
              result = r.value;
              break;
            }
            out(r.value.text);
          }
        } finally {
          replying = null;
        }
        out("\n");
        if (result !== null) err(turnSummary(result, session.lastCachedTokens));
      }
      if (closed && lines.length === 0) break;
      rl.prompt();
    }
    process.off("SIGINT", onInterrupt);
    session.dispose();
    return 0;
  } finally {
    rl.close();
    model.dispose();
  }
}

function turnSummary(r: GenerationResult, cached: number): string {
  const prompt = r.promptTokens.length;
  const rate = Number.isFinite(r.timings.tokensPerSecond) ? r.timings.tokensPerSecond.toFixed(1) : "0";
  const end = r.finishReason === "abort" ? "stopped" : r.finishReason;
  return `airllm: prompt ${prompt} tok (${cached} cached, ${prompt - cached} prefilled) · reply ${r.tokens.length} tok at ${rate} tok/s${speculationSummary(r.tokens.length, r.decodePasses, r.speculation)} · ${end}\n`;
}
