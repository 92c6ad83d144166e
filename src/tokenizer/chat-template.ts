// Chat templates: the Jinja template a model ships (tokenizer_config.json's `chat_template`, a
// string or the named-list form; `chat_template.jinja` beside it; GGUF's tokenizer.chat_template;
// or a file given with --chat-template), rendered by @huggingface/jinja, the engine transformers.js
// uses, with the variables transformers passes: messages, bos_token, eos_token,
// add_generation_prompt. The rendered text carries its own special tokens, so it is tokenized
// without adding BOS again, as transformers' apply_chat_template does. A template is one kind of
// ChatFormat; the families that build their prompts in code (family-chat.ts) are the other.
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { Template } from "@huggingface/jinja";
import { ModelFormatError, UsageError } from "../errors.ts";
import type { TextTokenizer } from "./text-tokenizer.ts";

export interface ChatMessage {
  readonly role: string;
  readonly content: string;
}

export interface ChatTemplateOptions {
  /** End with the opening of an assistant turn, so the model writes the reply (default true). */
  readonly addGenerationPrompt?: boolean;
}

/** How a conversation becomes a prompt, and what ends the reply to it. */
export interface ChatFormat {
  /** Where the format came from, for errors and --verbose. */
  readonly origin: string;
  /** The prompt text of a conversation, special tokens included as text. */
  render(messages: readonly ChatMessage[], tokenizer: TextTokenizer, o?: ChatTemplateOptions): string;
  /** The prompt's token ids. */
  encode(messages: readonly ChatMessage[], tokenizer: TextTokenizer, o?: ChatTemplateOptions): number[];
  /** Ids that end the reply besides the model's eos ids (ChatGLM3's <|user|>, InternLM2's <|im_end|>). */
  stopIds(tokenizer: TextTokenizer): number[];
  /** Texts that end it (Qwen's raw format stops at "Human:"). */
  readonly stopTexts: readonly string[];
}

const NO_TEMPLATE_HINT = "pass a Jinja chat template with --chat-template FILE (chat_template option), or use run/completions with a plain prompt";

export class ChatTemplate implements ChatFormat {
  readonly #template: Template;
  readonly stopTexts: readonly string[] = [];

  constructor(
    readonly source: string,
    /** Where the template came from, for errors. */
    readonly origin: string,
    /** Tokens that end a turn in this template, by their text (the family's, where it has them). */
    readonly stopTokens: readonly string[] = [],
  ) {
    try {
      this.#template = new Template(source);
    } catch (e) {
      throw new ModelFormatError(`the chat template of ${origin} does not parse: ${(e as Error).message}`, NO_TEMPLATE_HINT);
    }
  }

  /** The prompt text of a conversation, special tokens included as text. */
  render(messages: readonly ChatMessage[], tokenizer: TextTokenizer, o: ChatTemplateOptions = {}): string {
    checkMessages(messages);
    const token = (id: number | undefined) => (id === undefined ? "" : (tokenizer.idToToken(id) ?? ""));
    try {
      return this.#template.render({
        messages: messages.map((m) => ({ role: m.role, content: m.content })),
        bos_token: token(tokenizer.bosId),
        eos_token: token(tokenizer.eosIds[0]),
        add_generation_prompt: o.addGenerationPrompt ?? true,
      });
    } catch (e) {
      // Templates raise on conversations they do not accept (roles that must alternate).
      throw new UsageError(`the chat template of ${this.origin} refused the conversation: ${(e as Error).message}`, "check the roles and order of the messages");
    }
  }

  /** The token ids of a conversation: rendered, then tokenized without a second BOS. */
  encode(messages: readonly ChatMessage[], tokenizer: TextTokenizer, o: ChatTemplateOptions = {}): number[] {
    return tokenizer.encode(this.render(messages, tokenizer, o), { addBos: false });
  }

  stopIds(tokenizer: TextTokenizer): number[] {
    return this.stopTokens.flatMap((t) => {
      const id = tokenizer.tokenToId(t);
      return id === undefined ? [] : [id];
    });
  }
}

/** Throws UsageError unless `messages` is a non-empty list of { role, content } strings. */
export function checkMessages(messages: readonly ChatMessage[]): void {
  if (!Array.isArray(messages) || messages.length === 0) throw new UsageError("a chat needs at least one message", "pass [{ role: \"user\", content: \"...\" }]");
  messages.forEach((m, i) => {
    if (m === null || typeof m !== "object" || typeof m.role !== "string" || typeof m.content !== "string") {
      throw new UsageError(`message ${i} must be an object with a string role and a string content`, "pass [{ role: \"user\", content: \"...\" }]");
    }
  });
}

/** The template `tokenizer_config.json` names: a string, or the "default" of the named-list form. */
function fromTokenizerConfig(value: unknown, path: string): string | null {
  if (value === undefined || value === null) return null;
  if (typeof value === "string") return value;
  if (Array.isArray(value)) {
    const named = value.find((t) => t && typeof t === "object" && (t as { name?: unknown }).name === "default") ?? value[0];
    const template = (named as { template?: unknown } | undefined)?.template;
    if (typeof template === "string") return template;
  }
  throw new ModelFormatError(`"${path}": chat_template must be a string or a list of { name, template }`, "fix tokenizer_config.json, or pass --chat-template FILE");
}

/** The chat template of a Hugging Face model folder, or null when it ships none. */
export function loadChatTemplate(dir: string): ChatTemplate | null {
  const jinja = join(dir, "chat_template.jinja");
  if (existsSync(jinja)) return new ChatTemplate(readFileSync(jinja, "utf8"), `"${jinja}"`);
  const configPath = join(dir, "tokenizer_config.json");
  if (!existsSync(configPath)) return null;
  let config: { chat_template?: unknown };
  try {
    config = JSON.parse(readFileSync(configPath, "utf8"));
  } catch (e) {
    throw new ModelFormatError(`"${configPath}" is not readable JSON: ${(e as Error).message}`, "download the file again");
  }
  const source = fromTokenizerConfig(config.chat_template, configPath);
  return source === null ? null : new ChatTemplate(source, `"${configPath}"`);
}

/** A template from a file (--chat-template). */
export function chatTemplateFromFile(path: string): ChatTemplate {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    throw new UsageError(`cannot read the chat template "${path}": ${(e as Error).message}`, "pass a readable Jinja file to --chat-template");
  }
  return new ChatTemplate(text, `"${path}"`);
}

/** The error for a model without a template. */
export function noChatTemplate(model: string): UsageError {
  return new UsageError(`${model} has no chat template (none in tokenizer_config.json, chat_template.jinja or the GGUF metadata)`, NO_TEMPLATE_HINT);
}
