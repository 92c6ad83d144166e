// The tokenizers of the families transformers runs as remote code, rebuilt from their data files
// and from what their tokenization_*.py defines (never by running it):
// - ChatGLM2/3 (tokenization_chatglm.py): SentencePiece, plus ids past the .model for [MASK]
//   [gMASK] [sMASK] sop eop (and ChatGLM3's <|system|> <|user|> <|assistant|> <|observation|>),
//   none of them read from text; every text starts with [gMASK] sop.
// - InternLM, InternLM2, Baichuan 1/2 (PreTrainedTokenizer over SentencePiece, LlamaTokenizer's
//   pattern): the special tokens tokenizer_config.json / special_tokens_map.json name, cut out of
//   text first, then <s> in front when add_bos_token (true unless the config says otherwise).
// - Qwen (tokenization_qwen.py): tiktoken ranks in qwen.tiktoken with its split pattern, NFC first,
//   <|endoftext|> <|im_start|> <|im_end|> <|extra_0..204|> from id 151643, all read from text.

import { existsSync } from "node:fs";
import { join } from "node:path";
import { ModelFormatError } from "../errors.ts";
import { PieceType, readSentencePieceModel, type SentencePieceModel } from "../formats/sentencepiece-model.ts";
import { readTiktokenRanks } from "../formats/tiktoken-ranks.ts";
import { sentencePieceEngine, tiktokenEngine } from "./bpe-engine.ts";
import { FamilyTokenizer, type SpecialToken } from "./family-tokenizer.ts";
import { configEosIds, TOKENIZER_CONFIG_FILE } from "./tokenizer.ts";
import { readJsonObject, requireFile } from "../formats/input-files.ts";

export const SENTENCEPIECE_FILE = "tokenizer.model";
export const TIKTOKEN_FILE = "qwen.tiktoken";
const SPECIAL_TOKENS_MAP_FILE = "special_tokens_map.json";

export type TokenizerFamily = "chatglm2" | "chatglm3" | "sentencepiece" | "qwen";

/** What a folder's configs say about its tokenizer and model. */
export interface FolderIdentity {
  /** tokenizer_config.json's (else config.json's) tokenizer_class, else auto_map's AutoTokenizer class. */
  readonly tokenizerClass: string | null;
  readonly modelType: string | null;
  /** The hub ids the configs were saved from ("THUDM/chatglm2-6b"), for telling versions apart. */
  readonly names: readonly string[];
}

function readObject(path: string): Record<string, unknown> {
  if (!requireFile(path, "Download the file again.", true)) return {};
  return readJsonObject(path, "Download the file again.");
}

const str = (v: unknown): string | null => (typeof v === "string" ? v : null);

export function folderIdentity(dir: string): FolderIdentity {
  const tc = readObject(join(dir, TOKENIZER_CONFIG_FILE));
  const config = readObject(join(dir, "config.json"));
  const autoMap = (tc.auto_map as { AutoTokenizer?: unknown } | undefined)?.AutoTokenizer;
  const autoClass = Array.isArray(autoMap) ? str(autoMap[0]) : str(autoMap);
  return {
    tokenizerClass: str(tc.tokenizer_class) ?? str(config.tokenizer_class) ?? (autoClass === null ? null : autoClass.split(".").pop()!),
    modelType: str(config.model_type),
    names: [tc.name_or_path, tc._name_or_path, config._name_or_path].flatMap((n) => (typeof n === "string" ? [n] : [])),
  };
}

/** Which of the families above a folder without tokenizer.json is, or null. */
export function tokenizerFamily(dir: string): TokenizerFamily | null {
  const id = folderIdentity(dir);
  if (existsSync(join(dir, TIKTOKEN_FILE)) && (id.tokenizerClass === "QWenTokenizer" || id.modelType === "qwen")) return "qwen";
  if (!existsSync(join(dir, SENTENCEPIECE_FILE))) return null;
  if (id.tokenizerClass === "ChatGLMTokenizer" || id.modelType === "chatglm") {
    // ChatGLM2 and 3 ship the same .model and configs of the same shape; only their code (role
    // tokens) and the hub id they were saved from differ.
    return id.names.some((n) => /chatglm2/i.test(n)) ? "chatglm2" : "chatglm3";
  }
  return "sentencepiece";
}

