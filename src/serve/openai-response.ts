// Response bodies in OpenAI's shapes: whole completions, their server-sent-event chunks, usage and
// both logprobs formats (chat's list of token entries, legacy completions' parallel arrays).
import type { FinishReason, GenerationChunk, GenerationResult, TokenLogprob } from "../engine/job.ts";

export type Kind = "chat" | "completion";

export interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
  prompt_tokens_details: { cached_tokens: number };
}

/** One choice's place in the response: `index` in OpenAI's numbering, `input` its prompt. */
export interface ChoiceSlot {
  readonly index: number;
  readonly input: number;
}

/** Prompt tokens count once per input (not once per choice), as OpenAI and vLLM count them. */
export function usageOf(slots: readonly ChoiceSlot[], results: readonly (GenerationResult | null)[]): Usage {
  const prompt = new Map<number, number>();
  const cached = new Map<number, number>();
  let completion = 0;
  slots.forEach((s, i) => {
    const r = results[i];
    if (!r) return;
    prompt.set(s.input, r.promptTokens.length);
    cached.set(s.input, Math.max(cached.get(s.input) ?? 0, r.cachedTokens));
    completion += r.tokens.length;
  });
  const p = [...prompt.values()].reduce((a, b) => a + b, 0);
  return {
    prompt_tokens: p,
    completion_tokens: completion,
    total_tokens: p + completion,
    prompt_tokens_details: { cached_tokens: [...cached.values()].reduce((a, b) => a + b, 0) },
  };
}

/** OpenAI knows "stop" and "length"; a cancelled request never reaches a client. */
export function finishReasonOf(r: FinishReason): "stop" | "length" {
  return r === "length" ? "length" : "stop";
}

const bytesOf = (s: string) => [...new TextEncoder().encode(s)];

/** Chat's logprobs entries for the chunks of one choice. */
export function chatLogprobs(chunks: readonly GenerationChunk[]): { content: unknown[] } {
  return {
    content: chunks
      .filter((c): c is GenerationChunk & { logprob: TokenLogprob } => c.logprob !== undefined)
      .map((c) => ({
        token: c.logprob.token,
        logprob: c.logprob.logprob,
        bytes: bytesOf(c.logprob.token),
        top_logprobs: c.logprob.top.map((t) => ({ token: t.token, logprob: t.logprob, bytes: bytesOf(t.token) })),
      })),
  };
}

/** Legacy completions' logprobs: parallel arrays, text offsets counted from `offset`. */
export function completionLogprobs(chunks: readonly GenerationChunk[], offset = 0): Record<string, unknown[]> {
  const tokens: string[] = [];
  const tokenLogprobs: number[] = [];
  const top: Record<string, number>[] = [];
  const textOffset: number[] = [];
  let at = offset;
  for (const c of chunks) {
    if (c.logprob === undefined) continue;
    tokens.push(c.logprob.token);
    tokenLogprobs.push(c.logprob.logprob);
    top.push(Object.fromEntries(c.logprob.top.map((t) => [t.token, t.logprob])));
    textOffset.push(at);
    at += c.logprob.token.length;
  }
  return { tokens, token_logprobs: tokenLogprobs, top_logprobs: top, text_offset: textOffset };
}

export interface ResponseHeader {
  readonly id: string;
  readonly created: number;
  readonly model: string;
}

/** The whole (non-streaming) response. */
export function completionBody(
  kind: Kind,
  h: ResponseHeader,
  slots: readonly ChoiceSlot[],
  results: readonly GenerationResult[],
  chunks: readonly (readonly GenerationChunk[])[],
  logprobs: boolean,
): unknown {
  const choices = slots.map((s, i) => {
    const r = results[i]!;
    const finish_reason = finishReasonOf(r.finishReason);
    if (kind === "chat") {
      return { index: s.index, message: { role: "assistant", content: r.text }, logprobs: logprobs ? chatLogprobs(chunks[i]!) : null, finish_reason };
    }
    return { index: s.index, text: r.text, logprobs: logprobs ? completionLogprobs(chunks[i]!) : null, finish_reason };
  });
  return {
    id: h.id,
    object: kind === "chat" ? "chat.completion" : "text_completion",
    created: h.created,
    model: h.model,
    choices,
    usage: usageOf(slots, results),
  };
}

/** One server-sent event's JSON for a streaming chunk. */
export function streamChunk(kind: Kind, h: ResponseHeader, choices: unknown[], usage?: Usage | null): unknown {
  return {
    id: h.id,
    object: kind === "chat" ? "chat.completion.chunk" : "text_completion",
    created: h.created,
    model: h.model,
    choices,
    ...(usage !== undefined ? { usage } : {}),
  };
}

/** A streamed choice's delta: chat's `delta` or a completion's `text`. */
export function streamChoice(kind: Kind, index: number, text: string, finish: "stop" | "length" | null, logprob: unknown, first = false): unknown {
  if (kind === "chat") {
    const delta = first ? { role: "assistant", content: text } : finish !== null && text === "" ? {} : { content: text };
    return { index, delta, logprobs: logprob, finish_reason: finish };
  }
  return { index, text, logprobs: logprob, finish_reason: finish };
}

export const sse = (data: unknown) => `data: ${typeof data === "string" ? data : JSON.stringify(data)}\n\n`;
