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
