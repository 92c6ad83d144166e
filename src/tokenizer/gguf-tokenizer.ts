// A tokenizer from GGUF metadata (`tokenizer.ggml.*`), so a .gguf file runs without tokenizer.json.
// - "llama": SentencePiece with scores and byte fallback, as llama.cpp's llm_tokenizer_spm does it:
//   a leading ▁ (add_space_prefix), spaces as ▁, the best-scoring adjacent pair merged first
//   (ties: leftmost), pieces not in the vocabulary re-split along their merges or sent as <0xXX>.
// - "gpt2": byte-level BPE. The vocabulary and merges become a tokenizer.json-shaped object for
//   @huggingface/tokenizers, with the pre-tokenizer regex that `tokenizer.ggml.pre` names.

import { Tokenizer } from "@huggingface/tokenizers";
import { ModelFormatError, UsageError } from "../errors.ts";
import type { GgufFile, GgufValue } from "../formats/gguf.ts";
import { checkId, own, quote, show } from "../util/validate.ts";
import { byteLevelPreTokenizer } from "./bpe-engine.ts";
import type { DecodeOptions, EncodeOptions, TextTokenizer } from "./text-tokenizer.ts";

/** llama.cpp's llama_token_type values (tokenizer.ggml.token_type). */
export const TokenType = { normal: 1, unknown: 2, control: 3, userDefined: 4, unused: 5, byte: 6 } as const;

const SPACE = "\u2581"; // ▁, SentencePiece's visible space

/** `tokenizer.ggml.pre` → the Split regex of the matching Hugging Face tokenizer.json. */
const BPE_PRE_REGEX: Record<string, string> = {
  "llama-bpe": "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
  qwen2: "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
};
/** llama.cpp turns these on for the Llama-3 pre-tokenizer (llama-vocab.cpp): BOS, and a word
 *  found whole in the vocabulary is emitted without merging. */
const BPE_ADDS_BOS: Record<string, boolean> = { "llama-bpe": true, qwen2: false };

export class GgufTokenizer implements TextTokenizer {
  readonly bosId: number | undefined;
  readonly eosIds: readonly number[];
  readonly vocabSize: number;
  readonly addsBos: boolean;
  readonly maxTokenBytes: number;
  /** `tokenizer.chat_template` (a Jinja template), null when the file has none. */
  readonly chatTemplate: string | null;
  readonly model: "llama" | "gpt2";
  readonly #tokens: readonly string[];
  readonly #types: Int32Array;
  readonly #scores: Float32Array;
  readonly #ids = new Map<string, number>();
  readonly #addSpacePrefix: boolean;
  /** Control and user-defined tokens, longest first, as one alternation (null: none). */
  readonly #specials: RegExp | null;
  readonly #bpe: Tokenizer | null = null;
  readonly #utf8 = new TextEncoder();

