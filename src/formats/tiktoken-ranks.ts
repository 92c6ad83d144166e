// A tiktoken rank file (Qwen's `qwen.tiktoken`): one "base64(token bytes) rank" pair per line. The
// rank is both the token's id and its merge priority (lower merges first). Special tokens are not
// in the file; the tokenizer code that names the file defines them.

import { readFileSync } from "node:fs";
import { ModelFormatError } from "../errors.ts";
import { requireFile } from "./input-files.ts";

export interface TiktokenRanks {
  readonly path: string;
  /** tokens[rank] = the token's bytes; ranks are dense from 0. */
  readonly tokens: readonly Uint8Array[];
}

const HINT = "Download the rank file (e.g. qwen.tiktoken) again.";

export function readTiktokenRanks(path: string): TiktokenRanks {
  // A FIFO or a directory under the name is refused, never read (a FIFO would block forever).
  requireFile(path, HINT);
  let text: string;
  try {
    text = readFileSync(path, "latin1");
  } catch (e) {
    throw new ModelFormatError(`cannot read "${path}": ${(e as Error).message}`, "Check that the rank file exists and is readable.");
  }
  const tokens: Uint8Array[] = [];
  let line = 0;
  for (const row of text.split("\n")) {
    line++;
    if (row === "") continue;
    const [b64, rankText, extra] = row.split(" ");
    const rank = Number(rankText);
    if (extra !== undefined || b64 === undefined || !/^[A-Za-z0-9+/]*={0,2}$/.test(b64) || !Number.isSafeInteger(rank) || rank < 0) {
      throw new ModelFormatError(`"${path}" line ${line} is not "base64 rank": ${JSON.stringify(row.slice(0, 80))}`, HINT);
    }
    if (tokens[rank] !== undefined) throw new ModelFormatError(`"${path}" line ${line}: rank ${rank} appears twice`, HINT);
    tokens[rank] = Buffer.from(b64, "base64");
  }
  if (tokens.length === 0) throw new ModelFormatError(`"${path}" holds no tokens`, HINT);
  for (let i = 0; i < tokens.length; i++) {
    if (tokens[i] === undefined) throw new ModelFormatError(`"${path}" has no token of rank ${i} (ranks must run from 0 without gaps)`, HINT);
  }
  return { path, tokens };
}
