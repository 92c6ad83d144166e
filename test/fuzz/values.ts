// Hostile values the mutators draw from: names that try to act on a terminal or flood it, and
// JSON values of every wrong kind, including numbers JSON cannot carry exactly (1e400 parses as
// Infinity, 2^53 + 1 as 2^53).

export interface HostileName {
  readonly name: string;
  readonly what: string;
  /** Large enough that echoing or copying it around must be bounded. */
  readonly huge?: boolean;
}

export function hostileNames(): HostileName[] {
  return [
    { name: "\u001b[31mred\u001b[0m", what: "an ESC colour sequence" },
    { name: "\u001b[2J\u001b[Hcleared", what: "a screen-clear sequence" },
    { name: "\u001b]52;c;aGVsbG8=\u0007", what: "an OSC 52 clipboard write" },
    { name: "nul\u0000byte", what: "a NUL byte" },
    { name: "\u202eevil\u202c", what: "a bidi override" },
    { name: "line\nairllm: error: fake", what: "a newline and a fake error line" },
    { name: "\ud800lone", what: "a lone surrogate" },
    { name: "__proto__", what: "__proto__" },
    { name: "constructor", what: "constructor" },
    { name: Array.from({ length: 734_000 }, (_, i) => String.fromCharCode(1 + (i % 250))).join(""), what: "734 KB of binary", huge: true },
  ];
}

/** A JSON value that stands for a raw token in the serialized text (see jsonText). */
const RAW = "\u0000raw:";

export interface HostileValue {
  readonly value: unknown;
  readonly what: string;
}

export function hostileValues(): HostileValue[] {
  return [
    { value: null, what: "null" },
    { value: true, what: "true" },
    { value: "7", what: `"7"` },
    { value: "toString", what: `"toString"` },
    { value: "\u001b[2J", what: "an ESC string" },
    { value: -1, what: "-1" },
    { value: 0, what: "0" },
    { value: 1.5, what: "1.5" },
    { value: 1e9, what: "1e9" },
    { value: 2 ** 32 - 1, what: "2^32-1" },
    { value: 2 ** 53 - 1, what: "2^53-1" },
    { value: `${RAW}1e400`, what: "1e400 (Infinity)" },
    { value: `${RAW}-1e400`, what: "-1e400 (-Infinity)" },
    { value: `${RAW}9007199254740993`, what: "2^53+1" },
    { value: [], what: "[]" },
    { value: {}, what: "{}" },
    { value: [1, 2], what: "[1, 2]" },
  ];
}

/** JSON text of `v` with the RAW-marked strings written as the raw tokens they stand for. */
export function jsonText(v: unknown): string {
  return JSON.stringify(v, null, 1).replace(/"\\u0000raw:([^"]*)"/g, "$1");
}
