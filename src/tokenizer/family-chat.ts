// The chat prompts of the remote-code families, as their own code builds them. Most concatenate
// pieces tokenized one by one (ChatGLM3's role tokens + sp.encode(...) per part, Baichuan2's ids
// 195/196, Qwen's make_context), which no template rendered to one text and tokenized once can
// reproduce, so each is written here as the list of parts its code joins: an id, or a text that
// is tokenized on its own. Where a family's prompt is one text tokenized once (ChatGLM2, InternLM)
// the list has one text. InternLM2 ships a Jinja template (tokenizer_config.json) and uses it.
// Truncation of long histories (Baichuan2, Qwen) is left to the engine's context checks.

import { existsSync } from "node:fs";
import { join } from "node:path";
import { readJsonObject, requireFile } from "../formats/input-files.ts";
import { UsageError } from "../errors.ts";
import { checkMessages, loadChatTemplate, ChatTemplate, type ChatFormat, type ChatMessage, type ChatTemplateOptions } from "./chat-template.ts";
import { FamilyTokenizer } from "./family-tokenizer.ts";
import { folderIdentity, tokenizerFamily } from "./remote-code-tokenizers.ts";
import type { TextTokenizer } from "./text-tokenizer.ts";

/** A prompt part: a token id, or a text tokenized by itself (without BOS). */
type Part = number | string;

interface FormatSpec {
  readonly origin: string;
  /** The parts of a conversation's prompt. */
  readonly parts: (messages: readonly ChatMessage[], tok: TextTokenizer, addGenerationPrompt: boolean) => Part[];
  /** Special-token text inside a part is plain text (Qwen: allowed_special=set()). */
  readonly plainParts?: boolean;
  /** The tokens that end a reply, by their text. */
  readonly stopTokens: readonly string[];
  readonly stopTexts?: readonly string[];
}

class FamilyChatFormat implements ChatFormat {
  readonly origin: string;
  readonly stopTexts: readonly string[];

  constructor(readonly spec: FormatSpec) {
    this.origin = spec.origin;
    this.stopTexts = spec.stopTexts ?? [];
  }

  render(messages: readonly ChatMessage[], tok: TextTokenizer, o: ChatTemplateOptions = {}): string {
    return this.#parts(messages, tok, o).map((p) => (typeof p === "number" ? (tok.idToToken(p) ?? "") : p)).join("");
  }

  encode(messages: readonly ChatMessage[], tok: TextTokenizer, o: ChatTemplateOptions = {}): number[] {
    const plain = this.spec.plainParts === true && tok instanceof FamilyTokenizer;
    return this.#parts(messages, tok, o).flatMap((p) =>
      typeof p === "number" ? [p] : plain ? (tok as FamilyTokenizer).encode(p, { addBos: false, specialText: false }) : tok.encode(p, { addBos: false }),
    );
  }

  stopIds(tok: TextTokenizer): number[] {
    return this.spec.stopTokens.map((t) => requireToken(tok, t, this.origin));
  }

  #parts(messages: readonly ChatMessage[], tok: TextTokenizer, o: ChatTemplateOptions): Part[] {
    checkMessages(messages);
    return this.spec.parts(messages, tok, o.addGenerationPrompt ?? true);
  }
}

function requireToken(tok: TextTokenizer, text: string, origin: string): number {
  const id = tok.tokenToId(text);
  if (id === undefined) throw new UsageError(`the tokenizer has no "${text}" token, which ${origin} needs`, "use the model's own tokenizer files, or pass --chat-template FILE");
  return id;
}

function onlyRoles(messages: readonly ChatMessage[], roles: readonly string[], origin: string): void {
  for (const m of messages) {
    if (!roles.includes(m.role)) throw new UsageError(`${origin} has no "${m.role}" role (it knows ${roles.join(", ")})`, "drop or rename that message");
  }
}

/** (user, assistant) pairs and the final user query, as the families' history-based code takes them. */
function rounds(messages: readonly ChatMessage[], origin: string): { history: [string, string][]; query: string | null } {
  onlyRoles(messages, ["user", "assistant"], origin);
  const history: [string, string][] = [];
  let i = 0;
  for (; i + 1 < messages.length; i += 2) {
    if (messages[i]!.role !== "user" || messages[i + 1]!.role !== "assistant") break;
    history.push([messages[i]!.content, messages[i + 1]!.content]);
  }
  const rest = messages.slice(i);
  if (rest.length > 1 || (rest.length === 1 && rest[0]!.role !== "user")) {
    throw new UsageError(`${origin} needs turns that alternate user, assistant, ... starting with the user`, "reorder the messages");
  }
  return { history, query: rest.length === 1 ? rest[0]!.content : null };
}

