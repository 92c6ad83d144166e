// Which architecture file runs each Hugging Face model_type. A model type that is an existing
// architecture with other defaults is one row here pointing at that file (its defaults live in the
// file's variant table); a new architecture is one file and one row. Configs of the families that
// transformers runs as remote code are also recognised by the class names their auto_map (or
// architectures) lists; those names are only matched, the Python they point to is never read.
import { noRowReads, type Architecture, type ModelArch } from "../architecture.ts";
import type { ModelConfig } from "../config.ts";
import type { ConfigReader } from "../config-reader.ts";
import type { ModelSource } from "../model-source.ts";
import { checkPlanShapes } from "../plan-check.ts";
import { own } from "../../util/validate.ts";
import { baichuan } from "./baichuan.ts";
import { chatglm } from "./chatglm.ts";
import { deepseek } from "./deepseek.ts";
import { internlm } from "./internlm.ts";
import { internlm2 } from "./internlm2.ts";
import { llama } from "./llama.ts";
import { mixtral } from "./mixtral.ts";
import { qwen } from "./qwen.ts";
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
  chatglm,
  baichuan,
  internlm,
  internlm2,
  qwen,
  deepseek_v2: deepseek,
  deepseek_v3: deepseek,
};

/** Remote-code model classes (the part after the last dot of an auto_map entry) → model_type. */
const REMOTE_CLASSES: Record<string, string> = {
  ChatGLMForConditionalGeneration: "chatglm",
  ChatGLMModel: "chatglm",
  BaiChuanForCausalLM: "baichuan",
  BaichuanForCausalLM: "baichuan",
  InternLMForCausalLM: "internlm",
  InternLM2ForCausalLM: "internlm2",
  QWenLMHeadModel: "qwen",
};

export const SUPPORTED_MODEL_TYPES = Object.keys(MODEL_TYPES);

/** DeepSeek's config, which a deepseek2 GGUF file's metadata (gguf-deepseek.ts) is read into. */
export type { DeepseekConfig } from "./deepseek.ts";

export function architectureFor(modelType: string): Architecture<ModelConfig> | undefined {
  return own(MODEL_TYPES, modelType);
}

/**
 * The model_type a config.json means: its own when supported, else the one its auto_map's or
 * architectures' class names stand for; undefined when neither is known.
 */
export function modelTypeOf(r: ConfigReader): string | undefined {
  const own = r.raw.model_type;
  if (typeof own === "string" && architectureFor(own) !== undefined) return own;
  const cls = r.classNames().find((n) => Object.hasOwn(REMOTE_CLASSES, n));
  return cls === undefined ? undefined : REMOTE_CLASSES[cls];
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
export function buildArchitecture(
  source: Pick<ModelSource, "config" | "configName" | "tensors" | "ropeInterleaved" | "ropeFreqFactors">,
  rowNorms: (name: string) => Float32Array = noRowReads,
): ModelArch {
  const { config, tensors } = source;
  const arch = architectureNamed(config.arch).build(config, {
    has: (n) => tensors.has(n),
    rowNorms,
    configName: source.configName,
    ropeInterleaved: source.ropeInterleaved,
    ropeFreqFactors: source.ropeFreqFactors,
  });
  checkPlanShapes(arch.plan, tensors, source.configName);
  return arch;
}
