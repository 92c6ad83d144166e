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
import { Scheduler, type SchedulerOptions } from "../engine/scheduler.ts";
import type { GenerationRequest } from "../engine/job.ts";
import { DraftModel } from "../engine/speculative/draft-model.ts";
import type { Drafter, SpeculationMode } from "../engine/speculative/drafter.ts";
import { TreeDrafter } from "../engine/speculative/tree-drafter.ts";
import { ModelDrafter } from "../engine/speculative/model-drafter.ts";
import { NgramDrafter } from "../engine/speculative/ngram-drafter.ts";
import { UsageError } from "../errors.ts";
import { noChatTemplate, type ChatFormat, type ChatMessage, type ChatTemplateOptions } from "../tokenizer/chat-template.ts";
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

export interface CausalLMParts {
  readonly config: ModelConfig;
  readonly generationConfig: GenerationConfig | null;
  /** Read on first use: a model driven by ids alone needs no tokenizer.json. */
  readonly loadTokenizer: () => TextTokenizer;
  /** The model's chat template (or its family's chat code), or null when it has none. */
  readonly chatTemplate: ChatFormat | null;
  readonly engine: Engine;
  readonly backend: Backend;
  readonly closeFiles: () => void;
  readonly scheduler?: SchedulerOptions;
  /** A small model of the same vocabulary that drafts tokens for speculative decoding. */
  readonly draft?: CausalLM;
}

export class CausalLM {
  /** Logits of the last step of the last generate()/stream() call ([vocab]), or null. */
  lastLogits: Float32Array | null = null;
  /** Free device memory (cuMemGetInfo) before the model allocated anything; null where unknown. */
  deviceFreeAtLoad: number | null = null;
  /** How the weights, KV cache and activations were placed under the budget; null without one. */
  memoryPlan: MemoryPlan | null = null;
  readonly config: ModelConfig;
  readonly generationConfig: GenerationConfig | null;
  readonly engine: Engine;
  readonly backend: Backend;
  /** Every generate/stream/chat call of this model runs here: concurrent calls share passes. */
  readonly scheduler: Scheduler;
  chatTemplate: ChatFormat | null;
  /** The draft model (`draft_model`), or null. */
  readonly draft: CausalLM | null;
  private disposed = false;
  private loadedTokenizer: TextTokenizer | null = null;
  private readonly loadTokenizer: () => TextTokenizer;
  private readonly closeFiles: () => void;

  constructor(parts: CausalLMParts) {
    this.config = parts.config;
    this.generationConfig = parts.generationConfig;
    this.loadTokenizer = parts.loadTokenizer;
    this.chatTemplate = parts.chatTemplate;
    this.engine = parts.engine;
    this.backend = parts.backend;
    this.closeFiles = parts.closeFiles;
    this.draft = parts.draft ?? null;
    this.scheduler = new Scheduler(parts.engine, () => this.tokenizer, { ...parts.scheduler, drafter: (mode, request) => this.drafter(mode, request) });
  }

  /** A request's drafter for speculative decoding. */
  private drafter(mode: Exclude<SpeculationMode, "off">, request: GenerationRequest): Drafter {
    if (mode === "ngram") return new NgramDrafter();
    if (mode === "tree") return new TreeDrafter(this.draft === null ? null : new DraftModel(this.draft.engine, this.tokenizer.vocabSize), request.sampling ?? {});
    if (this.draft === null) {
      throw new UsageError(`speculative decoding "${mode}" needs a draft model`, "load one with --draft-model PATH (draft_model): a small model with the same vocabulary; or use --speculate ngram, which needs none");
    }
    return new ModelDrafter(this.draft.engine, request.sampling ?? {}, this.tokenizer.vocabSize);
  }

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

  /** The request a prompt and options make (defaults from generation_config.json). */
  request(prompt: readonly number[], opts: GenerateCallOptions = {}, sequence?: Sequence): GenerationRequest {
    const o = this.resolveOptions(opts);
    const { temperature, topK, topP, minP, repetitionPenalty, frequencyPenalty, presencePenalty, seed } = o;
    return {
      prompt,
      maxNewTokens: o.maxNewTokens,
      sampling: { temperature, topK, topP, minP, repetitionPenalty, frequencyPenalty, presencePenalty, seed },
      stop: o.stop,
      eosIds: o.eosIds ?? this.eosIds,
      logprobs: o.logprobs,
      speculate: o.speculate,
      draftTokens: o.draftTokens,
      adaptiveDraft: o.adaptiveDraft,
      ...(sequence ? { sequence } : {}),
    };
  }

