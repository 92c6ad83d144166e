// The request bodies of /v1/chat/completions and /v1/completions, checked field by field: a bad
// value is a 400 that names the field, and what is valid becomes generation options.
import type { SpeculationMode } from "../engine/speculative/drafter.ts";
import type { ChatMessage } from "../tokenizer/chat-template.ts";
import type { WorkerGenerateOptions } from "../worker/protocol.ts";
import { badField } from "./http-error.ts";

export type Body = Record<string, unknown>;

export interface ParsedRequest {
  readonly kind: "chat" | "completion";
  readonly model: string | null;
  /** One input per choice group: a conversation, or each prompt of a completion. */
  readonly inputs: readonly ({ readonly messages: ChatMessage[] } | { readonly prompt: string | number[] })[];
  /** Choices per input. */
  readonly n: number;
  readonly stream: boolean;
  readonly includeUsage: boolean;
  readonly options: WorkerGenerateOptions;
  /** Top log-probabilities wanted per token, or null for none. */
  readonly logprobs: number | null;
  readonly seed: number | null;
}

function num(b: Body, key: string, check: (v: number) => boolean, what: string): number | undefined {
  const v = b[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "number" || !Number.isFinite(v) || !check(v)) throw badField(key, `must be ${what}, got ${JSON.stringify(v)}`);
  return v;
}

const int = (b: Body, key: string, min: number, max = Number.MAX_SAFE_INTEGER) =>
  num(b, key, (v) => Number.isInteger(v) && v >= min && v <= max, `an integer from ${min}${max < Number.MAX_SAFE_INTEGER ? ` to ${max}` : ""}`);

function bool(b: Body, key: string): boolean | undefined {
  const v = b[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "boolean") throw badField(key, `must be true or false, got ${JSON.stringify(v)}`);
  return v;
}

function stops(b: Body): string[] | undefined {
  const v = b.stop;
  if (v === undefined || v === null) return undefined;
  if (typeof v === "string") return [v];
  if (Array.isArray(v) && v.every((s) => typeof s === "string")) return v as string[];
  throw badField("stop", "must be a string or a list of strings");
}

function speculationOf(b: Body): SpeculationMode | undefined {
  const v = b.speculate;
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "string" || !SPECULATION_MODES.includes(v as SpeculationMode)) throw badField("speculate", `must be one of ${SPECULATION_MODES.join(", ")}, got ${JSON.stringify(v)}`);
  return v as SpeculationMode;
}

function messagesOf(b: Body): ChatMessage[] {
  const v = b.messages;
  if (!Array.isArray(v) || v.length === 0) throw badField("messages", "must be a non-empty list of { role, content }");
  return v.map((m, i) => {
    if (m === null || typeof m !== "object") throw badField(`messages[${i}]`, "must be an object with role and content");
    const { role, content } = m as Record<string, unknown>;
    if (typeof role !== "string") throw badField(`messages[${i}].role`, "must be a string");
    // Content is text, or a list of parts of which the text parts are joined.
    if (typeof content === "string") return { role, content };
    if (Array.isArray(content) && content.every((p) => p && typeof p === "object" && (p as Body).type === "text" && typeof (p as Body).text === "string")) {
      return { role, content: content.map((p) => (p as Body).text as string).join("") };
    }
    throw badField(`messages[${i}].content`, "must be a string or a list of { type: \"text\", text }");
  });
}

function promptsOf(b: Body): (string | number[])[] {
  const v = b.prompt;
  const ids = (a: unknown[]) => a.every((x) => Number.isSafeInteger(x) && (x as number) >= 0);
  if (typeof v === "string") return [v];
  if (Array.isArray(v) && v.length > 0) {
    if (v.every((p) => typeof p === "string")) return v as string[];
    if (ids(v)) return [v as number[]];
    if (v.every((p) => Array.isArray(p) && p.length > 0 && ids(p))) return v as number[][];
  }
  throw badField("prompt", "must be a string, a list of strings, a list of token ids or a list of such lists");
}

/** Server-wide defaults a request may override. */
export interface RequestDefaults {
  readonly speculate?: SpeculationMode;
  readonly draftTokens?: number;
}

const SPECULATION_MODES: readonly SpeculationMode[] = ["off", "ngram", "draft", "tree"];

/** The checked request; `context` bounds max_tokens' default for chat. */
export function parseRequest(kind: "chat" | "completion", body: unknown, context: number, defaults: RequestDefaults = {}): ParsedRequest {
  if (body === null || typeof body !== "object" || Array.isArray(body)) throw badField("body", "must be a JSON object");
  const b = body as Body;
  const model = b.model;
  if (model !== undefined && typeof model !== "string") throw badField("model", "must be a string");
  const inputs = kind === "chat" ? [{ messages: messagesOf(b) }] : promptsOf(b).map((prompt) => ({ prompt }));
  const maxTokens = int(b, kind === "chat" && b.max_completion_tokens !== undefined ? "max_completion_tokens" : "max_tokens", 0);
  const streamOptions = b.stream_options;
  if (streamOptions !== undefined && streamOptions !== null && (typeof streamOptions !== "object" || Array.isArray(streamOptions))) {
    throw badField("stream_options", "must be an object");
  }
  let logprobs: number | null = null;
  if (kind === "chat") {
    if (bool(b, "logprobs")) logprobs = int(b, "top_logprobs", 0, 20) ?? 0;
  } else {
    const lp = int(b, "logprobs", 0, 20);
    if (lp !== undefined) logprobs = lp;
  }
  const topK = num(b, "top_k", (v) => Number.isInteger(v) && v >= -1, "an integer ≥ -1 (-1 or 0: off)");
  const options: WorkerGenerateOptions = {
    // OpenAI's default for legacy completions is 16 tokens; a chat goes on until the context is full.
    maxNewTokens: maxTokens ?? (kind === "chat" ? context : 16),
    temperature: num(b, "temperature", (v) => v >= 0 && v <= 2, "a number from 0 to 2") ?? 1,
    topP: num(b, "top_p", (v) => v > 0 && v <= 1, "a number in (0, 1]"),
    topK: topK === undefined || topK <= 0 ? undefined : topK,
    minP: num(b, "min_p", (v) => v >= 0 && v < 1, "a number in [0, 1)"),
    repetitionPenalty: num(b, "repetition_penalty", (v) => v > 0, "a positive number"),
    frequencyPenalty: num(b, "frequency_penalty", (v) => v >= -2 && v <= 2, "a number from -2 to 2"),
    presencePenalty: num(b, "presence_penalty", (v) => v >= -2 && v <= 2, "a number from -2 to 2"),
    stop: stops(b),
    ...(logprobs !== null ? { logprobs } : {}),
    // Extensions (as vLLM and llama.cpp add their own): speculative decoding per request.
    speculate: speculationOf(b) ?? defaults.speculate,
    draftTokens: int(b, "draft_tokens", 1, 64) ?? defaults.draftTokens,
  };
  return {
    kind,
    model: (model as string | undefined) ?? null,
    inputs,
    n: int(b, "n", 1, 16) ?? 1,
    stream: bool(b, "stream") ?? false,
    includeUsage: streamOptions ? bool(streamOptions as Body, "include_usage") ?? false : false,
    options,
    logprobs,
    seed: int(b, "seed", 0, 2 ** 32 - 1) ?? null,
  };
}
