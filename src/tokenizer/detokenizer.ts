// Streaming text from ids that arrive one at a time. Decoding each id alone is wrong twice over:
// byte-fallback / byte-level tokens carry pieces of one UTF-8 character (<0xE4><0xBD><0xA0> = 你),
// and SentencePiece decoders strip the leading space of the first token they see ("▁time" alone
// decodes to "time"). So, as text-generation-inference's `decode_token` does, we decode a short
// window of already-emitted tokens plus the new ones and emit only the difference, and hold the new
// ones back while their text still ends in U+FFFD (a character not yet complete).

import type { TextTokenizer } from "./text-tokenizer.ts";

/** Prompt tokens kept as the window's lead-in. One is enough for the space; a few more keep the
 *  lead-in's text non-empty when the prompt ends in skipped special tokens (TGI also keeps 5). */
const CONTEXT_TOKENS = 5;
const REPLACEMENT_CHARACTER = "\uFFFD";

export interface DetokenizerOptions {
  /** Drop special tokens from the text, as AirTokenizer.decode does (default false). */
  skipSpecial?: boolean;
  /** Ids already shown to the user (the prompt): not emitted, but they give the first generated
   *  token its true leading space ("Once upon a" + "▁time" streams " time"). */
  context?: readonly number[];
}

/**
 * Push ids in order and print what push() returns; call flush() once at the end. Without context,
 * the concatenation of everything returned equals tokenizer.decode(allIds) exactly.
 */
export class Detokenizer {
  readonly #tokenizer: TextTokenizer;
  readonly #skipSpecial: boolean;
  /** The window: ids[0, readOffset) were emitted already (or are context) and only give the
   *  decoder its lead-in; ids[readOffset, ...) are held back. Older ids are dropped. */
  #ids: number[];
  #readOffset: number;
  /** decode(ids[0, readOffset)), kept because it only changes when the window moves. */
  #prefixText: string;

  constructor(tokenizer: TextTokenizer, options: DetokenizerOptions = {}) {
    this.#tokenizer = tokenizer;
    this.#skipSpecial = options.skipSpecial ?? false;
    this.#ids = (options.context ?? []).slice(-CONTEXT_TOKENS);
    this.#readOffset = this.#ids.length;
    this.#prefixText = this.#decode(this.#ids);
  }

  /** Add one id; returns the text that became final with it ("" while it is held back). */
  push(id: number): string {
    this.#ids.push(id);
    const text = this.#decode(this.#ids);
    // Not longer yet: a token that decodes to nothing so far (a lone "▁" at the start, a skipped
    // special token). Ends in U+FFFD: the last character's bytes are still arriving.
    if (text.length <= this.#prefixText.length || text.endsWith(REPLACEMENT_CHARACTER)) return "";
    return this.#advance(text);
  }

  /** What is still held back, even if incomplete (its broken bytes come out as U+FFFD). */
  flush(): string {
    const text = this.#decode(this.#ids);
    if (text.length <= this.#prefixText.length) return "";
    return this.#advance(text);
  }

  /** Emit the window's new text; the ids it came from become the next window's lead-in. */
  #advance(text: string): string {
    const emitted = text.slice(this.#prefixText.length);
    this.#ids = this.#ids.slice(this.#readOffset);
    this.#readOffset = this.#ids.length;
    this.#prefixText = this.#decode(this.#ids);
    return emitted;
  }

  #decode(ids: number[]): string {
    return this.#tokenizer.decode(ids, { skipSpecial: this.#skipSpecial });
  }
}