  /** Streams generated tokens with their text; the generator's return value is the result. */
  stream(input: PromptInput, opts: GenerateCallOptions = {}): AsyncGenerator<GenerationChunk, GenerationResult> {
    return generateStream(this.scheduler, this.request(this.encodePrompt(input), opts), { signal: opts.signal, onLogits: (l) => (this.lastLogits = l) });
  }

  async generate(input: PromptInput, opts: GenerateCallOptions = {}): Promise<GenerationResult> {
    return drain(this.stream(input, opts));
  }

  /** The template's text for a conversation (transformers' apply_chat_template(tokenize=False)). */
  applyChatTemplate(messages: readonly ChatMessage[], o: ChatTemplateOptions = {}): string {
    return this.template().render(messages, this.tokenizer, o);
  }

  /** Streams the assistant's reply to a conversation rendered with the model's chat template. */
  chatStream(messages: readonly ChatMessage[], opts: GenerateCallOptions = {}): AsyncGenerator<GenerationChunk, GenerationResult> {
    const prompt = this.template().encode(messages, this.tokenizer);
    return generateStream(this.scheduler, this.request(prompt, this.chatOptions(opts)), { signal: opts.signal, onLogits: (l) => (this.lastLogits = l) });
  }

  /** A chat reply also ends where the chat format says a turn ends (ChatGLM3's <|user|>). */
  chatOptions(opts: GenerateCallOptions): GenerateCallOptions {
    const format = this.template();
    const stopIds = format.stopIds(this.tokenizer);
    return {
      ...opts,
      eosIds: opts.eosIds ?? (stopIds.length === 0 ? undefined : [...new Set([...this.eosIds, ...stopIds])]),
      stop: opts.stop ?? (format.stopTexts.length === 0 ? undefined : format.stopTexts),
    };
  }

  async chat(messages: readonly ChatMessage[], opts: GenerateCallOptions = {}): Promise<GenerationResult> {
    return drain(this.chatStream(messages, opts));
  }

  /** A conversation that keeps its KV cache between turns: each turn prefills only its new tokens. */
  newChat(system?: string): ChatSession {
    return new ChatSession(this, this.template(), system);
  }

  private template(): ChatFormat {
    if (this.chatTemplate === null) throw noChatTemplate(`model "${this.config.modelType}"`);
    return this.chatTemplate;
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
    this.scheduler.dispose();
    this.draft?.dispose();
    this.engine.dispose();
    this.closeFiles();
    this.backend.destroy();
  }
}

async function drain(it: AsyncGenerator<GenerationChunk, GenerationResult>): Promise<GenerationResult> {
  for (;;) {
    const r = await it.next();
    if (r.done) return r.value;
  }
}

/**
 * A chat whose earlier turns stay in the KV cache: the whole conversation is rendered each turn,
 * and only what differs from the cached tokens (the new user turn, the template's glue) is fed.
 */
export class ChatSession {
  readonly messages: ChatMessage[] = [];
  private seq: Sequence;
  /** Prompt tokens of the last turn that were already in the cache. */
  lastCachedTokens = 0;

  constructor(
    private readonly model: CausalLM,
    private readonly template: ChatFormat,
    private readonly system?: string,
  ) {
    this.seq = model.newSequence();
    if (system !== undefined) this.messages.push({ role: "system", content: system });
  }

  /** Streams the reply to `text`; the reply joins the conversation when it completes. */
  async *send(text: string, opts: GenerateCallOptions = {}): AsyncGenerator<GenerationChunk, GenerationResult> {
    const messages = [...this.messages, { role: "user", content: text }];
    const prompt = this.template.encode(messages, this.model.tokenizer);
    const it = generateStream(this.model.scheduler, this.model.request(prompt, this.model.chatOptions(opts), this.seq), { signal: opts.signal });
    let r = await it.next();
    while (!r.done) {
      yield r.value;
      r = await it.next();
    }
    this.lastCachedTokens = r.value.cachedTokens;
    this.messages.push({ role: "user", content: text }, { role: "assistant", content: r.value.text });
    return r.value;
  }

  /** Forgets the conversation (the system message stays) and frees its pages. */
  reset(): void {
    this.messages.length = this.system === undefined ? 0 : 1;
    this.seq.dispose();
    this.seq = this.model.newSequence();
  }

  dispose(): void {
    this.seq.dispose();
  }
}
