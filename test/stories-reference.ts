// llama2.c's own reference for stories260K, read in place from ../shared: the greedy text its
// test expects, and the ids and logits its unmodified run.c produced.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { SHARED } from "./paths.ts";

/** The value of `name = b'...'` in a Python file: a bytes literal, ASCII with backslash escapes. */
export function pythonBytesLiteral(source: string, name: string): string {
  const match = source.match(new RegExp(`^${name} = b'((?:[^'\\\\\\n]|\\\\.)*)'$`, "m"));
  if (!match) throw new Error(`no bytes literal ${name} found`);
  const escapes: Record<string, string> = { n: "\n", t: "\t", r: "\r", "\\": "\\", "'": "'", '"': '"' };
  return match[1]!.replace(/\\(x[0-9a-fA-F]{2}|.)/g, (_, e: string) => {
    if (e.startsWith("x")) return String.fromCharCode(parseInt(e.slice(1), 16));
    if (!(e in escapes)) throw new Error(`unhandled escape \\${e} in ${name}`);
    return escapes[e]!;
  });
}

/**
 * llama2.c's test_all.py `expected_stdout`: run.c's greedy 200 steps from <s>, with the final
 * "\n" run.c prints stripped by the test (stdout[:-1]).
 */
export function storiesExpectedText(): string {
  return pythonBytesLiteral(readFileSync(join(SHARED, "models/stories260K/llama2c_test_all.py"), "utf8"), "expected_stdout");
}

export interface StoriesRef {
  prompt_ids: number[];
  /** Full 512-way logits at positions 0..3 of the greedy run. */
  logits: number[][];
  sequence_after_bos_prompt_then_greedy: number[];
}

export function storiesRef(): StoriesRef {
  return JSON.parse(readFileSync(join(SHARED, "refs/stories260K/ref_bos_200.json"), "utf8"));
}