/** ChatGLM3 (tokenization_chatglm.py build_chat_input): [gMASK] sop, then per message <|role|> +
 *  encode(metadata + "\n") + encode(content), then <|assistant|>. */
const chatglm3: FormatSpec = {
  origin: "ChatGLM3's build_chat_input (tokenization_chatglm.py)",
  parts: (messages, tok, gen) => {
    onlyRoles(messages, ["system", "user", "assistant", "observation"], chatglm3.origin);
    const role = (r: string) => requireToken(tok, `<|${r}|>`, chatglm3.origin);
    const parts: Part[] = [requireToken(tok, "[gMASK]", chatglm3.origin), requireToken(tok, "sop", chatglm3.origin)];
    for (const m of messages) parts.push(role(m.role), "\n", m.content);
    if (gen) parts.push(role("assistant"));
    return parts;
  },
  // modeling_chatglm.py chat(): eos, <|user|>, <|observation|>.
  stopTokens: ["<|user|>", "<|observation|>"],
};

/** ChatGLM2 (tokenization_chatglm.py build_prompt, tokenized whole after [gMASK] sop). */
const chatglm2: FormatSpec = {
  origin: "ChatGLM2's build_prompt (tokenization_chatglm.py)",
  parts: (messages, tok) => {
    const { history, query } = rounds(messages, chatglm2.origin);
    let prompt = history.map(([q, r], i) => `[Round ${i + 1}]\n\n问：${q}\n\n答：${r}\n\n`).join("");
    if (query !== null) prompt += `[Round ${history.length + 1}]\n\n问：${query}\n\n答：`;
    return [requireToken(tok, "[gMASK]", chatglm2.origin), requireToken(tok, "sop", chatglm2.origin), prompt];
  },
  stopTokens: [],
};

/** Baichuan2 (generation_utils.py build_chat_input): encode(system), then user_token_id +
 *  encode(content) / assistant_token_id + encode(content), then assistant_token_id. */
function baichuan2(userId: number, assistantId: number): FormatSpec {
  const origin = "Baichuan2's build_chat_input (generation_utils.py)";
  return {
    origin,
    parts: (messages, _tok, gen) => {
      const parts: Part[] = [];
      messages.forEach((m, i) => {
        if (m.role === "system") {
          if (i !== 0) throw new UsageError(`${origin} takes a system message only first`, "move the system message to the front");
          parts.push(m.content);
        } else if (m.role === "user" || m.role === "assistant") {
          parts.push(m.role === "user" ? userId : assistantId, m.content);
        } else {
          throw new UsageError(`${origin} has no "${m.role}" role (it knows system, user, assistant)`, "drop or rename that message");
        }
      });
      if (gen && messages[messages.length - 1]!.role !== "assistant") parts.push(assistantId);
      return parts;
    },
    stopTokens: [],
  };
}

/** InternLM (modeling_internlm.py build_inputs), tokenized whole with BOS. */
const internlm: FormatSpec = {
  origin: "InternLM's build_inputs (modeling_internlm.py)",
  parts: (messages, tok, gen) => {
    const { history, query } = rounds(messages, internlm.origin);
    let prompt = history.map(([q, r]) => `<|User|>:${q}<eoh>\n<|Bot|>:${r}<eoa>\n`).join("");
    if (query !== null) prompt += `<|User|>:${query}<eoh>\n` + (gen ? "<|Bot|>:" : "");
    return [...(tok.bosId === undefined ? [] : [tok.bosId]), prompt];
  },
  // chat() keeps the reply up to <eoa>.
  stopTokens: ["<eoa>"],
};

/** Qwen (qwen_generation_utils.py make_context, chatml): the system prompt QWenLMHeadModel.chat
 *  uses when none is given, each turn <|im_start|> role \n content <|im_end|>, joined by \n. */
