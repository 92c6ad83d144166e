// Typed errors in the llm.c `cudaCheck` spirit: what failed, the values involved, and a hint.
// Library code throws these; only the CLI turns them into one line on stderr and an exit code.

export class AirLLMError extends Error {
  /** What the user can try; printed by the CLI after the message. */
  readonly hint: string | undefined;

  constructor(message: string, hint?: string) {
    super(message);
    this.name = "AirLLMError";
    this.hint = hint;
  }
}

/** The model files are missing, malformed or inconsistent (names the file and tensor). */
export class ModelFormatError extends AirLLMError {
  constructor(message: string, hint?: string) {
    super(message, hint);
    this.name = "ModelFormatError";
  }
}

/** A request the model or the options cannot serve (prompt longer than the context, bad flag). */
export class UsageError extends AirLLMError {
  constructor(message: string, hint?: string) {
    super(message, hint);
    this.name = "UsageError";
  }
}

/** A native call (libc, CUDA driver, the Zig library) failed. */
export class NativeError extends AirLLMError {
  constructor(message: string, hint?: string) {
    super(message, hint);
    this.name = "NativeError";
  }
}

/** A prompt (with what it asks to generate) longer than the context the model was loaded with. */
export class ContextLengthError extends UsageError {
  constructor(message: string, hint?: string) {
    super(message, hint);
    this.name = "ContextLengthError";
  }
}
/**
 * Reading or writing outside the model failed: a full disk, a closed stream, a missing folder, no
 * permission. The user's environment, not a bug: named with the path and the system's reason. A
 * kind of UsageError: where the output goes is part of what the user asked for.
 */
export class IoError extends UsageError {
  constructor(message: string, hint?: string) {
    super(message, hint);
    this.name = "IoError";
  }
}

/** The `code` of a failed system call (ENOSPC, EBADF, ...), or undefined for any other error. */
export function errnoCode(e: unknown): string | undefined {
  const code = (e as { code?: unknown } | null)?.code;
  return typeof code === "string" && /^E[A-Z0-9]+$/.test(code) ? code : undefined;
}
