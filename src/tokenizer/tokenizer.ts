// Text ↔ token ids for a Hugging Face model folder: `tokenizer.json` run by @huggingface/tokenizers,
// with the policy a generation runtime needs on top (when to add BOS, which ids end a sequence).

import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { Tokenizer } from "@huggingface/tokenizers";
import { ModelFormatError, UsageError } from "../errors.ts";

export const TOKENIZER_FILE = "tokenizer.json";
export const TOKENIZER_CONFIG_FILE = "tokenizer_config.json";
/** Read only for `eos_token_id`: generation stops at these ids too (stories260K: [2, 1]). */
const EOS_SOURCES = ["generation_config.json", "config.json"];

/** The fields of `tokenizer_config.json` this class reads; the rest go to the library untouched. */
export interface TokenizerConfig {
  bos_token?: SpecialTokenField;
  eos_token?: SpecialTokenField;
  add_bos_token?: boolean;
  [key: string]: unknown;
}

/** transformers writes special tokens either as the text or as a serialized AddedToken. */
type SpecialTokenField = string | { content: string } | null;

export interface EncodeOptions {
  /** Prepend BOS when the model's tokenizer does (default true); false never adds it. */
  addBos?: boolean;
}

export interface DecodeOptions {
  /** Drop special tokens (`<s>`, `<|im_end|>`, ...) from the text (default false). */
  skipSpecial?: boolean;
}

export class AirTokenizer {
  /** The id prepended by encode(), or undefined when the model has no BOS (Qwen2). */
  readonly bosId: number | undefined;
  /** Ids that end generation: the tokenizer's eos_token, then any `eos_token_id` passed in. */
  readonly eosIds: readonly number[];
  /** One past the largest token id (added tokens included); ids at or above it cannot be decoded. */
  readonly vocabSize: number;
  /** Whether encode() prepends BOS when asked to (see the constructor). */
  readonly addsBos: boolean;
  readonly #tokenizer: Tokenizer;

