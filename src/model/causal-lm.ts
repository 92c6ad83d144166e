// A loaded model: config, tokenizer, engine. What `AutoModel.from_pretrained` returns.
import type { Backend } from "../backend/backend.ts";
import type { ForwardOptions } from "../engine/engine.ts";
import { Engine } from "../engine/engine.ts";
import {
  generateStream,
  type GenerateOptions,
  type GenerationChunk,
  type GenerationResult,
} from "../engine/generate.ts";
import type { MemoryPlan } from "../engine/memory-plan.ts";
import type { Sequence } from "../engine/sequence.ts";
import type { TextTokenizer } from "../tokenizer/text-tokenizer.ts";
import type { ModelConfig } from "./config.ts";
import type { GenerationConfig } from "./generation-config.ts";

/** A prompt as text (encoded with BOS as the tokenizer config says) or as ids, fed as they are. */
export type PromptInput = string | readonly number[];

/** transformers-style names accepted by generate() next to ours. */
export interface GenerateCallOptions extends GenerateOptions {
  readonly max_new_tokens?: number;
  readonly top_k?: number;
  readonly top_p?: number;
  readonly min_p?: number;
  readonly repetition_penalty?: number;
}

export class CausalLM {
  /** Logits of the last step of the last generate()/stream() call ([vocab]), or null. */
  lastLogits: Float32Array | null = null;
  /** Free device memory (cuMemGetInfo) before the model allocated anything; null where unknown. */
  deviceFreeAtLoad: number | null = null;
  /** How the weights, KV cache and activations were placed under the budget; null without one. */
  memoryPlan: MemoryPlan | null = null;
  private disposed = false;
  private loadedTokenizer: TextTokenizer | null = null;

  constructor(
    readonly config: ModelConfig,
    readonly generationConfig: GenerationConfig | null,
    /** Read on first use: a model driven by ids alone needs no tokenizer.json. */
    private readonly loadTokenizer: () => TextTokenizer,
    readonly engine: Engine,
    readonly backend: Backend,
    private readonly closeFiles: () => void,
  ) {}

  get tokenizer(): TextTokenizer {
    this.loadedTokenizer ??= this.loadTokenizer();
    return this.loadedTokenizer;
  }

  /** Ids that end generation: generation_config.json's, else config.json's, else the tokenizer's. */
  get eosIds(): readonly number[] {
    const g = this.generationConfig?.eosTokenIds;
    if (g && g.length > 0) return g;
    return this.config.eosTokenIds.length > 0 ? this.config.eosTokenIds : this.tokenizer.eosIds;
  }

  /** Ids for a prompt: text is encoded (BOS per the tokenizer config), ids pass through. */
  encodePrompt(input: PromptInput): number[] {
    return typeof input === "string" ? this.tokenizer.encode(input) : [...input];
  }

  newSequence(): Sequence {
    return this.engine.newSequence();
  }

  /** One pass over a batch of sequences; see Engine.forward. */
  forward(seqs: readonly Sequence[], tokens: readonly (readonly number[])[], opts?: ForwardOptions): Float32Array[] {
    return this.engine.forward(seqs, tokens, opts);
  }

  /** Streams generated tokens with their text; the generator's return value is the result. */
  stream(input: PromptInput, opts: GenerateCallOptions = {}): AsyncGenerator<GenerationChunk, GenerationResult> {
    return generateStream(
      { engine: this.engine, tokenizer: this.tokenizer, defaultEosIds: this.eosIds, onLogits: (l) => (this.lastLogits = l) },
      this.encodePrompt(input),
      this.resolveOptions(opts),
    );
  }

  async generate(input: PromptInput, opts: GenerateCallOptions = {}): Promise<GenerationResult> {
    const it = this.stream(input, opts);
    for (;;) {
      const r = await it.next();
      if (r.done) return r.value;
    }
  }

  /** Generation defaults: the call's options, then generation_config.json, then greedy. */
  private resolveOptions(o: GenerateCallOptions): GenerateOptions {
    const g = this.generationConfig ?? {};
    const sampling = g.doSample === true;
    return {
      ...o,
      maxNewTokens: o.maxNewTokens ?? o.max_new_tokens ?? g.maxNewTokens,
      temperature: o.temperature ?? (sampling ? (g.temperature ?? 1) : 0),
      topK: o.topK ?? o.top_k ?? (sampling ? g.topK : undefined),
      topP: o.topP ?? o.top_p ?? (sampling ? g.topP : undefined),
      minP: o.minP ?? o.min_p,
      repetitionPenalty: o.repetitionPenalty ?? o.repetition_penalty ?? g.repetitionPenalty,
    };
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.engine.dispose();
    this.closeFiles();
    this.backend.destroy();
  }
}
