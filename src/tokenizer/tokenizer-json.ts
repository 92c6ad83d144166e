// tokenizer.json and tokenizer_config.json checked field by field before @huggingface/tokenizers
// sees them. The library trusts its input: a null pre-tokenizer, a merge that is a number or a
// template item that is `true` surface as "null is not an object" or "true is not iterable" at the
// first encode, an unknown model type silently runs as BPE, and an id of 10^9 sizes the
// vocabulary. Here each field the library reads is checked for the kind it needs, and a wrong one
// is named by its path in the file ("pre_tokenizer.pretokenizers[1].pattern").
import { ModelFormatError } from "../errors.ts";
import { checkInt, own, quote, show, type Fail } from "../util/validate.ts";

/** What a component field must hold; a trailing "!" marks a field the library requires. */
type Kind = "string" | "bool" | "int" | "number" | "pattern" | "components" | "template" | "specialTokens" | "tokenPair" | "stringOrNull" | "boolOrNull";
type Fields = Readonly<Record<string, `${Kind}` | `${Kind}!`>>;

const REPLACE: Fields = { pattern: "pattern!", content: "string!" };
const METASPACE: Fields = { replacement: "string", prepend_scheme: "string", add_prefix_space: "bool", split: "bool" };
const BYTE_LEVEL: Fields = { add_prefix_space: "bool", trim_offsets: "bool", use_regex: "bool" };

/** The component types @huggingface/tokenizers 0.2 implements, with the fields each reads. */
const COMPONENTS: Readonly<Record<string, Readonly<Record<string, Fields>>>> = {
  normalizer: {
    BertNormalizer: { clean_text: "bool", handle_chinese_chars: "bool", strip_accents: "boolOrNull", lowercase: "bool" },
    Precompiled: { precompiled_charsmap: "stringOrNull" },
    Sequence: { normalizers: "components!" },
    Replace: REPLACE,
    NFC: {}, NFD: {}, NFKC: {}, NFKD: {},
    Strip: { strip_left: "bool", strip_right: "bool" },
    StripAccents: {},
    Lowercase: {},
    Prepend: { prepend: "string!" },
  },
  pre_tokenizer: {
    BertPreTokenizer: {},
    Sequence: { pretokenizers: "components!" },
    Whitespace: {},
    WhitespaceSplit: {},
    Metaspace: METASPACE,
    ByteLevel: BYTE_LEVEL,
    Split: { pattern: "pattern!", behavior: "string", invert: "bool" },
    Punctuation: { behavior: "string" },
    Digits: { individual_digits: "bool" },
    Replace: REPLACE,
    FixedLength: { length: "int" },
  },
  post_processor: {
    TemplateProcessing: { single: "template!", pair: "template", special_tokens: "specialTokens" },
    ByteLevel: BYTE_LEVEL,
    BertProcessing: { sep: "tokenPair!", cls: "tokenPair!" },
    RobertaProcessing: { sep: "tokenPair!", cls: "tokenPair!", trim_offsets: "bool", add_prefix_space: "bool" },
    Sequence: { processors: "components!" },
  },
  decoder: {
    ByteLevel: BYTE_LEVEL,
    WordPiece: { prefix: "string", cleanup: "bool" },
    Metaspace: METASPACE,
    BPEDecoder: { suffix: "string" },
    CTC: { pad_token: "string", word_delimiter_token: "string", cleanup: "bool" },
    Sequence: { decoders: "components!" },
    Replace: REPLACE,
    Fuse: {},
    Strip: { content: "string!", start: "int!", stop: "int!" },
    ByteFallback: {},
  },
};

const MODEL_TYPES = ["BPE", "Unigram", "WordPiece"];
/** Ids past this are corruption whatever the file: no vocabulary is that large. */
const MAX_ID = 2 ** 24;
/** Components nest (Sequence in Sequence); a file must not choose the validator's stack depth. */
const MAX_DEPTH = 8;

type Json = Record<string, unknown>;
const isObject = (v: unknown): v is Json => v !== null && typeof v === "object" && !Array.isArray(v);
const field = (o: Json, key: string): unknown => (Object.hasOwn(o, key) ? o[key] : undefined);

