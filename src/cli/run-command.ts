// `airllm run MODEL`: generate from a prompt, streaming text to stdout; everything else to stderr.
import { UsageError } from "../errors.ts";
import { AutoModel } from "../model/auto-model.ts";
import type { GenerationResult } from "../engine/generate.ts";
import { inspectModelSource } from "../model/model-source.ts";
import { heldBeyondRuntime, peakRssBytes } from "../util/rss.ts";
import { formatBytes, parseSize } from "../util/size.ts";
import { planLines, predictedMsPerToken } from "./plan-report.ts";
import { ProgressLine } from "./progress-line.ts";
import { expertSummary, Profiler } from "../engine/profiler.ts";
import { Flags, flagHelp, parseArgs, type FlagSpec } from "./args.ts";
import { resolveDraftArg, resolveModelArg } from "./hub-resolve.ts";
import { MODEL_FLAGS, modelOptions } from "./model-flags.ts";
import { SAMPLING_FLAGS, samplingOptions } from "./sampling-flags.ts";
import { SPECULATION_FLAGS, speculationFlags, speculationSummary } from "./speculation-flags.ts";
import { checkIdsFit, checkPromptFits, readPromptText } from "./prompt-input.ts";
import { requireOpen } from "./std-streams.ts";
import { validateSampling } from "../engine/sampler.ts";

export const RUN_FLAGS: readonly FlagSpec[] = [
  { name: "prompt", short: "p", value: "TEXT", help: "prompt text (else -f, else standard input; empty: start from BOS)" },
  { name: "file", short: "f", value: "FILE", help: "read the prompt from FILE" },
  { name: "max-tokens", short: "n", value: "N", help: "generate at most N tokens (default 256)" },
  ...SAMPLING_FLAGS,
  ...SPECULATION_FLAGS,
  { name: "ids", value: "LIST", help: "prompt as comma-separated token ids, fed as they are (no BOS added)" },
  { name: "ctx", value: "N", help: "context length the KV cache holds (default: prompt + max tokens, at most max_position_embeddings)" },
  ...MODEL_FLAGS,
  { name: "profile", help: "per-layer timings and the bottleneck on stderr at the end (AirLLM profiling_mode)" },
  { name: "json", help: "print one JSON object on stdout instead of streaming text" },
  { name: "no-display-prompt", help: "on a terminal, print the completion only (by default the prompt is shown before it, as llama.cpp does)" },
  { name: "verbose", short: "v", help: "print load details on stderr" },
  { name: "help", short: "h", help: "show this help" },
];

export const RUN_HELP = `usage: airllm run MODEL [options]

Generate text with MODEL: a Hugging Face folder (config.json, *.safetensors, tokenizer.json), an
AirLLM split folder, or a llama.cpp .gguf file. Text goes to stdout as it is generated; a summary
goes to stderr.

options:
${flagHelp(RUN_FLAGS)}
`;

