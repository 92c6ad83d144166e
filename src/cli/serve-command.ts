// `airllm serve MODEL`: the OpenAI-compatible server. It listens at once (GET /health says 503
// while the model loads on its Worker), prints where it listens on stderr, and on SIGINT or
// SIGTERM drains: no new requests, in-flight ones finish within --grace, then exit 0.
import { basename, resolve } from "node:path";
import { UsageError } from "../errors.ts";
import { inspectModelSource } from "../model/model-source.ts";
import { OpenAIServer } from "../serve/server.ts";
import { WorkerModel } from "../worker/worker-model.ts";
import { Flags, flagHelp, parseArgs, type FlagSpec } from "./args.ts";
import { resolveDraftArg, resolveModelArg } from "./hub-resolve.ts";
import { MODEL_FLAGS, modelOptions } from "./model-flags.ts";
import { SPECULATION_FLAGS, speculationFlags } from "./speculation-flags.ts";

const DEFAULT_PARALLEL = 4;
const DEFAULT_CONTEXT = 4096;

export const SERVE_FLAGS: readonly FlagSpec[] = [
  { name: "host", value: "ADDR", help: "address to listen on (default 127.0.0.1: this machine only)" },
  { name: "port", value: "N", help: "port (default 8000; 0 picks a free one, printed on stderr)" },
  { name: "api-key", value: "KEY", help: "require Authorization: Bearer KEY on /v1 (default: $AIRLLM_API_KEY, else none)" },
  { name: "parallel", value: "N", help: `requests generated at once, sharing each pass; the KV cache holds N contexts (default ${DEFAULT_PARALLEL})` },
  { name: "max-queue", value: "N", help: "requests that may wait beyond those running; more get 429 (default 64)" },
  { name: "ctx", value: "N", help: `context length of each request (default: max_position_embeddings, at most ${DEFAULT_CONTEXT})` },
  { name: "chat-template", value: "FILE", help: "Jinja chat template to use instead of the model's own" },
  { name: "no-prefix-cache", help: "do not reuse the KV cache of earlier prompts that share a prefix" },
  { name: "grace", value: "SECONDS", help: "on SIGINT/SIGTERM, how long in-flight requests may finish before they are cancelled (default 30)" },
  ...SPECULATION_FLAGS,
  ...MODEL_FLAGS,
  { name: "help", short: "h", help: "show this help" },
];

export const SERVE_HELP = `usage: airllm serve MODEL [options]

Serve MODEL over HTTP with OpenAI's API: POST /v1/chat/completions, POST /v1/completions
(streaming or not), GET /v1/models, GET /health, GET /metrics (Prometheus). Concurrent requests
share each weight pass; prompts that share a prefix reuse its KV cache.

options:
${flagHelp(SERVE_FLAGS)}
`;

export async function serveCommand(argv: readonly string[], out: (s: string) => void, err: (s: string) => void): Promise<number> {
  const parsed = parseArgs(argv, SERVE_FLAGS, "serve");
  const f = new Flags(parsed);
  if (f.has("help")) {
    out(SERVE_HELP);
    return 0;
  }
  if (parsed.positionals.length !== 1) {
    throw new UsageError(parsed.positionals.length === 0 ? "no model given" : `expected one model, got ${parsed.positionals.length}`, "airllm serve MODEL_DIR --port 8000");
  }
  const modelArg = parsed.positionals[0]!;
  const modelPath = await resolveModelArg(modelArg, f, err, { mustRun: true });
  const port = f.number("port", { integer: true }) ?? 8000;
  if (port < 0 || port > 65535) throw new UsageError(`--port ${port} is not a port number (0 to 65535)`);
  const parallel = f.number("parallel", { integer: true }) ?? DEFAULT_PARALLEL;
  if (parallel < 1) throw new UsageError(`--parallel ${parallel} must be at least 1`);
  const maxQueue = f.number("max-queue", { integer: true }) ?? 64;
  if (maxQueue < 0) throw new UsageError(`--max-queue ${maxQueue} must be 0 or more`);
  const grace = f.number("grace") ?? 30;
  if (grace < 0) throw new UsageError(`--grace ${grace} must be 0 or more seconds`);
  const apiKey = f.string("api-key") ?? process.env.AIRLLM_API_KEY ?? null;

  // The headers first: a wrong path fails now, not after the port is taken.
  const headers = inspectModelSource(modelPath);
  const maxPos = headers.config.maxPositionEmbeddings;
  headers.close();
  const ctx = f.number("ctx", { integer: true });
  if (ctx !== undefined && (ctx < 1 || ctx > maxPos)) throw new UsageError(`--ctx ${ctx} is outside 1..${maxPos} (max_position_embeddings)`);
  const context = ctx ?? Math.min(maxPos, DEFAULT_CONTEXT);

  const options = modelOptions(f, err);
  const spec = speculationFlags(f);
  const load = WorkerModel.load(modelPath, {
    ...options,
    draft_model: await resolveDraftArg(spec.draftModel, f, err),
    max_seq_len: context,
    // An explicit --ctx is kept; the default may shrink to what the budget holds (printed below).
    min_seq_len: ctx ?? Math.min(context, 256),
    parallel,
    prefix_cache: !f.has("no-prefix-cache"),
    chat_template: f.string("chat-template"),
  });
  // A hub id is the name clients know the model by; a folder is known by its name.
  const modelId = modelArg === modelPath ? basename(resolve(modelPath)) : modelArg;
  const server = new OpenAIServer(load, {
    host: f.string("host") ?? "127.0.0.1",
    port,
    apiKey,
    maxQueue,
    modelId,
    modelAliases: [modelArg, modelPath, resolve(modelPath)],
    speculate: spec.speculate,
    draftTokens: spec.draftTokens,
    log: (line) => err(`airllm: ${line}\n`),
  });
  err(`airllm: listening on ${server.url} (loading ${modelPath}; /health answers 503 until it is ready)\n`);

  let signals = 0;
  const stopped = new Promise<void>((done) => {
    const onSignal = (name: string) => {
      signals++;
      if (signals === 1) {
        err(`airllm: ${name}: no new requests; in-flight ones have ${grace} s to finish (again to cancel them now)\n`);
        void server.shutdown(grace * 1000).then(done);
      } else {
        // A second signal: cancel now rather than wait out the grace period.
        server.cancelAll();
      }
    };
    process.on("SIGINT", () => onSignal("SIGINT"));
    process.on("SIGTERM", () => onSignal("SIGTERM"));
  });

  try {
    await server.ready;
  } catch (e) {
    await server.shutdown(0);
    throw e;
  }
  const m = await load;
  err(
    `airllm: ready: ${modelId} · ${m.info.modelType} · backend ${m.info.backend} · context ${m.info.context} · ` +
      `${parallel} running at once, ${maxQueue} queued at most · chat template ${m.info.hasChatTemplate ? "yes" : "none (--chat-template FILE)"}` +
      (apiKey ? " · API key required" : "") +
      "\n",
  );
  await stopped;
  err("airllm: stopped\n");
  return 0;
}
