// What the runtime needs from a tokenizer, whichever file it came from (tokenizer.json through
// AirTokenizer, or GGUF metadata through GgufTokenizer): both classes satisfy this structurally.

import type { DecodeOptions, EncodeOptions } from "./tokenizer.ts";

export type { DecodeOptions, EncodeOptions };

export interface TextTokenizer {
  /** The id prepended by encode(), or undefined when the model has no BOS. */
  readonly bosId: number | undefined;
  /** Ids that end generation. */
  readonly eosIds: readonly number[];
  /** One past the largest token id; ids at or above it cannot be decoded. */
  readonly vocabSize: number;
  /** Whether encode() prepends BOS when asked to. */
  readonly addsBos: boolean;
  /** UTF-8 bytes of the longest vocabulary piece: a text of n bytes encodes to at least n / this tokens. */
  readonly maxTokenBytes: number;
  /** Token ids of `text`; special-token text in it becomes those tokens. */
  encode(text: string, options?: EncodeOptions): number[];
  /** The text of `ids`; throws UsageError for an id outside the vocabulary. */
  decode(ids: readonly number[], options?: DecodeOptions): string;
  /** The vocabulary entry of `id`, undefined when it has none. */
  idToToken(id: number): string | undefined;
  /** The id of a vocabulary entry, undefined when it is not one. */
  tokenToId(token: string): number | undefined;
}
