// The checks every reader of untrusted input shares (config.json, safetensors and GGUF headers,
// tokenizer files, flags): counts, finite numbers, token ids, table lookups that ignore inherited
// properties, and how a value from the input is shown in an error. Each check either returns the
// value or calls the reader's own `fail`, so the message names the reader's file and the hint is
// the reader's; the wording of the problem is the same everywhere.

/** Throws the reader's error for one problem ("num_hidden_layers must be ..."). */
export type Fail = (problem: string) => never;

/** Longest name or value quoted into a message; a binary "tensor name" must not flood a terminal. */
const QUOTE_LIMIT = 80;

/**
 * `s` with every character a terminal could act on made visible: C0/C1 controls, DEL, the
 * Unicode line and paragraph separators, bidirectional overrides and lone surrogates become
 * \xNN / \uNNNN escapes, so an ESC sequence, NUL or an OSC 52 clipboard write from an input
 * file is printed, never executed. Backslashes are doubled so an escape cannot be faked.
 */
export function printable(s: string): string {
  return s.replace(/[\\\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g, (c) => {
    if (c === "\\") return "\\\\";
    const code = c.charCodeAt(0);
    return code < 0x100 ? `\\x${code.toString(16).padStart(2, "0")}` : `\\u${code.toString(16).padStart(4, "0")}`;
  });
}

/** `s` cut to `max` characters, saying how much was left out (never splitting a surrogate pair). */
export function truncate(s: string, max = QUOTE_LIMIT): string {
  if (s.length <= max) return s;
  let cut = max;
  if (/[\ud800-\udbff]/.test(s[cut - 1]!)) cut--;
  return `${s.slice(0, cut)}… (${s.length} characters)`;
}

/** A name from the input, quoted for a message: "model.norm.weight", escaped and cut short. */
export function quote(s: string, max = QUOTE_LIMIT): string {
  return `"${truncate(printable(s), max)}"`;
}

/**
 * A value from the input as a message shows it: strings quoted (so "32" and 32 differ), numbers
 * and booleans as they are, arrays and objects summarized, everything bounded in length.
 */
export function show(v: unknown, max = QUOTE_LIMIT): string {
  if (typeof v === "string") return quote(v, max);
  if (typeof v === "number" || typeof v === "boolean" || typeof v === "bigint") return String(v);
  if (v === null || v === undefined) return String(v);
  if (Array.isArray(v) || ArrayBuffer.isView(v)) {
    const n = (v as ArrayLike<unknown>).length;
    return `an array of ${n} element${n === 1 ? "" : "s"}`;
  }
  if (typeof v === "object") {
    let json: string;
    try {
      json = JSON.stringify(v) ?? "an object";
    } catch {
      json = "an object";
    }
    return truncate(printable(json), max);
  }
  return typeof v;
}

/** `table[key]` for the table's own entries only: "toString" or "__proto__" is not a model type. */
export function own<T>(table: Readonly<Record<string, T>>, key: unknown): T | undefined {
  return typeof key === "string" && Object.hasOwn(table, key) ? table[key] : undefined;
}

export interface IntRange {
  readonly min?: number;
  readonly max?: number;
}

/** An integer in [min, max] (default: non-negative and safe). */
export function checkInt(v: unknown, what: string, fail: Fail, range: IntRange = {}): number {
  const min = range.min ?? 0;
  const max = range.max ?? Number.MAX_SAFE_INTEGER;
  if (typeof v !== "number" || !Number.isSafeInteger(v) || v < min || v > max) {
    const want = max === Number.MAX_SAFE_INTEGER ? (min === 1 ? "a positive integer" : min === 0 ? "a non-negative integer" : `an integer of at least ${min}`) : `an integer in [${min}, ${max}]`;
    fail(`${what} must be ${want}, got ${show(v)}`);
  }
  return v as number;
}

export interface NumberRange {
  /** Smallest allowed value (inclusive). */
  readonly min?: number;
  /** The value must be strictly above this. */
  readonly above?: number;
  readonly max?: number;
}

/** A finite number in the range: Infinity (JSON's 1e400) and NaN (GGUF floats) are never numbers here. */
export function checkFinite(v: unknown, what: string, fail: Fail, range: NumberRange = {}): number {
  const ok =
    typeof v === "number" &&
    Number.isFinite(v) &&
    (range.min === undefined || v >= range.min) &&
    (range.above === undefined || v > range.above) &&
    (range.max === undefined || v <= range.max);
  if (!ok) {
    const parts = [
      range.above !== undefined ? (range.above === 0 ? "positive" : `above ${range.above}`) : range.min !== undefined ? (range.min === 0 ? "non-negative" : `at least ${range.min}`) : "",
      range.max !== undefined ? `at most ${range.max}` : "",
    ].filter((p) => p !== "");
    fail(`${what} must be a finite${parts.length > 0 ? " " : ""}${parts.join(", ")} number, got ${show(v)}`);
  }
  return v as number;
}

/** A token id of a vocabulary of `vocab` ids. */
export function checkId(v: unknown, what: string, vocab: number, fail: Fail): number {
  if (typeof v !== "number" || !Number.isSafeInteger(v) || v < 0 || v >= vocab) {
    fail(`${what} must be a token id below the vocabulary size ${vocab}, got ${show(v)}`);
  }
  return v as number;
}

/**
 * A count read from a file, before anything is sized from it: each of the `n` items takes at
 * least `minBytes` of the `available` bytes left, so a larger count is corruption, not a reason
 * to allocate.
 */
export function checkCount(n: number, what: string, minBytes: number, available: number, fail: Fail): number {
  if (!Number.isSafeInteger(n) || n < 0 || n * minBytes > available) {
    fail(`${what} is ${show(n)}, more than the ${available} bytes left can hold (at least ${minBytes} byte${minBytes === 1 ? "" : "s"} each)`);
  }
  return n;
}
