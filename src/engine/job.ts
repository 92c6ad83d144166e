// One generation request inside the scheduler: its tokens still to feed, its sampler, detokenizer
// and stop strings, the text produced so far, and the events waiting for its consumer. The
// scheduler decides when it runs; this decides what a pass's logits mean for it.
import { Detokenizer } from "../tokenizer/detokenizer.ts";
import type { TextTokenizer } from "../tokenizer/text-tokenizer.ts";
import { EMPTY_CHAIN, type ChainState } from "./kv/prefix-cache.ts";
import { logprobs, Sampler, type SamplingOptions } from "./sampler.ts";
import type { Sequence } from "./sequence.ts";
import { StopStringFilter } from "./stop-strings.ts";
import { acceptTree } from "./speculative/accept.ts";
import { AcceptanceRate } from "./speculative/draft-length.ts";
import type { DraftTree } from "./speculative/draft-tree.ts";
import type { Drafter, SpeculationMode } from "./speculative/drafter.ts";

/** "stop": an eos id or a stop string; "length": max tokens or the context; "abort": cancelled. */
export type FinishReason = "stop" | "length" | "abort";

export interface GenerationRequest {
  /** Ids fed before the first new token (BOS and template already applied). */
  readonly prompt: readonly number[];
  /** Tokens to generate at most (default 256). */
  readonly maxNewTokens?: number;
  readonly sampling?: SamplingOptions;
  readonly stop?: readonly string[];
  /** Ids that end generation. */
  readonly eosIds: readonly number[];
  /** Log-probabilities of each new token and of this many most likely ones (OpenAI logprobs). */
  readonly logprobs?: number;
  /** Continue this sequence (a chat's KV cache); it is kept, not disposed, when the request ends. */
  readonly sequence?: Sequence;
  /** Look the prompt up in the prefix cache (default true). */
  readonly cachePrefix?: boolean;
  /** Speculative decoding: where draft tokens come from (default "off"). */
  readonly speculate?: SpeculationMode;
  /** The most draft tokens per pass (default 8); the scheduler adapts below it. */
  readonly draftTokens?: number;
  /** Choose each pass's draft length from acceptance and pass cost (default true); false: always draftTokens. */
  readonly adaptiveDraft?: boolean;
}

/** What speculation did for one request. */
export interface SpeculationStats {
  /** Decode passes that carried drafts. */
  readonly passes: number;
  readonly drafted: number;
  readonly accepted: number;
  /** Time spent proposing drafts. */
  readonly draftMs: number;
}

export interface TokenLogprob {
  /** The token's own text (special tokens included), as OpenAI's logprobs name tokens. */
  readonly token: string;
  readonly logprob: number;
  readonly top: readonly { readonly id: number; readonly token: string; readonly logprob: number }[];
}

export interface GenerationChunk {
  /** The generated id (-1 for text flushed at the end). */
  readonly id: number;
  /** Text that became final with this id (may be "": bytes of a character still arriving). */
  readonly text: string;
  readonly logprob?: TokenLogprob;
}

export interface GenerationTimings {
  /** Until the first new token: queueing and the prompt's prefill. */
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
  /** Prompt tokens whose KV came from cache (a shared prefix, an earlier chat turn). */
  readonly cachedTokens: number;
  readonly timings: GenerationTimings;
  /** Decode passes this request took (one per new token without speculation). */
  readonly decodePasses: number;
  /** Null without speculation. */
  readonly speculation: SpeculationStats | null;
}

export type JobEvent = { readonly kind: "chunk"; readonly chunk: GenerationChunk } | { readonly kind: "done"; readonly result: GenerationResult } | { readonly kind: "error"; readonly error: unknown };