/** The tokenizer of `dir` (which has no tokenizer.json), or null when it is none of these families. */
export function loadRemoteCodeTokenizer(dir: string): FamilyTokenizer | null {
  const family = tokenizerFamily(dir);
  if (family === null) return null;
  if (family === "qwen") return qwenTokenizer(dir);
  const path = join(dir, SENTENCEPIECE_FILE);
  const model = readSentencePieceModel(path);
  return family === "sentencepiece" ? sentencePieceTokenizer(dir, model) : chatglmTokenizer(dir, model, family);
}

/** The model's control and unknown pieces: decoded as their text, never read from text. */
function controlPieces(model: SentencePieceModel): SpecialToken[] {
  return model.pieces.flatMap((p, id) => (p.type === PieceType.control || p.type === PieceType.unknown ? [{ id, text: p.piece, inText: false }] : []));
}

const CHATGLM_SPECIALS = ["[MASK]", "[gMASK]", "[sMASK]", "sop", "eop"];
const CHATGLM3_ROLES = ["<|system|>", "<|user|>", "<|assistant|>", "<|observation|>"];

function chatglmTokenizer(dir: string, model: SentencePieceModel, family: "chatglm2" | "chatglm3"): FamilyTokenizer {
  const names = family === "chatglm3" ? [...CHATGLM_SPECIALS, ...CHATGLM3_ROLES] : CHATGLM_SPECIALS;
  // SPTokenizer numbers them from the .model's size on.
  const extra = names.map((text, i) => ({ id: model.pieces.length + i, text, inText: false }));
  const id = (text: string) => extra.find((s) => s.text === text)!.id;
  return new FamilyTokenizer({
    origin: `${family === "chatglm3" ? "ChatGLM3" : "ChatGLM2"} tokenizer "${model.path}"`,
    ...sentencePieceEngine(model),
    specials: [...controlPieces(model), ...extra],
    prefixIds: [id("[gMASK]"), id("sop")],
    eosIds: unique([model.eosId, ...configEosIds(dir)]),
  });
}

/** transformers writes a special token as its text or as a serialized AddedToken. */
interface AddedTokenField {
  content: string;
  lstrip?: boolean;
  rstrip?: boolean;
  single_word?: boolean;
}

function addedToken(value: unknown, where: string): AddedTokenField | null {
  if (value === undefined || value === null) return null;
  if (typeof value === "string") return { content: value };
  if (typeof value === "object" && typeof (value as { content?: unknown }).content === "string") return value as AddedTokenField;
  throw new ModelFormatError(`${where} is neither a token text nor an AddedToken: ${JSON.stringify(value)}`, "Fix or re-download the tokenizer config.");
}

/**
 * A PreTrainedTokenizer over SentencePiece (InternLM, InternLM2, Baichuan): special tokens as
 * transformers makes them from the configs, with the class defaults (<s> </s> <unk>) where the
 * configs say nothing; a special text the .model lacks gets the next id, as _add_tokens does.
 */