  constructor(file: GgufFile) {
    const path = file.path;
    const bad = (what: string): never => {
      throw new ModelFormatError(`${quote(path, 200)}: ${what}`, "The file's tokenizer metadata is incomplete; convert the model again with a current llama.cpp.");
    };
    const model = file.get("tokenizer.ggml.model");
    if (model !== "llama" && model !== "gpt2") {
      throw new ModelFormatError(
        `${quote(path, 200)}: tokenizer.ggml.model ${show(model ?? null)} is not supported; supported: llama (SentencePiece), gpt2 (byte-level BPE)`,
        "Use a Hugging Face folder for this model (its tokenizer.json), or a GGUF of a Llama-family model.",
      );
    }
    this.model = model;
    const tokens = file.get("tokenizer.ggml.tokens");
    if (!Array.isArray(tokens) || tokens.length === 0 || typeof tokens[0] !== "string") bad("tokenizer.ggml.tokens is missing or not a list of strings");
    this.#tokens = tokens as string[];
    this.vocabSize = this.#tokens.length;
    const n = this.vocabSize;
    this.#types = typedOr(file.get("tokenizer.ggml.token_type"), Int32Array, n, TokenType.normal, "tokenizer.ggml.token_type", bad);
    this.#scores = typedOr(file.get("tokenizer.ggml.scores"), Float32Array, n, 0, "tokenizer.ggml.scores", bad);
    // A duplicated piece maps to its last id, as in llama.cpp's token_to_id (built in id order).
    this.#tokens.forEach((t, i) => this.#ids.set(t, i));
    this.maxTokenBytes = this.#tokens.reduce((m, t) => Math.max(m, Buffer.byteLength(t, "utf8")), 1);
    // decode() reads a byte token's value from its text.
    const notByte = this.#tokens.findIndex((t, i) => this.#types[i] === TokenType.byte && !/^<0x[0-9A-Fa-f]{2}>$/.test(t));
    if (notByte >= 0) bad(`token ${notByte} ${quote(this.#tokens[notByte]!)} has the byte type but is not a <0xXX> piece`);

    const id = (key: string): number | undefined => {
      const v = file.get(key);
      return v === undefined ? undefined : checkId(v, key, n, bad);
    };
    const flag = (key: string, fallback: boolean): boolean => {
      const v = file.get(key) ?? fallback;
      if (typeof v !== "boolean") bad(`${key} must be a bool, got ${show(v)}`);
      return v as boolean;
    };
    const pre = file.get("tokenizer.ggml.pre");
    this.bosId = id("tokenizer.ggml.bos_token_id");
    this.addsBos = flag("tokenizer.ggml.add_bos_token", model === "llama" ? true : own(BPE_ADDS_BOS, pre) ?? false);
    if (this.addsBos && this.bosId === undefined) bad("add_bos_token is set but no bos_token_id is given");
    // End-of-generation ids, as llama.cpp's is_eog: EOS, then end-of-turn / end-of-message.
    const eos: number[] = [];
    for (const key of ["eos_token_id", "eot_token_id", "eom_token_id"]) {
      const e = id(`tokenizer.ggml.${key}`);
      if (e !== undefined && !eos.includes(e)) eos.push(e);
    }
    this.eosIds = eos;
    this.#addSpacePrefix = flag("tokenizer.ggml.add_space_prefix", model === "llama");
    const template = file.get("tokenizer.chat_template");
    this.chatTemplate = typeof template === "string" ? template : null;

    const specials = this.#tokens.filter((t, i) => t.length > 0 && (this.#types[i] === TokenType.control || this.#types[i] === TokenType.userDefined));
    specials.sort((a, b) => b.length - a.length);
    this.#specials = specials.length === 0 ? null : new RegExp(specials.map(escapeRegex).join("|"), "g");

    if (model === "gpt2") this.#bpe = this.#buildBpe(file, pre ?? "default");
  }