export async function runCommand(argv: readonly string[], out: (s: string) => void, err: (s: string) => void): Promise<number> {
  const parsed = parseArgs(argv, RUN_FLAGS, "run");
  const f = new Flags(parsed);
  if (f.has("help")) {
    out(RUN_HELP);
    return 0;
  }
  if (parsed.positionals.length !== 1) {
    throw new UsageError(parsed.positionals.length === 0 ? "no model given" : `expected one model, got ${parsed.positionals.length}`, "airllm run MODEL_DIR -p \"Once upon a time\"");
  }
  const modelDir = await resolveModelArg(parsed.positionals[0], f, err, { mustRun: true });
  const sources = ["prompt", "file", "ids"].filter((n) => f.has(n));
  if (sources.length > 1) throw new UsageError(`give only one of ${sources.map((s) => "--" + s).join(", ")}`, "the prompt comes from -p TEXT, -f FILE, --ids LIST or standard input");
  const verbose = f.has("verbose");
  // Every flag is checked before the model is touched: a bad --temp must not cost a load.
  const maxNewTokens = f.number("max-tokens", { integer: true, min: 0 }) ?? 256;
  const ctx = f.number("ctx", { integer: true, min: 1 });
  const sampling = samplingOptions(f, maxNewTokens);
  validateSampling(sampling);
  const options = modelOptions(f, err);
  const spec = speculationFlags(f);
  const promptFile = f.path("file");
  requireOpen(1);

  const t0 = performance.now();
  // The tokenizer first: the prompt's length sizes the KV cache, and a missing or broken tokenizer
  // fails here, before any weights are read.
  const headers = inspectModelSource(modelDir);
  const config = headers.config;
  const maxPos = config.maxPositionEmbeddings;
  let tokenizer;
  try {
    if (ctx !== undefined && ctx > maxPos) {
      throw new UsageError(`--ctx ${ctx} is more than the model's ${maxPos} positions (max_position_embeddings in ${headers.configName})`, `use --ctx ${maxPos} or less`);
    }
    tokenizer = headers.tokenizer();
  } finally {
    headers.close();
  }
  // The context the prompt must fit, with one new token: what --ctx or the model allows.
  const room = ctx ?? maxPos;
  const promptText = f.has("ids") ? null : readPromptText({ text: f.string("prompt"), file: promptFile }, tokenizer, room);
  const ids = promptText === null ? f.ids("ids", room)! : tokenizer.encode(promptText);
  checkIdsFit(ids, config.vocabSize, headers.configName, !f.has("ids"));
  if (ids.length === 0) {
    throw new UsageError("the prompt encodes to no tokens and the tokenizer adds no BOS", "pass a non-empty prompt (-p)");
  }
  checkPromptFits(ids.length, room, ctx !== undefined);
  const model = await AutoModel.from_pretrained(modelDir, {
    ...options,
    // --max-memory bounds the whole process's peak RSS: what the tokenizer took is not the model's.
    max_memory: options.max_memory === undefined ? undefined : Math.max(0, parseSize(options.max_memory) - heldBeyondRuntime()),
    tokenizer,
    draft_model: await resolveDraftArg(spec.draftModel, f, err),
    max_seq_len: ctx ?? Math.min(maxPos, ids.length + maxNewTokens),
    // The prompt and one new token at least; an explicit --ctx does not shrink.
    min_seq_len: ctx ?? Math.min(maxPos, ids.length + 1),
  });
  try {
    const loadMs = performance.now() - t0;
    if (verbose) {
      const c = model.config;
      err(`airllm: ${c.modelType} · ${c.numLayers} layer${c.numLayers === 1 ? "" : "s"} · hidden ${c.hiddenSize} · vocab ${c.vocabSize} · backend ${model.backend.name} · context ${model.engine.context}\n`);
      const plan = model.memoryPlan;
      if (plan !== null) {
        const kv = model.engine.kvPool.shape;
        for (const l of planLines(plan, model.backend.name, kv.dtype, kv.pageSize)) err(`airllm: ${l}\n`);
        if (plan.contextShrunk) err(`airllm: the budget holds ${plan.context} tokens of context, not the ${ctx ?? Math.min(maxPos, ids.length + maxNewTokens)} asked for: generation stops there\n`);
        const predicted = predictedMsPerToken(plan, c, model.backend.caps.readsHostMemory);
        err(`airllm: predicted ≥ ${predicted.toFixed(1)} ms per token (cost model with nominal bandwidths, not a measurement; see cost-model.ts)\n`);
      } else {
        const w = model.engine.weightStats();
        err(`airllm: weights ${formatBytes(w.residentBytes)} read from the file mapping (no --max-memory)\n`);
      }
    }
    const opts = { ...sampling, speculate: spec.speculate, draftTokens: spec.draftTokens };
    if (f.has("profile")) model.engine.profiler = new Profiler();
    const progress = ProgressLine.attach(model.engine, process.stderr.isTTY === true, err, maxNewTokens, model.config.numLayers);
    let atLineStart = true;
    if (progress && process.stdout.isTTY) progress.canDraw = () => atLineStart;
    const it = model.stream(ids, opts);
    // On a terminal the completion reads on from the prompt; a pipe gets the completion alone.
    if (process.stdout.isTTY && !f.has("json") && !f.has("no-display-prompt") && promptText !== null && promptText.length > 0) {
      out(promptText);
      atLineStart = promptText.endsWith("\n");
    }
    let result: GenerationResult;
    try {
      for (;;) {
        const step = await it.next();
        if (step.done) {
          result = step.value;
          break;
        }
        if (progress) progress.token++;
        if (!f.has("json") && step.value.text) {
          progress?.clear();
          out(step.value.text);
          atLineStart = step.value.text.endsWith("\n");
        }
      }
    } finally {
      progress?.clear();
      model.engine.onEntry = null;
    }
    const t = result.timings;
    const timings = {
      load_ms: round(loadMs),
      prompt_ms: round(t.promptMs),
      generate_ms: round(t.generateMs),
      prompt_tokens_per_s: round(t.promptTokensPerSecond),
      tokens_per_s: round(t.tokensPerSecond),
      peak_rss_bytes: peakRssBytes(),
    };
    if (f.has("json")) {
      const speculation = result.speculation === null ? null : { ...result.speculation, decode_passes: result.decodePasses };
      out(JSON.stringify({ prompt_tokens: result.promptTokens, tokens: result.tokens, text: result.text, finish_reason: result.finishReason, timings, speculation }) + "\n");
    } else {
      out("\n");
    }
    const prof = model.engine.profiler;
    if (prof) {
      const report = prof.report({
        weights: model.engine.weightStats(),
        reads: model.engine.readStats(),
        asyncBackend: model.backend.caps.asyncUpload,
        fetched: model.engine.fetchStats(),
      });
      err(report.map((l) => `airllm: ${l}\n`).join(""));
    }
    err(
      `airllm: load ${(loadMs / 1000).toFixed(2)} s · prompt ${result.promptTokens.length} tok at ${timings.prompt_tokens_per_s} tok/s · ` +
        `generated ${result.tokens.length} tok at ${timings.tokens_per_s} tok/s` +
        speculationSummary(result.tokens.length, result.decodePasses, result.speculation) +
        ` · finish: ${result.finishReason}` +
        (result.stoppedBy !== null ? ` (${typeof result.stoppedBy === "number" ? `eos id ${result.stoppedBy}` : `stop string ${JSON.stringify(result.stoppedBy)}`})` : "") +
        "\n",
    );
    const fetched = model.engine.fetchStats();
    const experts = fetched === null ? null : expertSummary(fetched);
    if (experts !== null) err(`airllm: ${experts}\n`);
    return 0;
  } finally {
    model.dispose();
  }
}

const round = (v: number) => (Number.isFinite(v) ? Math.round(v * 10) / 10 : 0);
