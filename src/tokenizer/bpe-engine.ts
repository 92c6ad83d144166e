// SentencePiece BPE models and tiktoken rank files, converted into the @huggingface/tokenizers
// engine that tokenizer.json files already run on, the way transformers' convert_slow_tokenizer
// does it: the vocabulary as it is, and merges made from it — every split of a piece into two
// mergeable parts, ordered by the piece's score (SentencePiece) or rank (tiktoken).
//
// One thing a merge list cannot say: SentencePiece merges the best-scoring pair first and, between
// pairs of EQUAL score, the leftmost (its agenda orders by score, then position), and several
// of these vocabularies give many different pieces the same score (InternLM's file has 10,474
// scores shared by three pieces). A merge list gives every merge its own rank, so the engine
// would order such pairs by list position instead. The engine breaks equal ranks by position,
// exactly as SentencePiece does, so after building it the merges of one score are given one rank.

import { BPE, Tokenizer } from "@huggingface/tokenizers";
import { ModelFormatError } from "../errors.ts";
import { PieceType, type SentencePieceModel } from "../formats/sentencepiece-model.ts";
import type { TiktokenRanks } from "../formats/tiktoken-ranks.ts";

const SPACE = "\u2581"; // ▁, SentencePiece's visible space

/** A merge and the key that orders it: lower merges first; equal keys are one rank. */
type RankedMerge = readonly [left: string, right: string, key: number];

/** A vocabulary object the engine reads with Object.entries, safe for a piece named "__proto__". */
function vocabObject(entries: Iterable<readonly [string, number]>): Record<string, number> {
  const vocab = Object.create(null) as Record<string, number>;
  for (const [piece, id] of entries) vocab[piece] = id;
  return vocab;
}

/**
 * Build the engine; with `tiesShareRanks`, merges with equal keys get equal ranks (see the file
 * comment): each takes the rank of the first merge of its key, which keeps the order and leaves
 * merges without a tie untouched.
 */
function buildEngine(json: Record<string, unknown>, merges: readonly RankedMerge[], tiesShareRanks: boolean): Tokenizer {
  const tokenizer = new Tokenizer(json, {});
  if (!tiesShareRanks) return tokenizer;
  const model = tokenizer.model;
  const rankKey = (m: RankedMerge) => JSON.stringify([m[0], m[1]]);
  // The engine keys its ranks by JSON.stringify([left, right]) = index; check that before relying on it.
  if (!(model instanceof BPE) || (merges.length > 1 && model.bpe_ranks.get(rankKey(merges[1]!)) !== 1)) {
    throw new Error("@huggingface/tokenizers no longer keeps BPE ranks as bpe_ranks[JSON.stringify([left, right])]; the tie-rank step needs updating");
  }
  let first = 0;
  for (let i = 1; i < merges.length; i++) {
    if (merges[i]![2] !== merges[first]![2]) first = i;
    else model.bpe_ranks.set(rankKey(merges[i]!), first);
  }
  return tokenizer;
}

/** Whether `s` is one code point (a part that need not be a piece: sentencepiece starts from characters). */
const isOneChar = (s: string) => s.length === 1 || (s.length === 2 && s.codePointAt(0)! > 0xffff);

export interface SentencePieceEngine {
  readonly engine: Tokenizer;
  /**
   * Put in front of each text before it goes to the engine: add_dummy_prefix's space. The engine
   * cannot add it itself: its normalizer runs on every piece between added tokens, while
   * sentencepiece adds one space to the whole text ("a<u>bc" is "▁a" "<u>" "bc").
   */
  readonly textPrefix: string;
}

/**
 * The engine for a SentencePiece BPE model. User-defined pieces become added tokens (SentencePiece
 * matches them first and never merges them with neighbours); control, unknown, byte and unused
 * pieces never come out of a merge. Ids are the model's.
 */