/** What the rest of the tokenizer needs from a checked file. */
export interface TokenizerJsonFacts {
  /** Every piece with an id: the model's vocabulary and the added tokens. */
  readonly pieces: ReadonlyMap<string, number>;
  /** One past the largest id. */
  readonly idCount: number;
  /** UTF-8 bytes of the longest piece: no token covers more text (bounds a prompt before encoding). */
  readonly maxPieceBytes: number;
}

/** Checks a parsed tokenizer.json; `path` names it in errors. */
export function checkTokenizerJson(json: unknown, path: string): TokenizerJsonFacts {
  const fail: Fail = (what) => {
    throw new ModelFormatError(`${quote(path, 200)}: ${what}`, "Download the model's tokenizer.json again; it must be the `tokenizers` library's format.");
  };
  if (!isObject(json)) fail(`holds ${show(json)}, not a JSON object`);
  const root = json as Json;
  const pieces = new Map<string, number>();
  const model = checkModel(field(root, "model"), fail, pieces);

  const added = field(root, "added_tokens");
  if (!Array.isArray(added)) fail(`"added_tokens" must be a list (empty when there are none), got ${show(added)}`);
  const limit = idLimit(model.entries + (added as unknown[]).length);
  (added as unknown[]).forEach((t, i) => {
    const where = `added_tokens[${i}]`;
    if (!isObject(t)) fail(`${where} must be an object, got ${show(t)}`);
    const content = field(t as Json, "content");
    if (typeof content !== "string" || content === "") fail(`${where}.content must be a non-empty string, got ${show(content)}`);
    const id = checkInt(field(t as Json, "id"), `${where}.id`, fail, { min: 0, max: limit - 1 });
    for (const flag of ["single_word", "lstrip", "rstrip", "normalized", "special"]) {
      const v = field(t as Json, flag);
      if (v !== undefined && typeof v !== "boolean") fail(`${where}.${flag} must be true or false, got ${show(v)}`);
    }
    const holder = model.byId.get(id);
    if (holder !== undefined && holder !== content) fail(`${where} gives id ${id} to ${quote(content as string)}, but the vocabulary gives it to ${quote(holder)}`);
    pieces.set(content as string, id);
  });

  for (const kind of Object.keys(COMPONENTS)) {
    if (!Object.hasOwn(root, kind)) fail(`"${kind}" is missing (null when the tokenizer has none)`);
    const v = root[kind];
    if (v !== null) checkComponent(v, kind, kind, 0, fail, pieces);
  }
  let idCount = 0;
  let maxPieceBytes = 1;
  for (const [piece, id] of pieces) {
    idCount = Math.max(idCount, id + 1);
    maxPieceBytes = Math.max(maxPieceBytes, Buffer.byteLength(piece, "utf8"));
  }
  return { pieces, idCount, maxPieceBytes };
}

/** Ids must number the entries without huge holes: the largest below twice their count (and 2^24). */
function idLimit(entries: number): number {
  return Math.min(MAX_ID, 2 * entries + 1024);
}

interface ModelFacts {
  readonly entries: number;
  readonly byId: ReadonlyMap<number, string>;
}

