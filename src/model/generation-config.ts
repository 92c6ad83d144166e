// generation_config.json: the checkpoint's own stop tokens and sampling defaults. It often
// disagrees with config.json (stories260K stops on [2, 1], config.json says 2), and it is what
// transformers' generate() uses, so the engine should prefer it when present.

import { join } from "node:path";
import { ModelFormatError } from "../errors.ts";
import { readJsonObject, requireFile } from "../formats/input-files.ts";
import { quote, show } from "../util/validate.ts";

/** Only what the file states: a field the file leaves out stays undefined. */
export interface GenerationConfig {
  readonly bosTokenId?: number | null;
  /** eos_token_id as a list, whether the file holds one id or several. */
  readonly eosTokenIds?: readonly number[];
  readonly padTokenId?: number | null;
  readonly doSample?: boolean;
  readonly temperature?: number;
  readonly topK?: number;
  readonly topP?: number;
  readonly repetitionPenalty?: number;
  readonly maxLength?: number;
  readonly maxNewTokens?: number;
}

export const GENERATION_CONFIG_FILE = "generation_config.json";

/** Read `<dir>/generation_config.json`; null when the folder has none. */
export function loadGenerationConfig(dir: string): GenerationConfig | null {
  const path = join(dir, GENERATION_CONFIG_FILE);
  if (!requireFile(path, "Fix or delete generation_config.json.", true)) return null;
  return parseGenerationConfig(readJsonObject(path, "Fix or delete generation_config.json."), path);
}

/** Normalize a parsed generation_config.json object; `path` only names the source in errors. */
export function parseGenerationConfig(raw: Record<string, unknown>, path = GENERATION_CONFIG_FILE): GenerationConfig {
  // Own keys only: a "constructor" key must not read Object's.
  const g: Record<string, unknown> = Object.fromEntries(Object.entries(raw));
  Object.setPrototypeOf(g, null);
  const bad = (key: string, want: string): never => {
    throw new ModelFormatError(`${quote(path, 200)}: "${key}" must be ${want}, got ${show(g[key])}`, "Fix or delete generation_config.json.");
  };
  const isId = (v: unknown) => Number.isSafeInteger(v) && (v as number) >= 0;
  const out: Record<string, unknown> = {};

  const id = (key: string, field: string) => {
    if (!(key in g)) return;
    if (g[key] !== null && !isId(g[key])) bad(key, "a token id or null");
    out[field] = g[key];
  };
  const number = (key: string, field: string, ok: (v: number) => boolean, want: string) => {
    if (g[key] === undefined || g[key] === null) return;
    if (typeof g[key] !== "number" || !ok(g[key] as number)) bad(key, want);
    out[field] = g[key];
  };

  id("bos_token_id", "bosTokenId");
  id("pad_token_id", "padTokenId");
  if ("eos_token_id" in g) {
    const eos = g.eos_token_id;
    const list = eos === null ? [] : Array.isArray(eos) ? eos : [eos];
    if (!list.every(isId)) bad("eos_token_id", "a token id or a list of them");
    out.eosTokenIds = list;
  }
  if (g.do_sample !== undefined && g.do_sample !== null) {
    if (typeof g.do_sample !== "boolean") bad("do_sample", "true or false");
    out.doSample = g.do_sample;
  }
  number("temperature", "temperature", (v) => v >= 0 && Number.isFinite(v), "a finite non-negative number");
  number("top_k", "topK", (v) => Number.isSafeInteger(v) && v >= 0, "a non-negative integer");
  number("top_p", "topP", (v) => v > 0 && v <= 1, "a number in (0, 1]");
  number("repetition_penalty", "repetitionPenalty", (v) => v > 0 && Number.isFinite(v), "a finite positive number");
  number("max_length", "maxLength", (v) => Number.isSafeInteger(v) && v > 0, "a positive integer");
  number("max_new_tokens", "maxNewTokens", (v) => Number.isSafeInteger(v) && v > 0, "a positive integer");
  return out as GenerationConfig;
}