export function sentencePieceEngine(model: SentencePieceModel): SentencePieceEngine {
  const where = `"${model.path}"`;
  const unsupported = (what: string): never => {
    throw new ModelFormatError(
      `${where}: ${what} is not supported (BPE models with the identity normalizer are)`,
      "Convert the tokenizer to tokenizer.json with transformers (AutoTokenizer.from_pretrained(...).save_pretrained(...)) and put it beside the model.",
    );
  };
  if (model.modelType !== "bpe") unsupported(`a ${model.modelType} SentencePiece model`);
  if ((model.normalizerName !== "" && model.normalizerName !== "identity") || model.precompiledCharsmapBytes > 0) unsupported(`the normalizer "${model.normalizerName}"`);
  if (model.removeExtraWhitespaces) unsupported("remove_extra_whitespaces");
  if (model.treatWhitespaceAsSuffix) unsupported("treat_whitespace_as_suffix");

  const normal = new Map<string, number>();
  model.pieces.forEach((p, id) => {
    if (p.type === PieceType.normal) normal.set(p.piece, id);
  });
  const mergeable = (part: string) => normal.has(part) || isOneChar(part);
  const merges: RankedMerge[] = [];
  for (const [piece, id] of normal) {
    const key = -model.pieces[id]!.score;
    for (let k = 1; k < piece.length; k++) {
      const c = piece.charCodeAt(k);
      if (c >= 0xdc00 && c <= 0xdfff) continue; // inside a surrogate pair
      const left = piece.slice(0, k);
      const right = piece.slice(k);
      if (mergeable(left) && mergeable(right)) merges.push([left, right, key]);
    }
  }
  // Best score first; the sort is stable, so within a score the pieces keep their id order.
  merges.sort((a, b) => a[2] - b[2]);

  const addedTokens = model.pieces.flatMap((p, id) =>
    p.type === PieceType.userDefined ? [{ id, content: p.piece, special: false, normalized: false, lstrip: false, rstrip: false, single_word: false }] : [],
  );
  const unk = model.unkId >= 0 ? model.pieces[model.unkId]!.piece : null;
  const engine = buildEngine(
    {
      version: "1.0",
      added_tokens: addedTokens,
      normalizer: model.escapeWhitespaces ? { type: "Replace", pattern: { String: " " }, content: SPACE } : null,
      pre_tokenizer: null,
      post_processor: null,
      decoder: {
        type: "Sequence",
        decoders: [
          { type: "Replace", pattern: { String: SPACE }, content: " " },
          { type: "ByteFallback" },
          { type: "Fuse" },
          // sentencepiece drops the space its dummy prefix put in front of the text.
          ...(model.addDummyPrefix ? [{ type: "Strip", content: " ", start: 1, stop: 0 }] : []),
        ],
      },
      model: {
        type: "BPE",
        vocab: vocabObject(model.pieces.map((p, id) => [p.piece, id] as const)),
        merges: merges.map(([l, r]) => [l, r]),
        unk_token: unk,
        byte_fallback: model.byteFallback,
        fuse_unk: true,
        ignore_merges: false,
        dropout: null,
      },
    },
    merges,
    true,
  );
  return { engine, textPrefix: model.addDummyPrefix ? " " : "" };
}

/** GPT-2's printable stand-in for every byte (its char code), the alphabet byte-level BPE
 *  vocabularies are written in. */
const BYTE_TO_CODE: Uint16Array = (() => {
  const out = new Uint16Array(256);
  let extra = 0;
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
    out[b] = printable ? b : 256 + extra++;
  }
  return out;
})();

/** A token's bytes in that alphabet (one char per byte). */
export function byteLevelText(bytes: Uint8Array): string {
  const codes = new Uint16Array(bytes.length);
  for (let i = 0; i < bytes.length; i++) codes[i] = BYTE_TO_CODE[bytes[i]!]!;
  return String.fromCharCode(...codes);
}

/** tokenizer.json's pre-tokenizer for byte-level BPE: split by the regex, then bytes as characters. */
export function byteLevelPreTokenizer(pattern: string): Record<string, unknown> {
  return {
    type: "Sequence",
    pretokenizers: [
      { type: "Split", pattern: { Regex: pattern }, behavior: "Isolated", invert: false },
      { type: "ByteLevel", add_prefix_space: false, trim_offsets: false, use_regex: false },
    ],
  };
}

/**
 * The engine for tiktoken ranks with their split pattern: byte-level BPE whose merges are every
 * split of a token into two tokens, ranked by the token. A regex piece that is itself a token is
 * emitted whole (ignore_merges), as tiktoken does before merging. Special tokens are the caller's.
 */
export function tiktokenEngine(ranks: TiktokenRanks, pattern: string): Tokenizer {
  const texts = ranks.tokens.map(byteLevelText);
  const ids = new Map(texts.map((t, i) => [t, i] as const));
  const merges: RankedMerge[] = [];
  texts.forEach((text, rank) => {
    for (let k = 1; k < text.length; k++) {
      const left = text.slice(0, k);
      const right = text.slice(k);
      if (ids.has(left) && ids.has(right)) merges.push([left, right, rank]);
    }
  });
  return buildEngine(
    {
      version: "1.0",
      added_tokens: [],
      normalizer: null,
      pre_tokenizer: byteLevelPreTokenizer(pattern),
      post_processor: null,
      decoder: { type: "ByteLevel", add_prefix_space: false, trim_offsets: false, use_regex: false },
      model: {
        type: "BPE",
        vocab: vocabObject(ids),
        merges: merges.map(([l, r]) => [l, r]),
        unk_token: null,
        byte_fallback: false,
        fuse_unk: false,
        ignore_merges: true,
        dropout: null,
      },
    },
    merges,
    // Equal ranks come only from two splits of one token, which never compete (they overlap).
    false,
  );
}