function checkModel(model: unknown, fail: Fail, pieces: Map<string, number>): ModelFacts {
  if (!isObject(model)) fail(`"model" must be an object, got ${show(model)}`);
  const m = model as Json;
  const type = field(m, "type");
  if (typeof type !== "string" || !MODEL_TYPES.includes(type)) {
    fail(`model.type ${show(type)} is not supported; supported: ${MODEL_TYPES.join(", ")}`);
  }
  const byId = new Map<number, string>();
  const vocab = field(m, "vocab");
  if (type === "Unigram") {
    if (!Array.isArray(vocab) || vocab.length === 0) fail(`model.vocab must be a non-empty list of [piece, score] pairs, got ${show(vocab)}`);
    (vocab as unknown[]).forEach((e, id) => {
      if (!Array.isArray(e) || e.length !== 2 || typeof e[0] !== "string" || typeof e[1] !== "number" || !Number.isFinite(e[1])) {
        fail(`model.vocab[${id}] must be a [piece, finite score] pair, got ${show(e)}`);
      }
      if (!pieces.has(e[0])) pieces.set(e[0], id);
      byId.set(id, e[0]);
    });
    const unk = field(m, "unk_id");
    if (unk !== undefined && unk !== null) checkInt(unk, "model.unk_id", fail, { min: 0, max: (vocab as unknown[]).length - 1 });
  } else {
    if (!isObject(vocab) || Object.keys(vocab).length === 0) fail(`model.vocab must be a non-empty object of piece → id, got ${show(vocab)}`);
    const entries = Object.entries(vocab as Json);
    const limit = idLimit(entries.length);
    for (const [piece, id] of entries) {
      const n = checkInt(id, `model.vocab[${quote(piece)}]`, fail, { min: 0, max: limit - 1 });
      const other = byId.get(n);
      if (other !== undefined) fail(`model.vocab gives id ${n} to both ${quote(other)} and ${quote(piece)}`);
      byId.set(n, piece);
      pieces.set(piece, n);
    }
    for (const key of ["unk_token", "continuing_subword_prefix", "end_of_word_suffix"]) {
      const v = field(m, key);
      if (v !== undefined && v !== null && typeof v !== "string") fail(`model.${key} must be a string or null, got ${show(v)}`);
    }
    if (type === "BPE") checkMerges(field(m, "merges"), fail);
  }
  for (const key of ["byte_fallback", "fuse_unk", "ignore_merges"]) {
    const v = field(m, key);
    if (v !== undefined && v !== null && typeof v !== "boolean") fail(`model.${key} must be true or false, got ${show(v)}`);
  }
  if (field(m, "byte_fallback") === true) {
    // Byte fallback encodes a character outside the vocabulary as its UTF-8 bytes, one <0xXX> piece each.
    for (let b = 0; b < 256; b++) {
      const piece = `<0x${b.toString(16).toUpperCase().padStart(2, "0")}>`;
      if (!pieces.has(piece)) fail(`model.byte_fallback is true, but the vocabulary has no byte piece ${quote(piece)}`);
    }
  }
  return { entries: byId.size, byId };
}

function checkMerges(merges: unknown, fail: Fail): void {
  if (!Array.isArray(merges)) fail(`model.merges must be a list (empty for none), got ${show(merges)}`);
  const list = merges as unknown[];
  // The library decides the format from the first merge and applies it to all.
  const pairs = Array.isArray(list[0]);
  list.forEach((x, i) => {
    const ok = pairs
      ? Array.isArray(x) && x.length === 2 && typeof x[0] === "string" && typeof x[1] === "string"
      : typeof x === "string" && x.includes(" ");
    if (!ok) fail(`model.merges[${i}] must be ${pairs ? `a [left, right] pair of strings, like model.merges[0]` : `a "left right" string`}, got ${show(x)}`);
  });
}

function checkComponent(v: unknown, kind: string, where: string, depth: number, fail: Fail, pieces: ReadonlyMap<string, number>): void {
  if (depth > MAX_DEPTH) fail(`${where} nests components more than ${MAX_DEPTH} deep`);
  if (!isObject(v)) fail(`${where} must be an object with a "type", got ${show(v)}`);
  const c = v as Json;
  const type = field(c, "type");
  const types = COMPONENTS[kind]!;
  const fields = own(types, type);
  if (fields === undefined) fail(`${where}.type ${show(type)} is not a ${kind.replace("_", "-")} type; known: ${Object.keys(types).join(", ")}`);
  for (const [name, spec] of Object.entries(fields!)) {
    const required = spec.endsWith("!");
    const want = (required ? spec.slice(0, -1) : spec) as Kind;
    const x = field(c, name);
    const at = `${where}.${name}`;
    if (x === undefined || x === null) {
      if (required) fail(`${at} is missing (a ${type} ${kind.replace("_", "-")} needs it)`);
      continue;
    }
    checkField(x, want, at, kind, depth, fail, pieces);
  }
}

