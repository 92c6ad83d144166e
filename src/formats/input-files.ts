// What is at a model path before anything reads it: a regular file, a folder, nothing, a symbolic
// link to nothing, or something else (a FIFO blocks a reader forever, /dev/zero never ends). Every
// model input (config, tokenizer, weights, index) is opened through these checks, so each of those
// cases is one clear error naming the path instead of a hang or a misleading "not found".
import { lstatSync, readFileSync, readlinkSync, statSync } from "node:fs";
import { ModelFormatError } from "../errors.ts";
import { quote, show } from "../util/validate.ts";

export type PathKind = "missing" | "file" | "dir" | "broken-link" | "other";

/** What `path` is, following symbolic links. */
export function pathKind(path: string): PathKind {
  let st;
  try {
    st = statSync(path);
  } catch {
    try {
      return lstatSync(path).isSymbolicLink() ? "broken-link" : "missing";
    } catch {
      return "missing";
    }
  }
  return st.isFile() ? "file" : st.isDirectory() ? "dir" : "other";
}

/** Why `path` of kind `kind` is not a readable regular file, as a message fragment. */
export function notAFile(path: string, kind: PathKind): string {
  switch (kind) {
    case "missing":
      return `${quote(path, 200)} does not exist`;
    case "broken-link": {
      let target = "?";
      try {
        target = readlinkSync(path);
      } catch {
        // The link vanished between the two calls: the message still names it.
      }
      return `${quote(path, 200)} is a symbolic link to ${quote(target, 200)}, which does not exist`;
    }
    case "dir":
      return `${quote(path, 200)} is a folder, not a file`;
    default:
      return `${quote(path, 200)} is not a regular file (a FIFO, socket or device cannot be a model file)`;
  }
}

/**
 * Throws unless `path` is a regular file. `optional`: a missing file returns false instead (a
 * broken link still throws: it is a download that went wrong, not an absent file).
 */
export function requireFile(path: string, hint: string, optional = false): boolean {
  const kind = pathKind(path);
  if (kind === "file") return true;
  if (kind === "missing" && optional) return false;
  throw new ModelFormatError(notAFile(path, kind), hint);
}

/**
 * The parsed JSON of the regular file `path`, any JSON value. `kind` names what the file should
 * be in the message ("a valid shard index"); by default the message says it is not valid JSON.
 */
function readJsonFile(path: string, hint: string, kind?: string): unknown {
  requireFile(path, hint);
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    throw new ModelFormatError(`${quote(path, 200)} cannot be read: ${(e as Error).message}`, "Check the file's permissions.");
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    const problem = `not valid JSON: ${(e as Error).message}`;
    throw new ModelFormatError(`${quote(path, 200)} is ${kind === undefined ? problem : `${kind}: ${problem}`}`, hint);
  }
}

/** The parsed JSON object of the regular file `path`. */
export function readJsonObject(path: string, hint: string, kind?: string): Record<string, unknown> {
  const raw = readJsonFile(path, hint, kind);
  if (raw === null || typeof raw !== "object" || Array.isArray(raw)) {
    const problem = `it holds ${show(raw)}, not a JSON object`;
    throw new ModelFormatError(`${quote(path, 200)} is ${kind === undefined ? "not a JSON object" : kind}: ${problem}`, hint);
  }
  return raw as Record<string, unknown>;
}
