// Where `airllm run` gets its prompt (-p, -f, standard input) and the checks that keep a prompt
// from costing more than the context can use: a text is bounded in bytes before it is read in
// full or tokenized (each token covers at most the longest vocabulary piece, so a text of more
// bytes than context × that is refused unread: a 10 MB file costs nothing, not gigabytes of
// tokenizer state), and the encoded prompt must fit the context before any pass runs.
import { closeSync, openSync, statSync } from "node:fs";
import { errnoCode, IoError, ModelFormatError, UsageError } from "../errors.ts";
import { notAFile, pathKind } from "../formats/input-files.ts";
import type { TextTokenizer } from "../tokenizer/text-tokenizer.ts";
import { formatBytes } from "../util/size.ts";
import { quote } from "../util/validate.ts";
import { readCapped, requireOpen } from "./std-streams.ts";

/**
 * Normalizers may shrink a text before it is split (NFKC maps a 3-byte fullwidth letter to one
 * byte); this much slack keeps the bound from refusing a text that would fit.
 */
const NORMALIZATION_SLACK = 4;

/** The most bytes a prompt of `room` tokens can have. */
function promptByteLimit(tokenizer: TextTokenizer, room: number): number {
  return room * tokenizer.maxTokenBytes * NORMALIZATION_SLACK;
}

function tooLong(bytes: number | string, limit: number, room: number): UsageError {
  return new UsageError(
    `the prompt has ${typeof bytes === "number" ? formatBytes(bytes) : bytes}, more than a context of ${room} tokens can hold (at most ${formatBytes(limit)} of text for this vocabulary)`,
    "shorten the prompt, or raise --ctx up to the model's max_position_embeddings",
  );
}

/** The prompt text: `text` (-p), else the file (-f), else standard input ("" from a terminal). */
export function readPromptText(source: { readonly text?: string; readonly file?: string }, tokenizer: TextTokenizer, room: number): string {
  const limit = promptByteLimit(tokenizer, room);
  if (source.text !== undefined) {
    const bytes = Buffer.byteLength(source.text, "utf8");
    if (bytes > limit) throw tooLong(bytes, limit, room);
    return source.text;
  }
  if (source.file !== undefined) return readPromptFile(source.file, limit, room);
  requireOpen(0);
  if (process.stdin.isTTY) return "";
  return readCapped(0, limit, () => tooLong(`more than ${formatBytes(limit)}`, limit, room), "standard input");
}

function readPromptFile(path: string, limit: number, room: number): string {
  const kind = pathKind(path);
  if (kind === "missing" || kind === "broken-link" || kind === "dir") {
    throw new UsageError(`cannot read the prompt file: ${notAFile(path, kind)}`, "pass -f with a text file, or the prompt itself with -p");
  }
  // A regular file is measured first; a FIFO or /dev/stdin is read up to the bound.
  if (kind === "file" && statSync(path).size > limit) throw tooLong(statSync(path).size, limit, room);
  let fd: number;
  try {
    fd = openSync(path, "r");
  } catch (e) {
    if (errnoCode(e) === undefined) throw e;
    throw new IoError(`cannot read the prompt file ${quote(path, 200)}: ${(e as Error).message}`, "check the file's permissions");
  }
  try {
    return readCapped(fd, limit, () => tooLong(`more than ${formatBytes(limit)}`, limit, room), `the file ${quote(path, 200)}`);
  } finally {
    closeSync(fd);
  }
}

/** Refuses a prompt of `n` tokens that leaves no room for a new token in a context of `room`. */
export function checkPromptFits(n: number, room: number, fromFlag: boolean): void {
  if (n + 1 <= room) return;
  throw new UsageError(
    `the prompt is ${n} tokens, and a context of ${room} (${fromFlag ? "--ctx" : "the model's max_position_embeddings"}) holds at most ${room - 1} of them with room for one new token`,
    fromFlag ? "shorten the prompt or raise --ctx" : "shorten the prompt",
  );
}

/**
 * Refuses prompt ids the model has no embedding row for. From --ids it is the user's list; from
 * the tokenizer it means tokenizer and weights come from different models, which is what to say.
 */
export function checkIdsFit(ids: readonly number[], modelVocab: number, configName: string, fromTokenizer: boolean): void {
  const outside = ids.find((id) => id >= modelVocab);
  if (outside === undefined) return;
  if (!fromTokenizer) throw new UsageError(`--ids: ${outside} is not a token id of this model (its vocabulary has ${modelVocab})`, `token ids are below ${modelVocab}`);
  throw new ModelFormatError(
    `the tokenizer encodes the prompt to token id ${outside}, but the model has ${modelVocab} ids (vocab_size in ${configName})`,
    "the tokenizer and the weights come from different models: use the tokenizer the model was trained with",
  );
}
