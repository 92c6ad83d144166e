// Where a model comes from: a Hugging Face folder (config.json, safetensors, tokenizer.json, or
// an AirLLM split of one) or a single llama.cpp GGUF file. Both become the same things for the
// engine: a config, named tensors, a tokenizer made on first use, and the RoPE layout.
import { existsSync, statSync } from "node:fs";
import type { TensorSource } from "../engine/tensor-source.ts";
import { ModelFormatError } from "../errors.ts";
import { openWeightFiles } from "../formats/model-files.ts";
import type { TextTokenizer } from "../tokenizer/text-tokenizer.ts";
import { AirTokenizer } from "../tokenizer/tokenizer.ts";
import { loadModelConfig, type ModelConfig } from "./config.ts";
import { loadGenerationConfig, type GenerationConfig } from "./generation-config.ts";
import { loadGgufModel } from "./gguf-model.ts";

export interface ModelSource {
  readonly config: ModelConfig;
  readonly generationConfig: GenerationConfig | null;
  readonly tensors: TensorSource;
  /** Read on first use: a model driven by ids alone needs no tokenizer. */
  readonly tokenizer: () => TextTokenizer;
  /** q/k rows hold rotary pairs side by side (GGUF), not in rotate-half order (Hugging Face). */
  readonly ropeInterleaved: boolean;
  /** Divisors of the rotary frequencies (GGUF rope_freqs.weight), or null. */
  readonly ropeFreqFactors: Float32Array | null;
  close(): void;
}

export function openModelSource(path: string): ModelSource {
  if (!existsSync(path)) {
    throw new ModelFormatError(`model "${path}" does not exist`, "pass a Hugging Face model folder (config.json, safetensors, tokenizer.json) or a .gguf file");
  }
  if (statSync(path).isFile()) {
    if (!path.endsWith(".gguf")) {
      throw new ModelFormatError(`"${path}" is a file but not a .gguf file`, "pass a .gguf file, or the folder that holds config.json and the safetensors weights");
    }
    const g = loadGgufModel(path);
    return {
      config: g.config,
      generationConfig: null,
      tensors: g.source,
      tokenizer: () => g.tokenizer(),
      ropeInterleaved: g.ropeInterleaved,
      ropeFreqFactors: g.ropeFreqFactors,
      close: () => g.close(),
    };
  }
  const config = loadModelConfig(path);
  const generationConfig = loadGenerationConfig(path);
  const files = openWeightFiles(path);
  return {
    config,
    generationConfig,
    tensors: files,
    tokenizer: () => AirTokenizer.fromDir(path),
    ropeInterleaved: false,
    ropeFreqFactors: null,
    close: () => files.close(),
  };
}