export class Job {
  readonly prompt: readonly number[];
  readonly maxNew: number;
  readonly eos: ReadonlySet<number>;
  /** Tokens to feed before the next sampling: the prompt, then each sampled token. */
  feed: number[];
  seq: Sequence | null = null;
  readonly generated: number[] = [];
  text = "";
  cachedTokens = 0;
  finish: FinishReason | null = null;
  stoppedBy: number | string | null = null;
  cancelled = false;
  readonly events: JobEvent[] = [];
  /** Called whenever an event is queued. */
  wake: (() => void) | null = null;
  readonly arrivedAt = performance.now();
  firstTokenAt = 0;
  /** Admission order (preemption takes the latest). */
  admitted = 0;
  /** Passes that produced a token for this request (its prefill's last included). */
  decodePasses = 0;
  /** How far the sequence's full pages are registered in the prefix cache. */
  chain: ChainState = EMPTY_CHAIN;
  /** Drafts for this request's decode passes, or null without speculation. */
  drafter: Drafter | null = null;
  readonly speculation = { passes: 0, drafted: 0, accepted: 0, draftMs: 0 };
  readonly acceptance = new AcceptanceRate();
  passesWithoutDrafts = 0;
  private readonly sampler: Sampler;
  private readonly stops: StopStringFilter;
  private readonly detok: Detokenizer;

  constructor(
    readonly id: number,
    readonly request: GenerationRequest,
    private readonly tokenizer: TextTokenizer,
  ) {
    this.prompt = [...request.prompt];
    this.maxNew = request.maxNewTokens ?? 256;
    this.eos = new Set(request.eosIds);
    this.feed = [...request.prompt];
    this.sampler = new Sampler(request.sampling ?? {});
    this.stops = new StopStringFilter(request.stop ?? []);
    this.detok = new Detokenizer(tokenizer, { skipSpecial: true, context: request.prompt });
  }

  get done(): boolean {
    return this.finish !== null;
  }

  /** Receives the logits of each step (CausalLM keeps the last for its caller). */
  onLogits: ((logits: Float32Array) => void) | null = null;

  /** Whether no further token fits: max tokens reached, or the context is full. */
  private full(context: number): boolean {
    return this.generated.length >= this.maxNew || this.prompt.length + this.generated.length >= context;
  }

  /** The pass just fed the last of `feed`: choose the next token from `logits`, or finish. */
  next(logits: Float32Array, context: number): void {
    if (this.firstTokenAt === 0) this.firstTokenAt = performance.now();
    if (this.full(context)) return this.end("length", null);
    this.onLogits?.(logits);
    const seq = this.seq!;
    const scores = this.scores(logits);
    const id = this.sampler.sample(scores, seq.ids, this.generated);
    if (this.take(id, scores, seq.ids[seq.ids.length - 1]!, context)) this.feed = [id];
  }

  /**
   * The pass fed the last token and then `tree`'s drafts, and `logits` holds a row for each
   * (the last token's first). Accepts what the target agrees with (speculative/accept.ts), takes
   * those tokens and the target's own next one, and returns the accepted nodes, root's child
   * first: the caller keeps their KV and drops the rest.
   */
  verify(logits: Float32Array, tree: DraftTree, context: number): number[] {
    const rows = 1 + tree.tokens.length;
    const V = logits.length / rows;
    const seq = this.seq!;
    const base = seq.length - rows;
    const row = (node: number) => this.scores(logits.subarray((node + 1) * V, (node + 2) * V));
    const prefix = seq.ids.slice(0, base + 1);
    const accepted = acceptTree(
      tree,
      (node, path) => {
        const drafted = path.map((i) => tree.tokens[i]!);
        return this.sampler.distribution(row(node), [...prefix, ...drafted], [...this.generated, ...drafted]);
      },
      this.sampler.rng,
    );
    this.speculation.passes++;
    this.speculation.drafted += tree.tokens.length;
    this.speculation.accepted += accepted.path.length;
    this.acceptance.record(tree.tokens.length, accepted.path.length);
    // Take the accepted drafts, then the target's own token, each as next() would.
    let parent = -1;
    let prev = prefix[prefix.length - 1]!;
    for (const node of accepted.path) {
      const id = tree.tokens[node]!;
      if (!this.take(id, row(parent), prev, context)) return accepted.path;
      parent = node;
      prev = id;
    }
    if (this.full(context)) {
      this.end("length", null);
      return accepted.path;
    }
    const last = logits.subarray((parent + 1) * V, (parent + 2) * V);
    this.onLogits?.(last);
    if (this.take(accepted.next, this.scores(last), prev, context)) this.feed = [accepted.next];
    return accepted.path;
  }