function sentencePieceTokenizer(dir: string, model: SentencePieceModel): FamilyTokenizer {
  const configPath = join(dir, TOKENIZER_CONFIG_FILE);
  const tc = readObject(configPath);
  const map = readObject(join(dir, SPECIAL_TOKENS_MAP_FILE));
  const pieceIds = new Map(model.pieces.map((p, i) => [p.piece, i]));
  // added_tokens_decoder: id → AddedToken, the ids transformers gives them.
  const declared = new Map<string, { id: number; field: AddedTokenField }>();
  const decoder = tc.added_tokens_decoder;
  for (const [key, value] of Object.entries(decoder !== null && typeof decoder === "object" ? decoder : {})) {
    const field = addedToken(value, `"${configPath}" added_tokens_decoder["${key}"]`)!;
    const id = Number(key);
    if (!Number.isSafeInteger(id) || id < 0) throw new ModelFormatError(`"${configPath}": added_tokens_decoder key "${key}" is not a token id`, "Fix or re-download the tokenizer config.");
    declared.set(field.content, { id, field });
  }
  const defaults: Record<string, string> = { bos_token: "<s>", eos_token: "</s>", unk_token: "<unk>" };
  const named = (key: string) => addedToken(key in tc ? tc[key] : key in map ? map[key] : defaults[key], `"${configPath}" ${key}`);
  const bos = named("bos_token");
  const eos = named("eos_token");
  const fields = [bos, eos, named("unk_token"), named("pad_token")].filter((f) => f !== null);
  const additional = tc.additional_special_tokens ?? map.additional_special_tokens ?? [];
  if (!Array.isArray(additional)) throw new ModelFormatError(`"${configPath}": additional_special_tokens must be a list`, "Fix or re-download the tokenizer config.");
  for (const [i, v] of additional.entries()) fields.push(addedToken(v, `"${configPath}" additional_special_tokens[${i}]`)!);
  for (const { field } of declared.values()) fields.push(field);

  let next = model.pieces.length;
  const specials = new Map<string, SpecialToken>();
  for (const f of fields) {
    if (specials.has(f.content)) continue;
    const id = declared.get(f.content)?.id ?? pieceIds.get(f.content) ?? next++;
    specials.set(f.content, { id, text: f.content, inText: true, lstrip: f.lstrip ?? false, rstrip: f.rstrip ?? false, singleWord: f.single_word ?? false });
  }
  const controls = controlPieces(model).filter((c) => ![...specials.values()].some((s) => s.id === c.id));
  const addBos = tc.add_bos_token ?? true;
  if (typeof addBos !== "boolean") throw new ModelFormatError(`"${configPath}": add_bos_token must be true or false`, "Fix or re-download the tokenizer config.");
  const bosId = bos === null ? undefined : specials.get(bos.content)!.id;
  if (addBos && bosId === undefined) throw new ModelFormatError(`"${configPath}" sets add_bos_token but names no bos_token`, "Set bos_token, or add_bos_token: false.");
  const className = folderIdentity(dir).tokenizerClass ?? "SentencePiece";
  return new FamilyTokenizer({
    origin: `${className} tokenizer "${model.path}"`,
    ...sentencePieceEngine(model),
    specials: [...controls, ...specials.values()],
    prefixIds: addBos ? [bosId!] : [],
    eosIds: unique([...(eos === null ? [] : [specials.get(eos.content)!.id]), ...configEosIds(dir)]),
  });
}

/** tokenization_qwen.py's PAT_STR. */
const QWEN_PATTERN = String.raw`(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`;
const QWEN_SPECIAL_START = 151643;
const QWEN_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", ...Array.from({ length: 205 }, (_, i) => `<|extra_${i}|>`)];

function qwenTokenizer(dir: string): FamilyTokenizer {
  const ranks = readTiktokenRanks(join(dir, TIKTOKEN_FILE));
  if (ranks.tokens.length > QWEN_SPECIAL_START) {
    throw new ModelFormatError(`"${ranks.path}" has ${ranks.tokens.length} ranks, but Qwen's special tokens start at id ${QWEN_SPECIAL_START}`, "This is not Qwen's qwen.tiktoken; download it again.");
  }
  const specials = QWEN_SPECIALS.map((text, i) => ({ id: QWEN_SPECIAL_START + i, text, inText: true }));
  return new FamilyTokenizer({
    origin: `QWenTokenizer "${ranks.path}"`,
    engine: tiktokenEngine(ranks, QWEN_PATTERN),
    specials,
    prefixIds: [],
    eosIds: unique([QWEN_SPECIAL_START, ...configEosIds(dir)]),
    nfc: true,
  });
}

function unique(ids: readonly number[]): number[] {
  return [...new Set(ids)];
}
