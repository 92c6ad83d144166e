// The tokenizer of a Hugging Face model folder: its tokenizer.json when it has one; otherwise the
// tokenizer its family's remote code would build from tokenizer.model or qwen.tiktoken.
import { existsSync } from "node:fs";
import { join } from "node:path";
import { ModelFormatError } from "../errors.ts";
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
