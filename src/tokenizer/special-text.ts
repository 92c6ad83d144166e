// Special-token text inside a text ("<|im_start|>", "<s>"): found and cut out before the rest is
// tokenized, as transformers' slow tokenizers do (PreTrainedTokenizer.tokenize, 4.41): the
// leftmost, longest special text wins; an AddedToken's rstrip/lstrip eat the whitespace beside
// it; a single_word one that touches a non-space on its left (else its right) is no token at all
// but joins that neighbour's text (so "<s>inside</s>" is all text, "<s>" joining "inside" and
// "</s>" then joining "<s>inside"). tiktoken's special tokens (Qwen) are the plain case.

export interface SpecialText {
  readonly text: string;
  readonly id: number;
  readonly lstrip?: boolean;
  readonly rstrip?: boolean;
  readonly singleWord?: boolean;
}

/** Python's str.isspace() characters, which str.lstrip()/rstrip() remove. */
const PY_SPACE = "[\\t\\n\\v\\f\\r\\x1c-\\x1f \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]";
const LEADING_SPACE = new RegExp(`^${PY_SPACE}+`);
const TRAILING_SPACE = new RegExp(`${PY_SPACE}+$`);

const escapeRegex = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

/** A text split into plain pieces (strings, possibly empty) and special tokens (ids). */
export type TextPart = string | number;

export class SpecialTextSplitter {
  readonly #byText: Map<string, SpecialText>;
  readonly #pattern: RegExp | null;

  constructor(specials: readonly SpecialText[]) {
    this.#byText = new Map(specials.map((s) => [s.text, s]));
    const texts = [...this.#byText.keys()].filter((t) => t.length > 0).sort((a, b) => b.length - a.length);
    // Longest first, so at one position the longest alternative is the one that matches.
    this.#pattern = texts.length === 0 ? null : new RegExp(texts.map(escapeRegex).join("|"), "g");
  }

  split(text: string): TextPart[] {
    if (this.#pattern === null) return [text];
    // transformers' list of strings: the pieces between matches and the matches themselves.
    const tokens: string[] = [];
    let last = 0;
    for (const m of text.matchAll(this.#pattern)) {
      if (m.index > last) tokens.push(text.slice(last, m.index));
      tokens.push(m[0]);
      last = m.index + m[0].length;
    }
    if (last < text.length) tokens.push(text.slice(last));
    const isSpecial = tokens.map((t) => this.#byText.has(t));
    for (let i = 0; i < tokens.length; i++) {
      const s = isSpecial[i] ? this.#byText.get(tokens[i]!)! : undefined;
      if (s === undefined) continue;
      const left = i > 0 ? tokens[i - 1]! : undefined;
      const right = i + 1 < tokens.length ? tokens[i + 1]! : undefined;
      if (s.rstrip && right) tokens[i + 1] = right.replace(LEADING_SPACE, "");
      if (s.lstrip && left) tokens[i - 1] = left.replace(TRAILING_SPACE, "");
      // Glued text is plain text; the neighbour it took is gone (transformers leaves "" there).
      if (s.singleWord && left && !left.endsWith(" ")) {
        tokens[i - 1] += tokens[i]!;
        tokens[i] = "";
        isSpecial[i - 1] = isSpecial[i] = false;
      } else if (s.singleWord && right && !right.startsWith(" ")) {
        tokens[i + 1] = tokens[i]! + tokens[i + 1]!;
        tokens[i] = "";
        isSpecial[i] = isSpecial[i + 1] = false;
      }
    }
    return tokens.map((t, i) => (isSpecial[i] ? this.#byText.get(t)!.id : t));
  }
}
