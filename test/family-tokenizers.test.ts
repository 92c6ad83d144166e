// The remote-code families' tokenizers and chat prompts against their ORIGINAL code: every id here
// was produced by the family's own tokenization_*.py (SentencePiece / tiktoken underneath) and chat
// code from ../shared/refcode, run by test/fixtures/gen_family_tokenizer_fixtures.py under the
// pinned transformers it needs. Each family's full tokenizer file is read in place.
import { afterAll, describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { readSentencePieceModel } from "../src/formats/sentencepiece-model.ts";
import { sentencePieceEngine } from "../src/tokenizer/bpe-engine.ts";
import type { ChatFormat, ChatMessage } from "../src/tokenizer/chat-template.ts";
import { Detokenizer } from "../src/tokenizer/detokenizer.ts";
import { baichuan2ChatFormat, FAMILY_CHAT_FORMATS, loadChatFormat } from "../src/tokenizer/family-chat.ts";
import { FamilyTokenizer } from "../src/tokenizer/family-tokenizer.ts";
import { loadTokenizer } from "../src/tokenizer/load-tokenizer.ts";
import type { TextTokenizer } from "../src/tokenizer/text-tokenizer.ts";
import { ROOT, SHARED } from "./paths.ts";

interface Case {
  text: string;
  ids: number[];
  ids_with_special: number[];
  decoded: string;
}
interface Fixture {
  transformers_version: string;
  tokenizer_class: string;
  tokenizer_file: string;
  tokenizer_sha256: string;
  cases: Case[];
  chat: Record<string, { stop_ids: number[][]; prompts: { messages: ChatMessage[]; ids: number[] }[] }>;
}
const FIXTURES = join(ROOT, "test/fixtures/family-tokenizers");
const fixture = (name: string) => JSON.parse(readFileSync(join(FIXTURES, `${name}.json`), "utf8")) as Fixture;
const REFCODE = join(SHARED, "refcode");

// Baichuan2-7B's ModelScope copy has no tokenizer_config.json / generation_config.json: the 13B hub
// repo's are the family's, so its folder is its own tokenizer.model beside the 13B configs (as the
// generator loads it), made of symlinks.
const baichuan7b = mkdtempSync(join(tmpdir(), "airllm-baichuan2-7b-"));
symlinkSync(join(REFCODE, "baichuan2/7b/tokenizer.model"), join(baichuan7b, "tokenizer.model"));
for (const f of ["tokenizer_config.json", "special_tokens_map.json", "generation_config.json", "config.json"]) {
  symlinkSync(join(REFCODE, "baichuan2/13b", f), join(baichuan7b, f));
}
afterAll(() => rmSync(baichuan7b, { recursive: true, force: true }));

const FAMILIES: { name: string; dir: string; version: string; chat: Record<string, () => ChatFormat> }[] = [
  { name: "chatglm3", dir: join(REFCODE, "chatglm3"), version: "4.41.2", chat: { chat: () => loadChatFormat(join(REFCODE, "chatglm3"))! } },
  { name: "chatglm2", dir: join(REFCODE, "chatglm3/chatglm2"), version: "4.41.2", chat: { chat: () => loadChatFormat(join(REFCODE, "chatglm3/chatglm2"))! } },
  { name: "baichuan2-7b", dir: baichuan7b, version: "4.41.2", chat: { chat: () => loadChatFormat(baichuan7b)! } },
  { name: "baichuan2-13b", dir: join(REFCODE, "baichuan2/13b"), version: "4.33.3", chat: { chat: () => loadChatFormat(join(REFCODE, "baichuan2/13b"))! } },
  { name: "internlm", dir: join(REFCODE, "internlm"), version: "4.41.2", chat: { chat: () => loadChatFormat(join(REFCODE, "internlm"))! } },
  { name: "internlm2", dir: join(REFCODE, "internlm2"), version: "4.41.2", chat: { chat: () => loadChatFormat(join(REFCODE, "internlm2"))! } },
  // The refcode folder is Qwen-7B (base), whose generation_config.json says chat_format "raw";
  // Qwen-7B-Chat says "chatml".
  { name: "qwen", dir: join(REFCODE, "qwen"), version: "4.41.2", chat: { chatml: () => FAMILY_CHAT_FORMATS["qwen-chatml"], raw: () => loadChatFormat(join(REFCODE, "qwen"))! } },
];

/** Each folder's tokenizer is built once for the whole file (a full vocabulary takes about a second). */
const built = new Map<string, TextTokenizer>();
function tokenizerOf(dir: string): TextTokenizer {
  let tok = built.get(dir);
  if (tok === undefined) built.set(dir, (tok = loadTokenizer(dir)));
  return tok;
}

const sha256 = (path: string) => createHash("sha256").update(readFileSync(path)).digest("hex");

/** The text a Detokenizer streams for `ids`, one id at a time. */
function streamed(tok: TextTokenizer, ids: readonly number[]): string {
  const d = new Detokenizer(tok);
  return ids.map((id) => d.push(id)).join("") + d.flush();
}

for (const family of FAMILIES) {
  describe(`${family.name}: tokenizer and chat prompt equal the original code's`, () => {
    const fx = fixture(family.name);
    const tok = tokenizerOf(family.dir);
    // Ids a case's plain encoding holds that are special tokens (decoded as their text).
    const hasSpecial = (c: Case) => tok.decode(c.ids, { skipSpecial: true }) !== tok.decode(c.ids);

    test(`the fixture was made from this full tokenizer file by ${fx.tokenizer_class} under transformers ${family.version}`, () => {
      expect(fx.transformers_version).toBe(family.version);
      expect(sha256(join(ROOT, fx.tokenizer_file))).toBe(fx.tokenizer_sha256);
      expect(fx.cases.length).toBeGreaterThanOrEqual(19);
    });

    // transformers 4.33 (the only one the 13B file loads in) cuts <s>/</s> out of text anywhere;
    // 4.34+ honours their single_word flag and leaves "<s>inside" or "a<s>b" as text. We follow
    // 4.41 (the 7B fixture, the same tokenizer.model): the two disagree on exactly three strings.
    let cases = fx.cases;
    if (family.name === "baichuan2-13b") {
      const seven = fixture("baichuan2-7b").cases;
      const differ = fx.cases.filter((c, i) => JSON.stringify(c.ids) !== JSON.stringify(seven[i]!.ids)).map((c) => c.text);
      test("transformers 4.33 and 4.41 disagree only on <s>/</s> glued to text; those follow 4.41", () => {
        expect(differ).toEqual(["<s>inside</s> and <unk> text", "</s><s>", "a<s>b"]);
        expect(seven.map((c) => c.text)).toEqual(fx.cases.map((c) => c.text));
      });
      cases = fx.cases.map((c, i) => (differ.includes(c.text) ? seven[i]! : c));
    }

    test(`encodes ${cases.length} strings (English, Chinese, whitespace runs, tabs, digits, emoji, accents, special-token text) as the original does, with and without special tokens`, () => {
      for (const c of cases) {
        expect({ text: c.text, ids: tok.encode(c.text, { addBos: false }) }).toEqual({ text: c.text, ids: c.ids });
        expect({ text: c.text, ids: tok.encode(c.text) }).toEqual({ text: c.text, ids: c.ids_with_special });
      }
    });

    test("decodes plain text as the original does, and special tokens back to the same ids", () => {
      let plain = 0;
      for (const c of cases) {
        if (hasSpecial(c)) {
          // The originals' decode puts spaces around special tokens (InternLM's and Baichuan's
          // convert_tokens_to_string); ours keeps the text, so it encodes back to the same ids.
          expect(tok.encode(tok.decode(c.ids), { addBos: false })).toEqual(c.ids);
        } else {
          plain++;
          expect({ text: c.text, decoded: tok.decode(c.ids) }).toEqual({ text: c.text, decoded: c.decoded });
        }
      }
      expect(plain).toBeGreaterThanOrEqual(14);
    });

    test("streaming one id at a time gives the same text as one decode", () => {
      for (const c of cases) expect(streamed(tok, c.ids_with_special)).toBe(tok.decode(c.ids_with_special));
    });

    for (const [label, make] of Object.entries(family.chat)) {
      const ref = fx.chat[label]!;
      test(`${label}: two-round prompts (${ref.prompts.length}) equal the original chat code's ids, with its stop ids`, () => {
        const format = make();
        for (const p of ref.prompts) expect(format.encode(p.messages, tok)).toEqual(p.ids);
        // Single-token stop words are stop ids; Qwen's raw "Human:" is a stop text.
        const single = ref.stop_ids.filter((s) => s.length === 1).map((s) => s[0]!);
        const multi = ref.stop_ids.filter((s) => s.length > 1).map((s) => tok.decode(s));
        expect(format.stopIds(tok).filter((id) => !tok.eosIds.includes(id))).toEqual(single.filter((id) => !tok.eosIds.includes(id)));
        expect(format.stopTexts).toEqual(multi);
      });
    }
  });
}

describe("family specifics", () => {
  test("ChatGLM: [gMASK] sop in front, ids past the .model for the specials, none read from text", () => {
    const tok = tokenizerOf(join(REFCODE, "chatglm3"));
    expect(tok.encode("hi").slice(0, 2)).toEqual([64790, 64792]);
    expect([tok.tokenToId("[MASK]"), tok.tokenToId("<|observation|>"), tok.vocabSize]).toEqual([64789, 64797, 64798]);
    expect(tok.decode([64790, 64792, 64795])).toBe("[gMASK]sop<|user|>");
    expect(tok.decode(tok.encode("Hello"), { skipSpecial: true })).toBe("Hello");
    const v2 = tokenizerOf(join(REFCODE, "chatglm3/chatglm2"));
    expect([v2.vocabSize, v2.tokenToId("<|user|>")]).toEqual([64794, undefined]);
  });

  test("InternLM2: <|plugin|> is id 92538, whose .model piece [UNUSED_TOKEN_141] also reads as it", () => {
    const tok = tokenizerOf(join(REFCODE, "internlm2"));
    expect([tok.tokenToId("<|plugin|>"), tok.idToToken(92538)]).toEqual([92538, "<|plugin|>"]);
    expect(tok.encode("[UNUSED_TOKEN_141]<|plugin|>", { addBos: false })).toEqual([92538, 92538]);
  });

  test("Qwen: no BOS, <|endoftext|> ends text, specials from 151643", () => {
    const tok = tokenizerOf(join(REFCODE, "qwen"));
    expect([tok.bosId, tok.addsBos, tok.eosIds, tok.vocabSize]).toEqual([undefined, false, [151643], 151851]);
    expect(tok.idToToken(151850)).toBe("<|extra_204|>");
  });

  test("chat formats refuse roles their code has no place for", () => {
    const tok = tokenizerOf(join(REFCODE, "chatglm3/chatglm2"));
    const system: ChatMessage[] = [{ role: "system", content: "x" }, { role: "user", content: "hi" }];
    expect(() => FAMILY_CHAT_FORMATS.chatglm2.encode(system, tok)).toThrow(/no "system" role/);
    expect(() => baichuan2ChatFormat(195, 196).encode([{ role: "tool", content: "x" }], tok)).toThrow(/no "tool" role/);
  });
});

describe("SentencePiece's rule for pairs of equal score (a tiny model written by the generator)", () => {
  // "ab" and "bc" share a score, with "bc" first in id order: sentencepiece merges the leftmost of
  // the two, which a plain merge list (one rank per merge, in id order) would get wrong.
  const ref = JSON.parse(readFileSync(join(FIXTURES, "tiny-ties.json"), "utf8")) as { cases: { text: string; ids: number[]; decoded: string }[] };
  const tok = new FamilyTokenizer({ origin: "tiny-ties.model", ...sentencePieceEngine(readSentencePieceModel(join(FIXTURES, "tiny-ties.model"))), specials: [], prefixIds: [], eosIds: [] });
  test(`${ref.cases.length} strings encode and decode as sentencepiece does (ties, a user-defined piece, the dummy prefix once, byte fallback)`, () => {
    for (const c of ref.cases) {
      expect({ text: c.text, ids: tok.encode(c.text) }).toEqual({ text: c.text, ids: c.ids });
      expect(tok.decode(c.ids)).toBe(c.decoded);
    }
  });
});
