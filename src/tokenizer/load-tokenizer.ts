// The tokenizer of a Hugging Face model folder: its tokenizer.json when it has one; otherwise the
// tokenizer its family's remote code would build from tokenizer.model or qwen.tiktoken.
import { existsSync, statSync } from "node:fs";
import { join } from "node:path";
import { ModelFormatError, UsageError } from "../errors.ts";
import { GgufFile } from "../formats/gguf.ts";
import { GgufTokenizer } from "./gguf-tokenizer.ts";
import { loadRemoteCodeTokenizer, SENTENCEPIECE_FILE, TIKTOKEN_FILE } from "./remote-code-tokenizers.ts";
import type { TextTokenizer } from "./text-tokenizer.ts";
import { AirTokenizer, TOKENIZER_FILE } from "./tokenizer.ts";

export function loadTokenizer(dir: string): TextTokenizer {
  if (existsSync(join(dir, TOKENIZER_FILE))) return AirTokenizer.fromDir(dir);
  const tokenizer = loadRemoteCodeTokenizer(dir);
  if (tokenizer !== null) return tokenizer;
  throw new ModelFormatError(
    `no ${TOKENIZER_FILE}, ${SENTENCEPIECE_FILE} or ${TIKTOKEN_FILE} in "${dir}"`,
    `Download the model's tokenizer files with it (${TOKENIZER_FILE}, or the ${SENTENCEPIECE_FILE} / ${TIKTOKEN_FILE} its tokenization code reads).`,
  );
}

/** A tokenizer from any model path, without opening the weights: a folder's (above), or a GGUF
 *  file's embedded one. `close` releases the GGUF mapping. */
export function openTokenizer(path: string): { tokenizer: TextTokenizer; close: () => void } {
  if (!existsSync(path)) throw new UsageError(`model "${path}" does not exist`, "pass a Hugging Face model folder or a .gguf file");
  if (!statSync(path).isFile()) return { tokenizer: loadTokenizer(path), close: () => {} };
  if (!path.endsWith(".gguf")) throw new UsageError(`"${path}" is a file but not a .gguf file`, "pass a .gguf file, or the model folder that holds the tokenizer files");
  const file = GgufFile.open(path);
  try {
    return { tokenizer: new GgufTokenizer(file), close: () => file.close() };
  } catch (e) {
    file.close();
    throw e;
  }
}