const QWEN_DEFAULT_SYSTEM = "You are a helpful assistant.";
const qwenChatml: FormatSpec = {
  origin: "Qwen's make_context, chatml (qwen_generation_utils.py)",
  parts: (messages, tok, gen) => {
    onlyRoles(messages, ["system", "user", "assistant"], qwenChatml.origin);
    const start = requireToken(tok, "<|im_start|>", qwenChatml.origin);
    const end = requireToken(tok, "<|im_end|>", qwenChatml.origin);
    const turns = messages[0]!.role === "system" ? messages : [{ role: "system", content: QWEN_DEFAULT_SYSTEM }, ...messages];
    const parts: Part[] = [];
    turns.forEach((m, i) => {
      if (m.role === "system" && i > 0) throw new UsageError(`${qwenChatml.origin} takes a system message only first`, "move the system message to the front");
      parts.push(...(i > 0 ? ["\n"] : []), start, m.role, "\n", m.content, end);
    });
    if (gen) parts.push("\n", start, "assistant", "\n");
    return parts;
  },
  plainParts: true,
  stopTokens: ["<|im_end|>", "<|im_start|>"],
};

/** Qwen base models (chat_format "raw"): the query alone; get_stop_words_ids stops at "Human:". */
const qwenRaw: FormatSpec = {
  origin: "Qwen's make_context, raw (qwen_generation_utils.py)",
  parts: (messages) => {
    const last = messages[messages.length - 1]!;
    if (last.role !== "user") throw new UsageError(`${qwenRaw.origin} prompts with the last user message`, "end the conversation with a user message");
    return [last.content];
  },
  stopTokens: [],
  stopTexts: ["Human:"],
};

/** The formats by name (Qwen's two are picked by generation_config.json's chat_format). */
export const FAMILY_CHAT_FORMATS: Readonly<Record<"chatglm3" | "chatglm2" | "internlm" | "qwen-chatml" | "qwen-raw", ChatFormat>> = {
  chatglm3: new FamilyChatFormat(chatglm3),
  chatglm2: new FamilyChatFormat(chatglm2),
  internlm: new FamilyChatFormat(internlm),
  "qwen-chatml": new FamilyChatFormat(qwenChatml),
  "qwen-raw": new FamilyChatFormat(qwenRaw),
};

/** Baichuan2's format with its generation_config.json role ids (195 / 196). */
export function baichuan2ChatFormat(userId: number, assistantId: number): ChatFormat {
  return new FamilyChatFormat(baichuan2(userId, assistantId));
}

function generationConfig(dir: string): Record<string, unknown> {
  const path = join(dir, "generation_config.json");
  return requireFile(path, "Download generation_config.json again.", true) ? readJsonObject(path, "Fix or download generation_config.json again.") : {};
}

/** The family's own chat format for a folder without a template of its own, or null. */
function familyChatFormat(dir: string): ChatFormat | null {
  if (existsSync(join(dir, "tokenizer.json"))) return null;
  const family = tokenizerFamily(dir);
  const id = folderIdentity(dir);
  if (family === "chatglm3" || family === "chatglm2") return FAMILY_CHAT_FORMATS[family];
  // Qwen-7B (base) says "raw", Qwen-7B-Chat "chatml".
  if (family === "qwen") return FAMILY_CHAT_FORMATS[generationConfig(dir).chat_format === "raw" ? "qwen-raw" : "qwen-chatml"];
  if (family !== "sentencepiece") return null;
  if (id.modelType === "internlm" || id.tokenizerClass === "InternLMTokenizer") return FAMILY_CHAT_FORMATS.internlm;
  const g = generationConfig(dir);
  // Baichuan2's code reads its role ids from generation_config.json; Baichuan-7B has none (no chat).
  if ((id.modelType === "baichuan" || /^bai[cC]huan/i.test(id.tokenizerClass ?? "")) && Number.isSafeInteger(g.user_token_id) && Number.isSafeInteger(g.assistant_token_id)) {
    return baichuan2ChatFormat(g.user_token_id as number, g.assistant_token_id as number);
  }
  return null;
}

/** Tokens that end a turn in a family's shipped Jinja template (InternLM2's chat(): <|im_end|>). */
function templateStops(dir: string): string[] {
  const id = folderIdentity(dir);
  return id.modelType === "internlm2" || id.tokenizerClass === "InternLM2Tokenizer" ? ["<|im_end|>"] : [];
}

/** The chat format of a model folder: its Jinja template (with its family's stop tokens), else its
 *  family's code, else null. */
export function loadChatFormat(dir: string): ChatFormat | null {
  const template = loadChatTemplate(dir);
  if (template === null) return familyChatFormat(dir);
  const stops = templateStops(dir);
  return stops.length === 0 ? template : new ChatTemplate(template.source, template.origin, stops);
}
