// Text ↔ token ids for a Hugging Face model folder: `tokenizer.json` run by @huggingface/tokenizers,
// with the policy a generation runtime needs on top (when to add BOS, which ids end a sequence).

import { join } from "node:path";
import { Tokenizer } from "@huggingface/tokenizers";
import { ModelFormatError, UsageError } from "../errors.ts";
import { pathKind, notAFile, readJsonObject, requireFile } from "../formats/input-files.ts";
import { checkId, quote, show } from "../util/validate.ts";
import { checkTokenizerConfig, checkTokenizerJson } from "./tokenizer-json.ts";

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

/** Where a tokenizer's files came from, for messages. */
export interface TokenizerPaths {
  readonly tokenizer: string;
  readonly config: string;
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
  /** UTF-8 bytes of the longest vocabulary piece: no token covers more of a text. */
  readonly maxTokenBytes: number;
  readonly #tokenizer: Tokenizer;
  readonly #paths: TokenizerPaths;

  /**
   * @param tokenizerJson the parsed `tokenizer.json`
   * @param config the parsed `tokenizer_config.json` ({} when the folder has none)
   * @param extraEosIds `eos_token_id` values from generation_config.json / config.json
   * @param paths where the two files came from (only for messages)
   */
  constructor(tokenizerJson: object, config: TokenizerConfig = {}, extraEosIds: readonly number[] = [], paths: TokenizerPaths = { tokenizer: TOKENIZER_FILE, config: TOKENIZER_CONFIG_FILE }) {
    this.#paths = paths;
    // Checked first: the library trusts its input and fails late, in its own words.
    const facts = checkTokenizerJson(tokenizerJson, paths.tokenizer);
    checkTokenizerConfig(config, paths.config);
    this.#tokenizer = this.#library("load", () => new Tokenizer(tokenizerJson, config));
    this.vocabSize = facts.idCount;
    this.maxTokenBytes = facts.maxPieceBytes;

    const bos = this.#specialTokenId(config.bos_token, "bos_token");
    // What the post-processor template puts in front of a text when special tokens are on.
    const plain = this.#encode("a", false);
    const templated = this.#encode("a", true);
    const templateBos = templated.length > plain.length && templated[0] !== plain[0] ? templated[0] : undefined;
    this.bosId = bos ?? templateBos;
    // transformers' Llama/Gemma tokenizers rebuild the template from add_bos_token, so the config
    // wins over tokenizer.json; without it (Llama-3, PreTrainedTokenizerFast) the template decides.
    this.addsBos = config.add_bos_token ?? (templateBos !== undefined && templateBos === this.bosId);
    if (this.addsBos && this.bosId === undefined) {
      throw new ModelFormatError(`${quote(paths.config, 200)} sets add_bos_token but names no bos_token in the vocabulary`, "Set bos_token in tokenizer_config.json, or add_bos_token: false.");
    }

    const eos = this.#specialTokenId(config.eos_token, "eos_token");
    const eosIds = eos === undefined ? [] : [eos];
    for (const id of extraEosIds) {
      checkId(id, "eos_token_id", this.vocabSize, (what) => {
        throw new ModelFormatError(`${what} (the vocabulary of ${quote(paths.tokenizer, 200)})`, "Check eos_token_id in generation_config.json / config.json against tokenizer.json.");
      });
      if (!eosIds.includes(id)) eosIds.push(id);
    }
    this.eosIds = eosIds;
  }

