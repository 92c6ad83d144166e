// Mutations of stories260K's tokenizer.json (model type, vocabulary, merges, added tokens, each
// pipeline component) and tokenizer_config.json (BOS/EOS settings and tokens), run through
// `airllm run`, which loads the tokenizer before the weights.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { BASES, commandArgs, modelFolder, type Expect, type Family } from "./case.ts";
import type { Rng } from "./rng.ts";
import { jsonText } from "./values.ts";

type Json = Record<string, any>;
const load = (f: string): Json => JSON.parse(readFileSync(join(BASES.hf, f), "utf8"));

/** One edit of the parsed file, what it is, and what must happen. */
type Edit = [string, (t: Json) => void, Expect, boolean?];

const COMPONENT_BAD: [string, unknown][] = [
  ["true", true], ["[]", []], ["5", 5], ["{}", {}], [`{"type": "Nope"}`, { type: "Nope" }], [`{"type": "toString"}`, { type: "toString" }],
];

function tokenizerEdits(): Edit[] {
  const edits: Edit[] = [
    ["model.type deleted", (t) => delete t.model.type, "error"],
    ["model.type \"Unigram\" over a BPE vocabulary", (t) => (t.model.type = "Unigram"), "error"],
    ["model.type \"WordPiece\"", (t) => (t.model.type = "WordPiece"), "either"],
    ["model.type \"Nope\"", (t) => (t.model.type = "Nope"), "error"],
    ["model.type null", (t) => (t.model.type = null), "error"],
    ["model.type \"constructor\"", (t) => (t.model.type = "constructor"), "error"],
    ["model null", (t) => (t.model = null), "error"],
    ["model.vocab {}", (t) => (t.model.vocab = {}), "error"],
    ["model.vocab []", (t) => (t.model.vocab = []), "error"],
    ["a vocabulary id -1", (t) => (t.model.vocab["\u2581the"] = -1), "error"],
    ["a vocabulary id 1.5", (t) => (t.model.vocab["\u2581the"] = 1.5), "error"],
    ["a vocabulary id 1e9", (t) => (t.model.vocab["\u2581the"] = 1e9), "error", true],
    ["a vocabulary id 2^53-1", (t) => (t.model.vocab["\u2581the"] = 2 ** 53 - 1), "error", true],
    ["a vocabulary id \"5\"", (t) => (t.model.vocab["\u2581the"] = "5"), "error"],
    ["two pieces with one id", (t) => (t.model.vocab["\u2581the"] = t.model.vocab["\u2581a"]), "error"],
    ["byte piece <0x41> removed, byte_fallback on", (t) => delete t.model.vocab["<0x41>"], "error"],
    ["model.merges [1, 2]", (t) => (t.model.merges = [1, 2]), "error"],
    ["model.merges [null]", (t) => (t.model.merges = [null]), "error"],
    ["model.merges \"x\"", (t) => (t.model.merges = "x"), "error"],
    ["model.merges deleted", (t) => delete t.model.merges, "error"],
    ["model.merges []", (t) => (t.model.merges = []), "ok"],
    ["a merge of three strings", (t) => (t.model.merges[3] = ["a", "b", "c"]), "error"],
    ["model.byte_fallback \"yes\"", (t) => (t.model.byte_fallback = "yes"), "error"],
    ["model.byte_fallback false", (t) => (t.model.byte_fallback = false), "ok"],
    ["model.unk_token 5", (t) => (t.model.unk_token = 5), "error"],
    ["model.unk_token not in the vocabulary", (t) => (t.model.unk_token = "<nope>"), "either"],
    ["model.ignore_merges \"x\"", (t) => (t.model.ignore_merges = "x"), "error"],
    ["added_tokens \"x\"", (t) => (t.added_tokens = "x"), "error"],
    ["added_tokens deleted", (t) => delete t.added_tokens, "error"],
    ["an added token without content", (t) => delete t.added_tokens[1].content, "error"],
    ["an added token with content \"\"", (t) => (t.added_tokens[1].content = ""), "error"],
    ["an added token with id -1", (t) => (t.added_tokens[1].id = -1), "error"],
    ["an added token with id 1e9", (t) => (t.added_tokens[1].id = 1e9), "error", true],
    ["an added token with id 1.5", (t) => (t.added_tokens[1].id = 1.5), "error"],
    ["an added token with special \"yes\"", (t) => (t.added_tokens[1].special = "yes"), "error"],
    ["an added token null", (t) => (t.added_tokens[1] = null), "error"],
    ["an added token <s> with the id of another piece", (t) => (t.added_tokens[1].id = 300), "error"],
    ["a new added token id 512", (t) => t.added_tokens.push({ id: 512, content: "<new>", special: true }), "ok"],
    ["post_processor.single true", (t) => (t.post_processor.single = true), "error"],
    ["post_processor.single [true]", (t) => (t.post_processor.single = [true]), "error"],
    ["post_processor.single names a token outside the vocabulary", (t) => (t.post_processor.single = [{ SpecialToken: { id: "<nope>", type_id: 0 } }]), "error"],
    ["post_processor.single sequence \"C\"", (t) => (t.post_processor.single = [{ Sequence: { id: "C", type_id: 0 } }]), "error"],
    ["post_processor null", (t) => (t.post_processor = null), "either"],
    ["post_processor {\"type\": \"ByteLevel\"}", (t) => (t.post_processor = { type: "ByteLevel" }), "either"],
    ["normalizer {\"type\": \"NFC\"}", (t) => (t.normalizer = { type: "NFC" }), "either"],
    ["normalizer.normalizers[1] without a pattern", (t) => delete t.normalizer.normalizers[1].pattern, "error"],
    ["normalizer.normalizers [null]", (t) => (t.normalizer.normalizers = [null]), "error"],
    ["pre_tokenizer {\"type\": \"Split\"} without a pattern", (t) => (t.pre_tokenizer = { type: "Split" }), "error"],
    ["pre_tokenizer {\"type\": \"Sequence\"} without a list", (t) => (t.pre_tokenizer = { type: "Sequence" }), "error"],
    ["decoder.decoders[3].start \"1\"", (t) => (t.decoder.decoders[3].start = "1"), "error"],
    ["decoder null", (t) => (t.decoder = null), "either"],
    ["a top-level __proto__ key", (t) => (t.__proto_fuzz__ = 1), "ok"],
    ["version \"9.9\"", (t) => (t.version = "9.9"), "ok"],
  ];
  for (const part of ["normalizer", "pre_tokenizer", "post_processor", "decoder"]) {
    edits.push([`"${part}" deleted`, (t) => delete t[part], "error"]);
    for (const [what, v] of COMPONENT_BAD) edits.push([`${part} ${what}`, (t) => (t[part] = v), "error"]);
  }
  return edits;
}

