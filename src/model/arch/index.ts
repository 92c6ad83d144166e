// Which architecture file runs each Hugging Face model_type. A model type that is an existing
// architecture with other defaults is one row here pointing at that file (its defaults live in the
// file's variant table); a new architecture is one file and one row.
import type { Architecture, ModelArch } from "../architecture.ts";
import type { ModelConfig } from "../config.ts";
import type { ModelSource } from "../model-source.ts";
import { checkPlanShapes } from "../plan-check.ts";
import { own } from "../../util/validate.ts";
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
  return own(MODEL_TYPES, modelType);
}

/** The architecture file named by config.arch. */
export function architectureNamed(name: string): Architecture<ModelConfig> {
  const arch = Object.values(MODEL_TYPES).find((a) => a.name === name);
  if (arch === undefined) throw new Error(`internal: no architecture file named ${name}`);
  return arch;
}

/**
 * The architecture of `source`'s config built over its tensors, and the tensors checked against
 * it (shapes, dtypes, nothing left over): what loading, planning and splitting all start from.
 */
export function buildArchitecture(source: Pick<ModelSource, "config" | "configName" | "tensors" | "ropeInterleaved" | "ropeFreqFactors">): ModelArch {
  const { config, tensors } = source;
  const arch = architectureNamed(config.arch).build(config, {
    has: (n) => tensors.has(n),
    configName: source.configName,
    ropeInterleaved: source.ropeInterleaved,
    ropeFreqFactors: source.ropeFreqFactors,
  });
  checkPlanShapes(arch.plan, tensors, source.configName);
  return arch;
}