  /** A library call whose failure is the file's fault: named as tokenizer.json's, never raw. */
  #library<T>(what: string, f: () => T): T {
    try {
      return f();
    } catch (e) {
      throw new ModelFormatError(
        `${quote(this.#paths.tokenizer, 200)}: the tokenizer cannot ${what} (@huggingface/tokenizers: ${(e as Error).message})`,
        "Download the model's tokenizer.json again; it must be the `tokenizers` library's format.",
      );
    }
  }

  /** The library's ids for `text`, each checked: a piece with no id (and no unk_token) is the file's fault. */
  #encode(text: string, special: boolean): number[] {
    const ids = this.#library("encode text", () => this.#tokenizer.encode(text, { add_special_tokens: special }).ids);
    for (const id of ids) {
      if (!Number.isSafeInteger(id) || id < 0 || id >= this.vocabSize) {
        throw new ModelFormatError(
          `${quote(this.#paths.tokenizer, 200)}: encoding ${quote(text)} gives ${show(id)}, not a token id (a piece outside the vocabulary, and no unk_token)`,
          "Download the model's tokenizer.json again.",
        );
      }
    }
    return ids;
  }

  /**
   * Load `dir/tokenizer.json` and, when present, `dir/tokenizer_config.json`; `eos_token_id` is
   * also read from `generation_config.json` and `config.json`, which is where stop ids beyond the
   * tokenizer's eos_token live (Llama-3-Instruct's <|eot_id|>, stories260K's <s>).
   */
  static fromDir(dir: string): AirTokenizer {
    const tokenizerPath = join(dir, TOKENIZER_FILE);
    const kind = pathKind(tokenizerPath);
    if (kind === "missing") {
      throw new ModelFormatError(
        `no ${TOKENIZER_FILE} at ${quote(tokenizerPath, 200)}`,
        "Download tokenizer.json with the model (a model that only ships tokenizer.model must be converted: load it with transformers' AutoTokenizer and save_pretrained()).",
      );
    }
    if (kind !== "file") throw new ModelFormatError(notAFile(tokenizerPath, kind), "tokenizer.json must be a regular file; download it again.");
    const tokenizerJson = readJsonObject(tokenizerPath, "Download the model's tokenizer.json again.");
    const configPath = join(dir, TOKENIZER_CONFIG_FILE);
    const config = requireFile(configPath, "tokenizer_config.json must be a regular file; download it again.", true)
      ? (readJsonObject(configPath, "Fix or download tokenizer_config.json again.") as TokenizerConfig)
      : {};
    return new AirTokenizer(tokenizerJson, config, configEosIds(dir), { tokenizer: tokenizerPath, config: configPath });
  }

  /** Token ids of `text`; special-token text in it (`<|im_start|>`) becomes those tokens. */
  encode(text: string, options: EncodeOptions = {}): number[] {
    // Special tokens off: the template may also append EOS/SEP (encoder models), and a prompt that
    // ends in EOS would end generation before it starts. BOS is the one addition we want.
    const ids = this.#encode(text, false);
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
    return this.#library("decode ids", () => this.#tokenizer.decode(ids as number[], { skip_special_tokens: options.skipSpecial ?? false, clean_up_tokenization_spaces: false }));
  }

  /** The vocabulary entry of `id` ("▁Once", "<0x0A>", "<|im_end|>"), undefined when it has none. */
  idToToken(id: number): string | undefined {
    return Number.isInteger(id) && id >= 0 && id < this.vocabSize ? this.#tokenizer.id_to_token(id) : undefined;
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
      throw new ModelFormatError(`${quote(this.#paths.config, 200)}: ${name} ${quote(content)} is not in the vocabulary of ${quote(this.#paths.tokenizer, 200)}`, "The two files come from different models; download both again.");
    }
    return id;
  }
}

/** `eos_token_id` values of `dir/generation_config.json` and `dir/config.json`, in that order. */
export function configEosIds(dir: string): number[] {
  const ids: number[] = [];
  for (const name of EOS_SOURCES) {
    const path = join(dir, name);
    if (!requireFile(path, `${name} must be a regular file; download it again.`, true)) continue;
    const raw = readJsonObject(path, `Fix or download ${name} again.`);
    const value = Object.hasOwn(raw, "eos_token_id") ? raw.eos_token_id : undefined;
    for (const id of Array.isArray(value) ? value : value === undefined || value === null ? [] : [value]) {
      if (typeof id !== "number") throw new ModelFormatError(`${quote(path, 200)}: eos_token_id holds ${show(id)}, not a token id`, "eos_token_id must be an integer or a list of integers.");
      ids.push(id);
    }
  }
  return ids;
}