  /**
   * @param tokenizerJson the parsed `tokenizer.json`
   * @param config the parsed `tokenizer_config.json` ({} when the folder has none)
   * @param extraEosIds `eos_token_id` values from generation_config.json / config.json
   */
  constructor(tokenizerJson: object, config: TokenizerConfig = {}, extraEosIds: readonly number[] = []) {
    try {
      this.#tokenizer = new Tokenizer(tokenizerJson, config);
    } catch (e) {
      throw new ModelFormatError(`${TOKENIZER_FILE} cannot be loaded: ${(e as Error).message}`, "Download the model's tokenizer.json again; it must be the `tokenizers` library's format.");
    }
    this.vocabSize = this.#tokenizer.model!.vocab.length;

    const bos = this.#specialTokenId(config.bos_token, "bos_token");
    // What the post-processor template puts in front of a text when special tokens are on.
    const plain = this.#tokenizer.encode("a", { add_special_tokens: false }).ids;
    const templated = this.#tokenizer.encode("a", { add_special_tokens: true }).ids;
    const templateBos = templated.length > plain.length && templated[0] !== plain[0] ? templated[0] : undefined;
    this.bosId = bos ?? templateBos;
    // transformers' Llama/Gemma tokenizers rebuild the template from add_bos_token, so the config
    // wins over tokenizer.json; without it (Llama-3, PreTrainedTokenizerFast) the template decides.
    this.addsBos = config.add_bos_token ?? (templateBos !== undefined && templateBos === this.bosId);
    if (this.addsBos && this.bosId === undefined) {
      throw new ModelFormatError(`${TOKENIZER_CONFIG_FILE} sets add_bos_token but names no bos_token in the vocabulary`, "Set bos_token in tokenizer_config.json, or add_bos_token: false.");
    }

    const eos = this.#specialTokenId(config.eos_token, "eos_token");
    const eosIds = eos === undefined ? [] : [eos];
    for (const id of extraEosIds) {
      if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize) {
        throw new ModelFormatError(`eos_token_id ${id} is outside the tokenizer's vocabulary (${this.vocabSize} ids)`, "Check eos_token_id in generation_config.json / config.json against tokenizer.json.");
      }
      if (!eosIds.includes(id)) eosIds.push(id);
    }
    this.eosIds = eosIds;
  }

  /**
   * Load `dir/tokenizer.json` and, when present, `dir/tokenizer_config.json`; `eos_token_id` is
   * also read from `generation_config.json` and `config.json`, which is where stop ids beyond the
   * tokenizer's eos_token live (Llama-3-Instruct's <|eot_id|>, stories260K's <s>).
   */
  static fromDir(dir: string): AirTokenizer {
    const tokenizerPath = join(dir, TOKENIZER_FILE);
    if (!existsSync(tokenizerPath)) {
      throw new ModelFormatError(
        `no ${TOKENIZER_FILE} at "${tokenizerPath}"`,
        "Download tokenizer.json with the model (a model that only ships tokenizer.model must be converted: load it with transformers' AutoTokenizer and save_pretrained()).",
      );
    }
    const tokenizerJson = readJson(tokenizerPath) as object;
    const configPath = join(dir, TOKENIZER_CONFIG_FILE);
    const config = existsSync(configPath) ? (readJson(configPath) as TokenizerConfig) : {};
    const extraEos = configEosIds(dir);
    return new AirTokenizer(tokenizerJson, config, extraEos);
  }

  /** Token ids of `text`; special-token text in it (`<|im_start|>`) becomes those tokens. */
  encode(text: string, options: EncodeOptions = {}): number[] {
    // Special tokens off: the template may also append EOS/SEP (encoder models), and a prompt that
    // ends in EOS would end generation before it starts. BOS is the one addition we want.
    const ids = this.#tokenizer.encode(text, { add_special_tokens: false }).ids;
    return (options.addBos ?? true) && this.addsBos ? [this.bosId!, ...ids] : ids;
  }

  /**
   * The text of `ids`. Never applies transformers' clean_up_tokenization_spaces (which turns
   * "a ." into "a." and "do n't" into "don't"): generated text must be what the model produced,
   * decode(encode(s)) must give s back, and streaming must agree with one decode.
   */
  decode(ids: readonly number[], options: DecodeOptions = {}): string {
    if (ids.length === 0) return ""; // the library throws on an empty list
    for (const id of ids) {
      if (this.idToToken(id) === undefined) {
        throw new UsageError(
          `token id ${id} has no entry in the tokenizer (vocabulary of ${this.vocabSize} ids)`,
          "The model's embedding can be larger than the tokenizer (padding rows); mask logits of ids >= vocabSize before sampling.",
        );
      }
    }
    return this.#tokenizer.decode(ids as number[], { skip_special_tokens: options.skipSpecial ?? false, clean_up_tokenization_spaces: false });
  }

  /** The vocabulary entry of `id` ("▁Once", "<0x0A>", "<|im_end|>"), undefined when it has none. */
  idToToken(id: number): string | undefined {
    return Number.isInteger(id) && id >= 0 ? this.#tokenizer.id_to_token(id) : undefined;
  }

  /** The id of a vocabulary entry, undefined when it is not one. */
  tokenToId(token: string): number | undefined {
    return this.#tokenizer.token_to_id(token);
  }

  #specialTokenId(field: SpecialTokenField | undefined, name: string): number | undefined {
    if (field === undefined || field === null) return undefined;
    const content = typeof field === "string" ? field : field.content;
    const id = this.tokenToId(content);
    if (id === undefined) {
      throw new ModelFormatError(`${TOKENIZER_CONFIG_FILE}: ${name} "${content}" is not in ${TOKENIZER_FILE}'s vocabulary`, "The two files come from different models; download both again.");
    }
    return id;
  }
}

/** `eos_token_id` values of `dir/generation_config.json` and `dir/config.json`, in that order. */
export function configEosIds(dir: string): number[] {
  const ids: number[] = [];
  for (const name of EOS_SOURCES) {
    const path = join(dir, name);
    if (!existsSync(path)) continue;
    const value = (readJson(path) as { eos_token_id?: unknown }).eos_token_id;
    for (const id of Array.isArray(value) ? value : value === undefined || value === null ? [] : [value]) {
      if (typeof id !== "number") throw new ModelFormatError(`"${path}": eos_token_id holds ${JSON.stringify(id)}, not a token id`, "eos_token_id must be an integer or a list of integers.");
      ids.push(id);
    }
  }
  return ids;
}

export function readJson(path: string): unknown {
  try {
    return JSON.parse(readFileSync(path, "utf8"));
  } catch (e) {
    throw new ModelFormatError(`"${path}" is not readable JSON: ${(e as Error).message}`, "Download the file again.");
  }
}
