// A tokenizer that a model family defines in its own tokenization code rather than in a
// tokenizer.json: a BPE engine (converted from tokenizer.model or a tiktoken rank file, see
// bpe-engine.ts) for plain text, and around it what the family's code adds — its special tokens
// (ids beyond the file's vocabulary, such as ChatGLM's [gMASK]; which of them are recognised in
// text, and how), the ids it puts in front of a text, and its end-of-text ids.

import type { Tokenizer } from "@huggingface/tokenizers";
import { UsageError } from "../errors.ts";
import { SpecialTextSplitter, type SpecialText } from "./special-text.ts";
import type { DecodeOptions, EncodeOptions, TextTokenizer } from "./text-tokenizer.ts";

export interface SpecialToken {
  readonly id: number;
  /** How it reads in text, and how it decodes. */
  readonly text: string;
  /** Whether this text in an input becomes the token (ChatGLM's code never does that). */
  readonly inText: boolean;
  readonly lstrip?: boolean;
  readonly rstrip?: boolean;
  readonly singleWord?: boolean;
}

export interface FamilyEncodeOptions extends EncodeOptions {
  /** Special-token text becomes those tokens where the family's code does that (default true);
   *  false reads it as plain text, as Qwen's chat code asks with allowed_special=set(). */
  readonly specialText?: boolean;
}

export interface FamilyTokenizerParts {
  /** Which family and file, for errors ("ChatGLM3 tokenizer \"…/tokenizer.model\""). */
  readonly origin: string;
  readonly engine: Tokenizer;
  /** Put in front of each piece of text the engine gets (SentencePiece's dummy-prefix space). */
  readonly textPrefix?: string;
  readonly specials: readonly SpecialToken[];
  /** Put in front of a text when BOS is asked for ([gMASK] sop for ChatGLM, [<s>] for InternLM). */
  readonly prefixIds: readonly number[];
  readonly eosIds: readonly number[];
  /** Qwen's code NFC-normalizes every text before anything else. */
  readonly nfc?: boolean;
}

export class FamilyTokenizer implements TextTokenizer {
  readonly origin: string;
  /** The first id encode() puts in front of a text (ChatGLM puts two: [gMASK] sop). */
  readonly bosId: number | undefined;
  readonly eosIds: readonly number[];
  readonly vocabSize: number;
  readonly addsBos: boolean;
  readonly maxTokenBytes: number;
  readonly prefixIds: readonly number[];
  readonly #engine: Tokenizer;
  readonly #specials: Map<number, SpecialToken>;
  readonly #specialIds: Map<string, number>;
  readonly #splitter: SpecialTextSplitter;
  readonly #nfc: boolean;
  readonly #textPrefix: string;

  constructor(parts: FamilyTokenizerParts) {
    this.origin = parts.origin;
    this.#engine = parts.engine;
    this.#specials = new Map(parts.specials.map((s) => [s.id, s]));
    this.#specialIds = new Map(parts.specials.map((s) => [s.text, s.id]));
    const inText: SpecialText[] = parts.specials.filter((s) => s.inText);
    this.#splitter = new SpecialTextSplitter(inText);
    this.#nfc = parts.nfc ?? false;
    this.#textPrefix = parts.textPrefix ?? "";
    this.prefixIds = parts.prefixIds;
    this.bosId = parts.prefixIds[0];
    this.addsBos = parts.prefixIds.length > 0;
    this.eosIds = parts.eosIds;
    this.vocabSize = Math.max(parts.engine.model!.vocab.length, ...parts.specials.map((s) => s.id + 1));
    // Pieces as the engine stores them (byte-level or ▁-marked) are at least as long as their text,
    // so this bounds the bytes one token stands for from above.
    const pieces = [...parts.engine.model!.vocab, ...parts.specials.map((s) => s.text)];
    this.maxTokenBytes = pieces.reduce((m, p) => Math.max(m, Buffer.byteLength(p ?? "", "utf8")), 1);
  }

  /** Token ids of `text`, after the family's prefix ids unless addBos is false. */
  encode(text: string, options: FamilyEncodeOptions = {}): number[] {
    const source = this.#nfc ? text.normalize("NFC") : text;
    const parts = options.specialText === false ? [source] : this.#splitter.split(source);
    const ids: number[] = (options.addBos ?? true) ? [...this.prefixIds] : [];
    for (const part of parts) {
      if (typeof part === "number") ids.push(part);
      // Each piece between special tokens is one sp.encode() call in the family's code.
      else if (part !== "") ids.push(...this.#engine.encode(this.#textPrefix + part, { add_special_tokens: false }).ids);
    }
    return ids;
  }

  /** The text of `ids`: special tokens as their text (or dropped with skipSpecial), the rest as the engine decodes it. */
  decode(ids: readonly number[], options: DecodeOptions = {}): string {
    let text = "";
    let run: number[] = [];
    const flush = () => {
      if (run.length > 0) text += this.#engine.decode(run, { skip_special_tokens: false, clean_up_tokenization_spaces: false });
      run = [];
    };
    for (const id of ids) {
      const special = this.#specials.get(id);
      if (special !== undefined) {
        flush();
        if (!options.skipSpecial) text += special.text;
      } else if (this.#engine.id_to_token(id) !== undefined && Number.isInteger(id) && id >= 0) {
        run.push(id);
      } else {
        throw new UsageError(
          `token id ${id} has no entry in the tokenizer ${this.origin} (vocabulary of ${this.vocabSize} ids)`,
          "The model's embedding can be larger than the tokenizer (padding rows); mask logits of ids >= vocabSize before sampling.",
        );
      }
    }
    flush();
    return text;
  }

  idToToken(id: number): string | undefined {
    if (!Number.isInteger(id) || id < 0) return undefined;
    return this.#specials.get(id)?.text ?? this.#engine.id_to_token(id);
  }

  tokenToId(token: string): number | undefined {
    return this.#specialIds.get(token) ?? this.#engine.token_to_id(token);
  }
}