function configEdits(): Edit[] {
  return [
    ["add_bos_token \"yes\"", (c) => (c.add_bos_token = "yes"), "error"],
    ["add_bos_token 1", (c) => (c.add_bos_token = 1), "error"],
    ["add_bos_token false", (c) => (c.add_bos_token = false), "ok"],
    ["add_bos_token null", (c) => (c.add_bos_token = null), "ok"],
    ["add_eos_token \"x\"", (c) => (c.add_eos_token = "x"), "error"],
    ["bos_token 5", (c) => (c.bos_token = 5), "error"],
    ["bos_token outside the vocabulary", (c) => (c.bos_token = "<nope>"), "error"],
    ["bos_token \"\"", (c) => (c.bos_token = ""), "error"],
    ["bos_token {\"content\": 5}", (c) => (c.bos_token = { content: 5 }), "error"],
    ["bos_token {\"content\": \"<s>\"}", (c) => (c.bos_token = { content: "<s>" }), "ok"],
    ["bos_token null", (c) => (c.bos_token = null), "ok"],
    ["eos_token outside the vocabulary", (c) => (c.eos_token = "<nope>"), "error"],
    ["eos_token an ESC sequence", (c) => (c.eos_token = "\u001b[2J"), "error"],
    ["eos_token null", (c) => (c.eos_token = null), "ok"],
    ["additional_special_tokens \"x\"", (c) => (c.additional_special_tokens = "x"), "error"],
    ["additional_special_tokens [5]", (c) => (c.additional_special_tokens = [5]), "error"],
    ["additional_special_tokens [\"<s>\"]", (c) => (c.additional_special_tokens = ["<s>"]), "ok"],
    ["clean_up_tokenization_spaces \"no\"", (c) => (c.clean_up_tokenization_spaces = "no"), "error"],
    ["chat_template with an OSC 52 sequence", (c) => (c.chat_template = "\u001b]52;c;aGk=\u0007"), "ok"],
  ];
}

const WHOLE: [string, string, boolean?][] = [
  ["an empty file", ""], ["text that is not JSON", "{ nope"], ["a JSON array", "[]"], ["null", "null"],
  ["arrays nested 200,000 deep", "[".repeat(200_000) + "]".repeat(200_000), true],
];

export const tokenizerFamily: Family = (rng: Rng) => {
  const file = rng.chance(0.7) ? "tokenizer.json" : "tokenizer_config.json";
  let text: string;
  let what: string;
  let expect: Expect;
  let hugeCount = false;
  if (rng.chance(0.08)) {
    const [w, t, huge] = rng.pick(WHOLE);
    [text, what, expect, hugeCount] = [t, w, "error", huge === true];
  } else {
    const [w, edit, e, huge] = rng.pick(file === "tokenizer.json" ? tokenizerEdits() : configEdits());
    const json = load(file);
    edit(json);
    [text, what, expect, hugeCount] = [jsonText(json), w, e, huge === true];
  }
  return {
    what: `run: ${file} ${what}`,
    expect,
    hugeCount,
    build(dir) {
      return { args: commandArgs("run", modelFolder(dir, BASES.hf, { [file]: text }), dir) };
    },
  };
};
