// Which files of a repo running it needs, and nothing else: config.json, generation_config.json,
// the tokenizer files, and one set of weights the loader reads — safetensors (sharded per the
// index), else one GGUF file, else PyTorch .bin only where a safe reader exists. Never a second
// weight format, never a subfolder's copy (`original/`, `onnx/`), never README or images.
import { UsageError } from "../errors.ts";
import { HubError } from "./hub-errors.ts";

export const SAFETENSORS_SINGLE = "model.safetensors";
export const SAFETENSORS_INDEX = "model.safetensors.index.json";
const BIN_SINGLE = "pytorch_model.bin";
const BIN_INDEX = "pytorch_model.bin.index.json";
/** llama.cpp's default pick from a GGUF repo, as its -hf and ollama do. */
const DEFAULT_QUANT = "Q4_K_M";

const CONFIG_FILES = ["config.json", "generation_config.json"];
/** Tokenizer files of the formats our tokenizers read or may read (HF, SentencePiece, tiktoken, BPE). */
const TOKENIZER = /^(tokenizer\.json|tokenizer_config\.json|tokenizer\.model|special_tokens_map\.json|added_tokens\.json|vocab\.json|merges\.txt|chat_template\.jinja|chat_template\.json|[^/]*\.tiktoken)$/;

/**
 * Whether this build reads pytorch_model*.bin with a safe (whitelisted) unpickler
 * (src/formats/torch-pickle.ts): a repo with only .bin weights is then pulled; without one it would
 * be refused before anything is downloaded.
 */
export const READS_PYTORCH_BIN = true;

export type WeightsKind = "safetensors" | "gguf" | "pytorch-bin";

export interface FileChoice {
  readonly kind: WeightsKind;
  /** Config and tokenizer files, and a shard index: fetched before the fit check. */
  readonly small: readonly string[];
  /** The index naming the shards, when the weights are sharded (one of `small`). */
  readonly index: string | null;
  /** Weight files known without reading the index (all of them for unsharded weights). */
  readonly weights: readonly string[];
  /** For GGUF: the file the model is loaded from. */
  readonly ggufFile: string | null;
}

export interface ChoiceOptions {
  /** GGUF quantization asked for with ORG/NAME:QUANT. */
  readonly quant: string | null;
  /** Whether this build reads pytorch_model*.bin safely (a whitelisted unpickler). */
  readonly readsPytorchBin: boolean;
}

const isGguf = (f: string) => f.toLowerCase().endsWith(".gguf") && !/(^|\/)mmproj/i.test(f);
const GGUF_PART = /-(\d{5})-of-(\d{5})\.gguf$/i;

/** Whether `file` is of quantization `quant` (Q4_K_M in model-Q4_K_M.gguf, model.q4_k_m.gguf, Q4_K_M/x.gguf; not in Q4_K_M_L). */
export function ggufQuantMatches(file: string, quant: string): boolean {
  const name = file.toUpperCase();
  const q = quant.toUpperCase();
  for (let at = name.indexOf(q); at >= 0; at = name.indexOf(q, at + 1)) {
    const before = at === 0 ? "/" : name[at - 1];
    const after = name[at + q.length] ?? ".";
    if (/[./_-]/.test(before) && /[./-]/.test(after)) return true;
  }
  return false;
}

function chooseGguf(repo: string, files: readonly string[], quant: string | null): string {
  const ggufs = files.filter(isGguf);
  const wanted = quant ?? (ggufs.length === 1 ? null : DEFAULT_QUANT);
  const matches = wanted === null ? ggufs : ggufs.filter((f) => ggufQuantMatches(f, wanted));
  const available = () => ggufs.slice(0, 12).join(", ") + (ggufs.length > 12 ? `, … (${ggufs.length} files)` : "");
  if (matches.length === 0) {
    throw new UsageError(
      quant === null ? `${repo} has several GGUF files and none is ${DEFAULT_QUANT}: ${available()}` : `${repo} has no GGUF file of quantization ${quant}: ${available()}`,
      `pick one with ${repo}:QUANT, e.g. ${repo}:Q8_0`,
    );
  }
  if (matches.some((f) => GGUF_PART.test(f))) {
    throw new UsageError(`${repo}: the ${wanted} weights are split into several GGUF files (${matches.join(", ")}); airllm reads single-file GGUF`, "pick a quantization that is one file, or merge the parts with llama.cpp's llama-gguf-split --merge");
  }
  if (matches.length > 1) throw new UsageError(`${repo}: ${matches.length} GGUF files are ${wanted}: ${matches.join(", ")}`, "name the file's quantization more exactly");
  return matches[0];
}

export function chooseFiles(repo: string, files: readonly string[], o: ChoiceOptions): FileChoice {
  const top = new Set(files.filter((f) => !f.includes("/")));
  const small = [...CONFIG_FILES.filter((f) => top.has(f)), ...[...top].filter((f) => TOKENIZER.test(f)).sort()];
  const gguf = (): FileChoice => {
    const file = chooseGguf(repo, files, o.quant);
    return { kind: "gguf", small: [], index: null, weights: [file], ggufFile: file };
  };
  if (o.quant !== null) return gguf();
  if (top.has(SAFETENSORS_INDEX)) return { kind: "safetensors", small: [...small, SAFETENSORS_INDEX], index: SAFETENSORS_INDEX, weights: [], ggufFile: null };
  if (top.has(SAFETENSORS_SINGLE)) return { kind: "safetensors", small, index: null, weights: [SAFETENSORS_SINGLE], ggufFile: null };
  if (files.some(isGguf)) return gguf();
  const bin = top.has(BIN_INDEX) || top.has(BIN_SINGLE);
  if (bin && o.readsPytorchBin) {
    return top.has(BIN_INDEX)
      ? { kind: "pytorch-bin", small: [...small, BIN_INDEX], index: BIN_INDEX, weights: [], ggufFile: null }
      : { kind: "pytorch-bin", small, index: null, weights: [BIN_SINGLE], ggufFile: null };
  }
  const seen = files.filter((f) => /\.(safetensors|bin|pt|pth|gguf|onnx|h5|msgpack)$/.test(f)).slice(0, 6);
  throw new HubError(
    `${repo} has no weights airllm reads: no ${SAFETENSORS_SINGLE}, no ${SAFETENSORS_INDEX}, no .gguf file` + (seen.length > 0 ? ` (it has ${seen.join(", ")})` : ""),
    bin ? "PyTorch pickles are not read; look for a safetensors or GGUF conversion of this model on the hub" : "look for a safetensors or GGUF version of this model on the hub",
  );
}

/** The shard files an index names (its `weight_map` values), relative to the repo root. */
export function shardsOfIndex(indexPath: string, index: unknown): string[] {
  const map = (index as { weight_map?: unknown } | null)?.weight_map;
  if (map === null || typeof map !== "object") throw new HubError(`${indexPath} has no weight_map`, "the repo's index is malformed; report it to the model's authors");
  const dir = indexPath.includes("/") ? indexPath.slice(0, indexPath.lastIndexOf("/") + 1) : "";
  const shards = [...new Set(Object.values(map as Record<string, unknown>))];
  for (const s of shards) {
    if (typeof s !== "string" || s === "" || s.startsWith("/") || s.split("/").includes("..")) throw new HubError(`${indexPath} names an unsafe shard file ${JSON.stringify(s)}`, "a shard must be a plain path inside the repo; report the index to the model's authors");
  }
  return (shards as string[]).map((s) => dir + s).sort();
}
