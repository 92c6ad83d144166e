// Which architecture file runs each Hugging Face model_type. A model type that is an existing
// architecture with other defaults is one row here pointing at that file (its defaults live in the
// file's variant table); a new architecture is one file and one row.
import type { Architecture } from "../architecture.ts";
import type { ModelConfig } from "../config.ts";
import { llama } from "./llama.ts";
import { mixtral } from "./mixtral.ts";
import { qwen3 } from "./qwen3.ts";
import { qwenMoe } from "./qwen-moe.ts";

const MODEL_TYPES: Record<string, Architecture<ModelConfig>> = {
  llama,
  mistral: llama,
  qwen2: llama,
  qwen3,
  mixtral,
  qwen2_moe: qwenMoe,
  qwen3_moe: qwenMoe,
};

export const SUPPORTED_MODEL_TYPES = Object.keys(MODEL_TYPES);

export function architectureFor(modelType: string): Architecture<ModelConfig> | undefined {
  return Object.hasOwn(MODEL_TYPES, modelType) ? MODEL_TYPES[modelType] : undefined;
}

/** The architecture file named by config.arch. */
export function architectureNamed(name: string): Architecture<ModelConfig> {
  const arch = Object.values(MODEL_TYPES).find((a) => a.name === name);
  if (arch === undefined) throw new Error(`internal: no architecture file named ${name}`);
  return arch;
}
