// Where a model comes from: a Hugging Face folder (config.json, safetensors, tokenizer.json, or
// an AirLLM split of one) or a single llama.cpp GGUF file. Both become the same things for the
// engine: a config, named tensors, a tokenizer made on first use, and the RoPE layout.
import { join } from "node:path";
import type { TensorSource } from "../engine/tensor-source.ts";
import { ModelFormatError, UsageError } from "../errors.ts";
import { notAFile, pathKind } from "../formats/input-files.ts";
import { openWeightFiles, WeightFiles } from "../formats/model-files.ts";
import { splitModel, storedDtype, type Compression, type SplitProgress } from "../split/split-model.ts";
import { tensorBytes } from "../backend/backend.ts";
import type { TextTokenizer } from "../tokenizer/text-tokenizer.ts";
import { loadTokenizer } from "../tokenizer/load-tokenizer.ts";
import { ChatTemplate, type ChatFormat } from "../tokenizer/chat-template.ts";
import { loadChatFormat } from "../tokenizer/family-chat.ts";
import { quote } from "../util/validate.ts";
import { CONFIG_FILE, loadModelConfig, type ModelConfig } from "./config.ts";
import { loadGenerationConfig, type GenerationConfig } from "./generation-config.ts";
import { loadGgufModel } from "./gguf-model.ts";

export interface ModelSource {
  readonly config: ModelConfig;
  /** Where the config came from, for messages: a config.json path, or a GGUF file's metadata. */
  readonly configName: string;
  readonly generationConfig: GenerationConfig | null;
  readonly tensors: TensorSource;
  /** Read on first use: a model driven by ids alone needs no tokenizer. */
  readonly tokenizer: () => TextTokenizer;
  /** q/k rows hold rotary pairs side by side (GGUF), not in rotate-half order (Hugging Face). */
  readonly ropeInterleaved: boolean;
  /** Divisors of the rotary frequencies (GGUF rope_freqs.weight), or null. */
  readonly ropeFreqFactors: Float32Array | null;
  /** The chat template the model ships (or its family's chat code), read on first use (null when it has none). */
  readonly chatTemplate: () => ChatFormat | null;
  close(): void;
}

export interface ModelSourceOptions {
  /** AirLLM's compression: read `splitted_model.4bit|8bit/`, creating (or finishing) it first. */
  readonly compression?: Compression;
  /** Where the compressed split lives (AirLLM's layer_shards_saving_path); default: the model folder. */
  readonly splitDir?: string;
  /** Progress of a compressed split being written. */
  readonly onSplitProgress?: (p: SplitProgress) => void;
}

const HINT_MODEL = "pass a Hugging Face model folder (config.json, safetensors, tokenizer.json) or a .gguf file";

export function openModelSource(path: string, options: ModelSourceOptions = {}): ModelSource {
  const kind = pathKind(path);
  if (kind === "missing") throw new ModelFormatError(`model ${quote(path, 200)} does not exist`, HINT_MODEL);
  // A FIFO, a device or a broken link is neither a folder nor a GGUF file: said so, not "no config.json".
  if (kind !== "file" && kind !== "dir") throw new ModelFormatError(`model ${notAFile(path, kind)}`, HINT_MODEL);
  if (kind === "file") {
    if (!path.endsWith(".gguf")) {
      throw new ModelFormatError(`${quote(path, 200)} is a file but not a .gguf file`, "pass a .gguf file, or the folder that holds config.json and the safetensors weights");
    }
    if (options.compression !== undefined) {
      throw new UsageError(`--compression ${options.compression} applies to Hugging Face folders; ${quote(path, 200)} is a GGUF file, quantized already`, "drop --compression, or pick a more quantized GGUF file");
    }
    const g = loadGgufModel(path);
    return {
      config: g.config,
      configName: g.configName,
      generationConfig: null,
      tensors: g.source,
      tokenizer: () => g.tokenizer(),
      ropeInterleaved: g.ropeInterleaved,
      ropeFreqFactors: g.ropeFreqFactors,
      chatTemplate: () => (g.chatTemplate === null ? null : new ChatTemplate(g.chatTemplate, `"${path}"`)),
      close: () => g.close(),
    };
  }
  const config = loadModelConfig(path);
  const generationConfig = loadGenerationConfig(path);
  // A compressed split is reused when every entry has its .done marker; otherwise the missing
  // entries are (re)written from the originals before it is opened.
  const files = options.compression === undefined
    ? openWeightFiles(path)
    : WeightFiles.open(splitModel(path, { compression: options.compression, outDir: options.splitDir, onProgress: options.onSplitProgress }).splitDir);
  return {
    config,
    configName: quote(join(path, CONFIG_FILE), 200),
    generationConfig,
    tensors: files,
    // tokenizer.json, else the family's tokenizer.model / qwen.tiktoken (remote-code models).
    tokenizer: () => loadTokenizer(path),
    ropeInterleaved: false,
    ropeFreqFactors: null,
    chatTemplate: () => loadChatFormat(path),
    close: () => files.close(),
  };
}

/**
 * The model's config and tensor headers without writing anything: with `compression`, tensors
 * report the dtype and bytes a compressed split would store (from their shapes), so a plan can be
 * made before the split exists.
 */
export function inspectModelSource(path: string, compression?: Compression): ModelSource {
  const source = openModelSource(path);
  if (compression === undefined) return source;
  if (pathKind(path) === "file") {
    source.close();
    throw new UsageError(`--compression ${compression} applies to Hugging Face folders; ${quote(path, 200)} is a GGUF file, quantized already`, "drop --compression");
  }
  return { ...source, tensors: sizedAsCompressed(source.tensors, compression) };
}

/** `files` as a compressed split would store them: each tensor's dtype and bytes from its shape. */
export function sizedAsCompressed(files: TensorSource, compression: Compression): TensorSource {
  return {
    has: (name) => files.has(name),
    unused: (used) => files.unused(used),
    checkUnchanged: () => files.checkUnchanged(),
    get: (name) => {
      const t = files.get(name);
      const dtype = storedDtype(t, compression);
      return dtype === t.dtype ? t : { ...t, dtype, bytes: tensorBytes(dtype, t.shape) };
    },
    close: () => files.close(),
  };
}
