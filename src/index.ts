// The library: `import { AutoModel } from "airllm"`.
export { AutoModel, type FromPretrainedOptions } from "./model/auto-model.ts";
export { CausalLM, type GenerateCallOptions, type PromptInput } from "./model/causal-lm.ts";
export type { GenerationChunk, GenerationResult, FinishReason, GenerateOptions } from "./engine/generate.ts";
export type { Sequence } from "./engine/sequence.ts";
export type { ModelConfig } from "./model/config.ts";
export { AirTokenizer } from "./tokenizer/tokenizer.ts";
export type { Backend, BackendCaps, Weight, DType } from "./backend/backend.ts";
export { AirLLMError, ContextLengthError, ModelFormatError, UsageError, NativeError } from "./errors.ts";
export { ChatSession } from "./model/causal-lm.ts";
export { ChatTemplate, type ChatFormat, type ChatMessage } from "./tokenizer/chat-template.ts";
export { WorkerModel } from "./worker/worker-model.ts";