  encode(text: string, options: EncodeOptions = {}): number[] {
    const out: number[] = (options.addBos ?? true) && this.addsBos ? [this.bosId!] : [];
    if (this.#bpe !== null) {
      // Added tokens (control and user-defined) are matched by the library itself.
      out.push(...this.#bpe.encode(text, { add_special_tokens: false }).ids);
      return out;
    }
    // llama.cpp's SPM path: special-token text becomes its token; each raw fragment that follows
    // a special token (or starts the text) gets the leading space.
    let prevSpecial = true;
    let last = 0;
    const fragment = (raw: string) => {
      if (raw.length === 0) return;
      const spaced = (this.#addSpacePrefix && prevSpecial ? " " : "") + raw;
      this.#spm(spaced.replaceAll(" ", SPACE), out);
      prevSpecial = false;
    };
    if (this.#specials !== null) {
      for (const m of text.matchAll(this.#specials)) {
        fragment(text.slice(last, m.index));
        out.push(this.#ids.get(m[0])!);
        prevSpecial = true;
        last = m.index + m[0].length;
      }
    }
    fragment(text.slice(last));
    return out;
  }

  decode(ids: readonly number[], options: DecodeOptions = {}): string {
    for (const id of ids) {
      if (this.idToToken(id) === undefined) {
        throw new UsageError(
          `token id ${id} has no entry in the tokenizer (vocabulary of ${this.vocabSize} ids)`,
          "The model's embedding can be larger than the tokenizer (padding rows); mask logits of ids >= vocabSize before sampling.",
        );
      }
    }
    const skip = options.skipSpecial ?? false;
    if (this.#bpe !== null) {
      if (ids.length === 0) return ""; // the library throws on an empty list
      return this.#bpe.decode(ids as number[], { skip_special_tokens: skip, clean_up_tokenization_spaces: false });
    }
    const bytes: number[] = [];
    for (const id of ids) {
      const type = this.#types[id];
      const token = this.#tokens[id]!;
      if (type === TokenType.byte) {
        bytes.push(parseInt(token.slice(3, 5), 16));
      } else if (type === TokenType.control || type === TokenType.unknown) {
        if (!skip) this.#push(bytes, token);
      } else if (type === TokenType.userDefined) {
        this.#push(bytes, token);
      } else {
        this.#push(bytes, token.replaceAll(SPACE, " "));
      }
    }
    // The space the encoder put in front comes off again: Hugging Face's Strip decoder on the
    // whole text (so "<s>▁Once" stays "<s> Once", and "▁Once" alone is "Once").
    const text = new TextDecoder("utf-8").decode(new Uint8Array(bytes));
    return this.#addSpacePrefix && text.startsWith(" ") ? text.slice(1) : text;
  }

  idToToken(id: number): string | undefined {
    return Number.isInteger(id) && id >= 0 && id < this.vocabSize ? this.#tokens[id] : undefined;
  }

  tokenToId(token: string): number | undefined {
    return this.#ids.get(token);
  }

  #push(bytes: number[], s: string): void {
    for (const b of this.#utf8.encode(s)) bytes.push(b);
  }

  /** llm_tokenizer_spm_session::tokenize on one ▁-escaped fragment, appending to `out`. */
  #spm(text: string, out: number[]): void {
    // Symbols start as single code points, linked as a list; `n` is the length in UTF-16 units
    // (llama.cpp counts bytes; either way a length check detects a stale queue entry).
    const starts: number[] = [];
    const lens: number[] = [];
    for (let i = 0; i < text.length; ) {
      const step = text.codePointAt(i)! > 0xffff ? 2 : 1;
      starts.push(i);
      lens.push(step);
      i += step;
    }
    const count = starts.length;
    const prev = Array.from({ length: count }, (_, i) => i - 1);
    const next = Array.from({ length: count }, (_, i) => (i + 1 < count ? i + 1 : -1));
    const queue = new BigramQueue();
    const tryAdd = (left: number, right: number) => {
      if (left === -1 || right === -1) return;
      const piece = text.slice(starts[left], starts[left]! + lens[left]! + lens[right]!);
      const id = this.#ids.get(piece);
      if (id === undefined) return;
      queue.push({ left, right, score: this.#scores[id]!, size: piece.length });
    };
    for (let i = 1; i < count; i++) tryAdd(i - 1, i);
    for (let b = queue.pop(); b !== undefined; b = queue.pop()) {
      if (lens[b.left] === 0 || lens[b.right] === 0 || lens[b.left]! + lens[b.right]! !== b.size) continue;
      lens[b.left]! += lens[b.right]!;
      lens[b.right] = 0;
      next[b.left] = next[b.right]!;
      if (next[b.right]! >= 0) prev[next[b.right]!] = b.left;
      tryAdd(prev[b.left]!, b.left);
      tryAdd(b.left, next[b.left]!);
    }
    // A merged symbol is always a vocabulary piece (pairs are queued only if they are one), so
    // llama.cpp's resegment() reduces to: the piece's id, or, for a lone character the vocabulary
    // lacks, its UTF-8 bytes as <0xXX> tokens.
    for (let i = count === 0 ? -1 : 0; i !== -1; i = next[i]!) {
      const piece = text.slice(starts[i], starts[i]! + lens[i]!);
      const id = this.#ids.get(piece);
      if (id !== undefined) out.push(id);
      else for (const byte of this.#utf8.encode(piece)) out.push(this.#byteToken(byte));
    }
  }

  #byteToken(byte: number): number {
    const id = this.#ids.get(`<0x${byte.toString(16).toUpperCase().padStart(2, "0")}>`);
    if (id !== undefined) return id;
    const unk = this.#ids.get("<unk>");
    if (unk === undefined) {
      throw new ModelFormatError("the GGUF vocabulary has neither byte tokens <0xXX> nor <unk>", "This SentencePiece vocabulary cannot encode text outside it.");
    }
    return unk;
  }

  #buildBpe(file: GgufFile, pre: GgufValue): Tokenizer {
    const regex = own(BPE_PRE_REGEX, pre);
    if (regex === undefined) {
      throw new ModelFormatError(
        `${quote(file.path, 200)}: tokenizer.ggml.pre ${show(pre)} is not supported; supported: ${Object.keys(BPE_PRE_REGEX).join(", ")}`,
        "Each BPE pre-tokenizer is a different regex; use the model's Hugging Face folder (tokenizer.json) instead.",
      );
    }
    const merges = file.get("tokenizer.ggml.merges");
    if (!Array.isArray(merges) || !merges.every((m) => typeof m === "string" && m.includes(" "))) {
      throw new ModelFormatError(`${quote(file.path, 200)}: tokenizer.ggml.merges is missing or not a list of "left right" strings`, "A byte-level BPE vocabulary needs its merges.");
    }
    // No prototype: a piece spelled "__proto__" is a key like any other.
    const vocab: Record<string, number> = Object.create(null);
    this.#tokens.forEach((t, i) => (vocab[t] = i));
    const added = this.#tokens.flatMap((content, id) => {
      const type = this.#types[id];
      if (type !== TokenType.control && type !== TokenType.userDefined) return [];
      return [{ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: type === TokenType.control }];
    });
    const json = {
      version: "1.0",
      added_tokens: added,
      normalizer: null,
      pre_tokenizer: byteLevelPreTokenizer(regex),
      post_processor: null,
      decoder: { type: "ByteLevel", add_prefix_space: true, trim_offsets: true, use_regex: true },
      model: { type: "BPE", dropout: null, unk_token: null, fuse_unk: false, byte_fallback: false, ignore_merges: pre === "llama-bpe", vocab, merges },
    };
    try {
      return new Tokenizer(json, {});
    } catch (e) {
      throw new ModelFormatError(`${quote(file.path, 200)}: the BPE vocabulary cannot be loaded: ${(e as Error).message}`, "The file's tokenizer metadata is inconsistent.");
    }
  }
}

interface Bigram {
  left: number;
  right: number;
  score: number;
  size: number;
}

/** A max-heap on (score, then smaller left), llama.cpp's llm_bigram_spm comparator. */
class BigramQueue {
  readonly #heap: Bigram[] = [];

  static #before(a: Bigram, b: Bigram): boolean {
    return a.score > b.score || (a.score === b.score && a.left < b.left);
  }

  push(b: Bigram): void {
    const h = this.#heap;
    h.push(b);
    for (let i = h.length - 1; i > 0; ) {
      const p = (i - 1) >> 1;
      if (!BigramQueue.#before(h[i]!, h[p]!)) break;
      [h[i], h[p]] = [h[p]!, h[i]!];
      i = p;
    }
  }

  pop(): Bigram | undefined {
    const h = this.#heap;
    const top = h[0];
    const last = h.pop();
    if (h.length > 0 && last !== undefined) {
      h[0] = last;
      for (let i = 0; ; ) {
        const l = 2 * i + 1;
        const r = l + 1;
        let best = i;
        if (l < h.length && BigramQueue.#before(h[l]!, h[best]!)) best = l;
        if (r < h.length && BigramQueue.#before(h[r]!, h[best]!)) best = r;
        if (best === i) break;
        [h[i], h[best]] = [h[best]!, h[i]!];
        i = best;
      }
    }
    return top;
  }
}

function typedOr<A extends Int32Array | Float32Array>(
  v: GgufValue | undefined,
  ctor: { new (n: number): A; from(x: ArrayLike<number>): A },
  n: number,
  fill: number,
  key: string,
  bad: (what: string) => never,
): A {
  if (v === undefined) return new ctor(n).fill(fill) as A;
  if (!ArrayBuffer.isView(v) || (v as ArrayLike<number>).length !== n || typeof (v as ArrayLike<unknown>)[0] === "bigint") {
    bad(`${key} must be a numeric list of ${n} entries (one per token)`);
  }
  return v instanceof ctor ? v : ctor.from(v as ArrayLike<number>);
}

function escapeRegex(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}
