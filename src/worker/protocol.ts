// Messages between WorkerModel (the caller's thread) and model-worker.ts (the engine's thread).
import type { GenerationChunk, GenerationResult } from "../engine/generate.ts";
import type { SchedulerStats } from "../engine/scheduler.ts";
import type { FetchStats } from "../engine/weight-provider.ts";
import type { FromPretrainedOptions } from "../model/auto-model.ts";
import type { GenerateCallOptions, PromptInput } from "../model/causal-lm.ts";
import type { ChatMessage } from "../tokenizer/chat-template.ts";

/** Options that survive structured cloning (no callbacks, no AbortSignal, no tokenizer object). */
export type LoadOptions = Omit<FromPretrainedOptions, "onNotice" | "onSplitProgress" | "tokenizer">;
export type WorkerGenerateOptions = Omit<GenerateCallOptions, "signal">;

/** What a request generates from: a prompt, or a conversation through the chat template. */
export type WorkerInput = { readonly prompt: PromptInput } | { readonly messages: readonly ChatMessage[] };

export type ToWorker =
  | { type: "load"; path: string; options: LoadOptions }
  | { type: "generate"; id: number; input: WorkerInput; options: WorkerGenerateOptions }
  | { type: "abort"; id: number }
  | { type: "metrics"; id: number };

export interface WireError {
  name: string;
  message: string;
  hint?: string;
}

/** What the worker reports of a loaded model. */
export interface ModelInfo {
  readonly modelType: string;
  readonly vocabSize: number;
  readonly backend: string;
  readonly context: number;
  readonly hasChatTemplate: boolean;
  readonly parallel: number;
}

/** The engine's state for /metrics. */
export interface WorkerMetrics {
  readonly scheduler: SchedulerStats;
  readonly fetched: FetchStats | null;
  readonly streamedBytesPerPass: number;
}

export type FromWorker =
  | { type: "loaded"; info: ModelInfo }
  | { type: "notice"; line: string }
  | { type: "load-error"; error: WireError }
  | { type: "accepted"; id: number }
  | { type: "chunk"; id: number; chunk: GenerationChunk }
  | { type: "done"; id: number; result: GenerationResult }
  | { type: "error"; id: number; error: WireError }
  | { type: "metrics"; id: number; metrics: WorkerMetrics };
