// Generation as an async stream: a request goes to the scheduler, and its tokens come back with
// their text as passes run (the prompt is prefilled in chunks, then one decode token per pass).
// Written as an async generator so a caller can stream it with `for await` and stop it with an
// AbortSignal; several streams on one scheduler share their passes.
import type { GenerationChunk, GenerationRequest, GenerationResult } from "./job.ts";
import type { SamplingOptions } from "./sampler.ts";
import type { SpeculationMode } from "./speculative/drafter.ts";
import type { JobHandle, Scheduler } from "./scheduler.ts";

export type { FinishReason, GenerationChunk, GenerationRequest, GenerationResult, GenerationTimings, SpeculationStats } from "./job.ts";

/** Longest slice of a prompt fed in one pass: bounds activation memory (llama.cpp's n_batch). */
export const PREFILL_CHUNK = 512;

export interface GenerateOptions extends SamplingOptions {
  /** Tokens to generate at most (default 256). */
  readonly maxNewTokens?: number;
  readonly stop?: readonly string[];
  /** Ids that end generation (default: the model's eos ids). */
  readonly eosIds?: readonly number[];
  readonly signal?: AbortSignal;
  /** Log-probabilities of each token and of this many most likely ones. */
  readonly logprobs?: number;
  /** Speculative decoding: "ngram" (prompt lookup), "draft" (the draft model), "tree" (a token tree from the draft model and the context), or "off". */
  readonly speculate?: SpeculationMode;
  /** The most draft tokens per pass (default 8). */
  readonly draftTokens?: number;
  /** Adapt the draft length to acceptance and pass cost (default true); false always drafts draftTokens. */
  readonly adaptiveDraft?: boolean;
}

/**
 * Queues one request at once (so a prompt that cannot fit throws here, before any token) and
 * streams its chunks; the generator's return value is its result. Iterate it to the end, or stop
 * early with break/return(), which cancels the request and frees its pages.
 */
export function generateStream(
  scheduler: Scheduler,
  request: GenerationRequest,
  o: { readonly signal?: AbortSignal; readonly onLogits?: (logits: Float32Array) => void } = {},
): AsyncGenerator<GenerationChunk, GenerationResult> {
  const handle = scheduler.submit(request);
  handle.onLogits = o.onLogits ?? null;
  return streamEvents(scheduler, handle, o.signal);
}

async function* streamEvents(scheduler: Scheduler, handle: JobHandle, signal: AbortSignal | undefined): AsyncGenerator<GenerationChunk, GenerationResult> {
  const onAbort = () => handle.cancel();
  signal?.addEventListener("abort", onAbort, { once: true });
  if (signal?.aborted) handle.cancel();
  let finished = false;
  try {
    for await (const e of handle.events()) {
      if (e.kind === "chunk") yield e.chunk;
      else if (e.kind === "done") {
        finished = true;
        return e.result;
      } else {
        finished = true;
        throw e.error;
      }
    }
    throw new Error("internal: a request ended without a result");
  } finally {
    signal?.removeEventListener("abort", onAbort);
    // A consumer that stops early (break, an exception) cancels the request: its pages go back.
    if (!finished) {
      handle.cancel();
      scheduler.step();
    }
  }
}
