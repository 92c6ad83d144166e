// Messages between WorkerModel (the caller's thread) and model-worker.ts (the engine's thread).
import type { GenerationChunk, GenerationResult } from "../engine/generate.ts";
import type { FromPretrainedOptions } from "../model/auto-model.ts";
import type { GenerateCallOptions, PromptInput } from "../model/causal-lm.ts";

/** Options that survive structured cloning (no callbacks, no AbortSignal). */
export type LoadOptions = Omit<FromPretrainedOptions, "onNotice">;
export type WorkerGenerateOptions = Omit<GenerateCallOptions, "signal">;

export type ToWorker =
  | { type: "load"; path: string; options: LoadOptions }
  | { type: "generate"; id: number; prompt: PromptInput; options: WorkerGenerateOptions }
  | { type: "abort"; id: number };

export interface WireError {
  name: string;
  message: string;
  hint?: string;
}

export type FromWorker =
  | { type: "loaded"; modelType: string; vocabSize: number; backend: string }
  | { type: "notice"; line: string }
  | { type: "load-error"; error: WireError }
  | { type: "chunk"; id: number; chunk: GenerationChunk }
  | { type: "done"; id: number; result: GenerationResult }
  | { type: "error"; id: number; error: WireError };
