// Errors as the OpenAI API returns them: an HTTP status and {"error": {message, type, param, code}}.
import { AirLLMError, ContextLengthError } from "../errors.ts";

export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly type = "invalid_request_error",
    readonly param: string | null = null,
    readonly code: string | null = null,
  ) {
    super(message);
  }

  response(): Response {
    return Response.json({ error: { message: this.message, type: this.type, param: this.param, code: this.code } }, { status: this.status });
  }
}

/** A field of the request body with a bad value: 400 naming it. */
export function badField(param: string, what: string): HttpError {
  return new HttpError(400, `${param}: ${what}`, "invalid_request_error", param);
}

/** The HTTP error for what generation threw: a request the model cannot serve, or a server fault. */
export function generationError(e: unknown, inputParam: "messages" | "prompt" = "messages"): HttpError {
  if (e instanceof HttpError) return e;
  if (e instanceof ContextLengthError) return new HttpError(413, e.message + (e.hint ? ` (${e.hint})` : ""), "invalid_request_error", inputParam, "context_length_exceeded");
  if (e instanceof AirLLMError && e.name === "UsageError") return new HttpError(400, e.message + (e.hint ? ` (${e.hint})` : ""));
  return new HttpError(500, e instanceof Error ? e.message : String(e), "server_error");
}
