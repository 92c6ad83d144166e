// The generation loop: prefill the prompt in one pass, then one decode pass per token; sample,
// detokenize incrementally, watch for eos ids and stop strings. Written as an async generator so
// a caller can stream it with `for await` and stop it with an AbortSignal.
import type { TextTokenizer } from "../tokenizer/text-tokenizer.ts";
import { Detokenizer } from "../tokenizer/detokenizer.ts";
import { UsageError } from "../errors.ts";
import type { Engine } from "./engine.ts";
import { Sampler, type SamplingOptions } from "./sampler.ts";
import { StopStringFilter } from "./stop-strings.ts";

/** Longest slice of a prompt fed in one pass: bounds activation memory (llama.cpp's n_batch). */
export const PREFILL_CHUNK = 512;

export interface GenerateOptions extends SamplingOptions {
  /** Tokens to generate at most (default 256). */
  readonly maxNewTokens?: number;
  readonly stop?: readonly string[];
  /** Ids that end generation (default: the model's eos ids). */
  readonly eosIds?: readonly number[];
  readonly signal?: AbortSignal;
}

/** "stop": an eos id or a stop string; "length": max tokens or the context; "abort": the signal. */
export type FinishReason = "stop" | "length" | "abort";

export interface GenerationTimings {
  readonly promptMs: number;
  readonly generateMs: number;
  readonly promptTokensPerSecond: number;
  readonly tokensPerSecond: number;
}

export interface GenerationResult {
  /** The prompt as fed, BOS included. */
  readonly promptTokens: number[];
  /** Generated ids (an eos id that ended generation included, as transformers returns it). */
  readonly tokens: number[];
  /** Generated text (eos and anything from a stop string on excluded). */
  readonly text: string;
  readonly finishReason: FinishReason;
  /** Which eos id or stop string ended generation, if one did. */
  readonly stoppedBy: number | string | null;
  readonly timings: GenerationTimings;
}

export interface GenerationChunk {
  readonly id: number;
  /** Text that became final with this id (may be "": bytes of a character still arriving). */
  readonly text: string;
}

export interface GenerationDeps {
  readonly engine: Engine;
  readonly tokenizer: TextTokenizer;
  readonly defaultEosIds: readonly number[];
  /** Receives the logits of each step (the model keeps the last for its caller). */
  readonly onLogits?: (logits: Float32Array) => void;
}

export async function* generateStream(
  deps: GenerationDeps,
  promptTokens: readonly number[],
  opts: GenerateOptions = {},
): AsyncGenerator<GenerationChunk, GenerationResult> {
  if (promptTokens.length === 0) throw new UsageError("the prompt is empty", "pass at least one token (most models start with BOS)");
  if (promptTokens.length > deps.engine.context) {
    // Refused before the first pass: prefill would fail only at the chunk that overflows, counting that chunk alone.
    throw new UsageError(
      `the prompt's ${promptTokens.length} tokens do not fit in the context of ${deps.engine.context}`,
      "shorten the prompt, or load the model with a larger max_seq_len (--ctx)",
    );
  }
  const maxNew = opts.maxNewTokens ?? 256;
  if (!(Number.isInteger(maxNew) && maxNew >= 0)) throw new UsageError(`max new tokens ${maxNew} must be a non-negative integer`);
  const sampler = new Sampler(opts);
  const eos = new Set(opts.eosIds ?? deps.defaultEosIds);
  const engine = deps.engine;
  const seq = engine.newSequence();
  const stops = new StopStringFilter(opts.stop ?? []);
  const detok = new Detokenizer(deps.tokenizer, { skipSpecial: true, context: promptTokens });
  const textVocab = deps.tokenizer.vocabSize;
  const tokens: number[] = [];
  let text = "";
  let finishReason: FinishReason = "length";
  let stoppedBy: number | string | null = null;
  const room = engine.context - promptTokens.length;
  const steps = Math.min(maxNew, room);
  let promptMs = 0;
  const t0 = performance.now();
  try {
    let logits: Float32Array = new Float32Array(0);
    for (let at = 0; at < promptTokens.length; at += PREFILL_CHUNK) {
      logits = engine.forward([seq], [promptTokens.slice(at, at + PREFILL_CHUNK)])[0];
    }
    promptMs = performance.now() - t0;
    for (let step = 0; step < maxNew; step++) {
      if (opts.signal?.aborted) {
        finishReason = "abort";
        break;
      }
      if (step >= steps) break; // the context is full: "length"
      deps.onLogits?.(logits);
      // Ids past the tokenizer's vocabulary are padding rows of the embedding (Qwen2 pads 151 669
      // tokens to 151 936): never sample them, they have no text.
      const id = sampler.sample(logits.length > textVocab ? logits.subarray(0, textVocab) : logits, seq.ids);
      tokens.push(id);
      if (eos.has(id)) {
        finishReason = "stop";
        stoppedBy = id;
        break;
      }
      const shown = stops.push(detok.push(id));
      text += shown;
      yield { id, text: shown };
      if (stops.stopped) {
        finishReason = "stop";
        stoppedBy = stops.matched;
        break;
      }
      if (step + 1 < steps) logits = engine.forward([seq], [[id]])[0];
      // Let timers, signals and consumers run between tokens.
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
    if (!stops.stopped) {
      const rest = stops.push(detok.flush()) + stops.flush();
      if (rest.length > 0) {
        text += rest;
        yield { id: -1, text: rest };
      }
    }
  } finally {
    seq.dispose();
  }
  const genMs = performance.now() - t0 - promptMs;
  return {
    promptTokens: [...promptTokens],
    tokens,
    text,
    finishReason,
    stoppedBy,
    timings: {
      promptMs,
      generateMs: genMs,
      promptTokensPerSecond: promptTokens.length / (promptMs / 1000),
      tokensPerSecond: tokens.length / (genMs / 1000),
    },
  };
}