  /** Ids past the tokenizer's vocabulary are padding rows of the embedding (Qwen2 pads 151 669
   * tokens to 151 936): never sampled, they have no text. */
  private scores(logits: Float32Array): Float32Array {
    const vocab = this.tokenizer.vocabSize;
    return logits.length > vocab ? logits.subarray(0, vocab) : logits;
  }

  /** Appends a chosen token: its text, stop strings, eos and length. False once the job has ended. */
  private take(id: number, scores: Float32Array, prev: number, context: number): boolean {
    if (this.firstTokenAt === 0) this.firstTokenAt = performance.now();
    this.generated.push(id);
    if (this.eos.has(id)) {
      this.end("stop", id);
      return false;
    }
    const shown = this.stops.push(this.detok.push(id));
    this.text += shown;
    const lp = this.request.logprobs;
    this.emit({ kind: "chunk", chunk: { id, text: shown, ...(lp !== undefined ? { logprob: this.logprobOf(scores, id, lp, prev) } : {}) } });
    if (this.stops.stopped) {
      this.end("stop", this.stops.matched);
      return false;
    }
    if (this.full(context)) {
      this.end("length", null);
      return false;
    }
    return true;
  }

  private logprobOf(scores: Float32Array, id: number, top: number, prev: number): TokenLogprob {
    const p = logprobs(scores, id, top);
    // Decoded after the previous token: alone, SentencePiece decoders drop a token's leading space.
    const before = this.tokenizer.decode([prev]);
    const token = (t: number) => {
      const both = this.tokenizer.decode([prev, t]);
      return both.startsWith(before) ? both.slice(before.length) : this.tokenizer.decode([t]);
    };
    return { token: token(id), logprob: p.logprob, top: p.top.map((e) => ({ id: e.id, token: token(e.id), logprob: e.logprob })) };
  }

  /** Ends with no token (max 0, a full context before the first one, or a cancel). */
  end(reason: FinishReason, by: number | string | null): void {
    if (this.done) return;
    this.finish = reason;
    this.stoppedBy = by;
    if (reason !== "abort" && !this.stops.stopped) {
      const rest = this.stops.push(this.detok.flush()) + this.stops.flush();
      if (rest.length > 0) {
        this.text += rest;
        this.emit({ kind: "chunk", chunk: { id: -1, text: rest } });
      }
    }
    if (this.firstTokenAt === 0) this.firstTokenAt = performance.now();
    const now = performance.now();
    const promptMs = this.firstTokenAt - this.arrivedAt;
    const genMs = now - this.firstTokenAt;
    this.emit({
      kind: "done",
      result: {
        promptTokens: [...this.prompt],
        tokens: [...this.generated],
        text: this.text,
        finishReason: reason,
        stoppedBy: by,
        cachedTokens: this.cachedTokens,
        decodePasses: this.decodePasses,
        speculation: this.drafter === null ? null : { ...this.speculation },
        timings: {
          promptMs,
          generateMs: genMs,
          promptTokensPerSecond: this.prompt.length / (promptMs / 1000),
          tokensPerSecond: this.generated.length / (genMs / 1000),
        },
      },
    });
  }

  fail(error: unknown): void {
    if (this.done) return;
    this.finish = "abort";
    this.emit({ kind: "error", error });
  }

  private emit(e: JobEvent): void {
    this.events.push(e);
    this.wake?.();
  }
}