function checkField(x: unknown, want: Kind, at: string, kind: string, depth: number, fail: Fail, pieces: ReadonlyMap<string, number>): void {
  const bad = (what: string) => fail(`${at} must be ${what}, got ${show(x)}`);
  switch (want) {
    case "string":
    case "stringOrNull":
      if (typeof x !== "string") bad("a string");
      return;
    case "bool":
    case "boolOrNull":
      if (typeof x !== "boolean") bad("true or false");
      return;
    case "int":
      checkInt(x, at, fail);
      return;
    case "number":
      if (typeof x !== "number" || !Number.isFinite(x)) bad("a finite number");
      return;
    case "pattern": {
      const p = isObject(x) ? x : {};
      const s = field(p, "String");
      const r = field(p, "Regex");
      if (!((typeof s === "string") !== (typeof r === "string"))) bad(`{"String": …} or {"Regex": …}`);
      return;
    }
    case "components":
      if (!Array.isArray(x)) bad("a list of components");
      (x as unknown[]).forEach((y, i) => checkComponent(y, kind, `${at}[${i}]`, depth + 1, fail, pieces));
      return;
    case "template":
      if (!Array.isArray(x)) bad(`a list of {"SpecialToken": …} and {"Sequence": …} items`);
      (x as unknown[]).forEach((item, i) => checkTemplateItem(item, `${at}[${i}]`, fail, pieces));
      return;
    case "specialTokens":
      if (!isObject(x)) bad("an object");
      return;
    case "tokenPair":
      if (!Array.isArray(x) || x.length !== 2 || typeof x[0] !== "string" || !Number.isSafeInteger(x[1])) bad("a [token, id] pair");
      return;
  }
}

function checkTemplateItem(item: unknown, at: string, fail: Fail, pieces: ReadonlyMap<string, number>): void {
  const special = isObject(item) ? field(item, "SpecialToken") : undefined;
  const sequence = isObject(item) ? field(item, "Sequence") : undefined;
  if (isObject(special)) {
    const id = field(special, "id");
    if (typeof id !== "string") fail(`${at}.SpecialToken.id must be a token string, got ${show(id)}`);
    if (!pieces.has(id as string)) fail(`${at}.SpecialToken.id ${quote(id as string)} is not in the vocabulary`);
    return;
  }
  if (isObject(sequence)) {
    const id = field(sequence, "id");
    if (id !== "A" && id !== "B") fail(`${at}.Sequence.id must be "A" or "B", got ${show(id)}`);
    return;
  }
  fail(`${at} must be {"SpecialToken": {"id": …}} or {"Sequence": {"id": "A"}}, got ${show(item)}`);
}

/** The fields of tokenizer_config.json read here or by the library, checked; `path` names it in errors. */
export function checkTokenizerConfig(config: Json, path: string): void {
  const fail: Fail = (what) => {
    throw new ModelFormatError(`${quote(path, 200)}: ${what}`, "Fix or download tokenizer_config.json again (it must come from the same model as tokenizer.json).");
  };
  for (const key of ["add_bos_token", "add_eos_token", "clean_up_tokenization_spaces", "remove_space", "do_lowercase_and_remove_accent", "legacy"]) {
    const v = field(config, key);
    if (v !== undefined && v !== null && typeof v !== "boolean") fail(`"${key}" must be true or false, got ${show(v)}`);
  }
  const tokenText = (v: unknown, at: string) => {
    if (v === undefined || v === null || typeof v === "string") return;
    if (isObject(v) && typeof field(v, "content") === "string") return;
    fail(`${at} must be a token string or {"content": …}, got ${show(v)}`);
  };
  for (const key of ["bos_token", "eos_token", "unk_token", "pad_token"]) tokenText(field(config, key), `"${key}"`);
  const extra = field(config, "additional_special_tokens");
  if (extra !== undefined && extra !== null) {
    if (!Array.isArray(extra)) fail(`"additional_special_tokens" must be a list, got ${show(extra)}`);
    (extra as unknown[]).forEach((t, i) => tokenText(t, `"additional_special_tokens"[${i}]`));
  }
}
