// Flag values of every kind for every command that loads a model, each judged by what the flag
// means (a --top-p of 1.5 must be refused, a --max-host-cache of 0 is a choice), plus the flag
// misuses: unknown, given twice, conflicting, a value for a switch.
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { BASES, HF_FILES, modelFolder, type Expect, type Family } from "./case.ts";
import type { Rng } from "./rng.ts";

const VALUES = ["0", "1", "2", "-1", "-5", "1.5", "0.5", "NaN", "Infinity", "1e400", "1e9", "1e12", "2e15", "", " ", "garbage", "0x10", "1e3", "00", "4constructor", "toString", "5GiB", "512MiB", "64KiB", "\u001b[2J"];

/** Flags.number's reading: trimmed non-empty and finite. */
function num(v: string): number | null {
  const n = Number(v);
  return v.trim() === "" || !Number.isFinite(n) ? null : n;
}
const int = (v: string) => {
  const n = num(v);
  return n !== null && Number.isSafeInteger(n) ? n : null;
};
const UNITS: Record<string, number> = { "": 1, b: 1, kb: 1e3, mb: 1e6, gb: 1e9, tb: 1e12, kib: 1024, mib: 2 ** 20, gib: 2 ** 30, tib: 2 ** 40, k: 1024, m: 2 ** 20, g: 2 ** 30 };
/** A size as the README writes them: a number and a unit. */
function size(v: string): number | null {
  const m = /^\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*$/.exec(v);
  if (!m || !Object.hasOwn(UNITS, m[2]!.toLowerCase())) return null;
  const b = Math.floor(Number(m[1]) * UNITS[m[2]!.toLowerCase()]!);
  return Number.isSafeInteger(b) ? b : null;
}

type Rule = (v: string) => Expect;
const okIf = (ok: boolean): Expect => (ok ? "ok" : "error");

/** Flags every model-loading command takes, judged for a CPU run of stories260K (512 positions). */
const MODEL_RULES: Record<string, Rule> = {
  threads: (v) => { const n = int(v); return okIf(n !== null && n >= 1 && n <= 256); },
  prefetch: (v) => { const n = int(v); return okIf(n !== null && n >= 0 && n <= 64); },
  "max-memory": (v) => { const b = size(v); return b === null || b === 0 ? "error" : "either"; }, // a small budget is a clear "does not fit"
  "max-gpu-memory": (v) => { const b = size(v); return okIf(b !== null && b > 0); },
  "max-host-cache": (v) => okIf(size(v) !== null),
  "chunk-size": (v) => { const b = size(v); return okIf(b !== null && b > 0); },
  "expert-cache": (v) => okIf(size(v) !== null),
  "kv-dtype": (v) => okIf(["f16", "bf16", "f32"].includes(v)),
  "moe-streaming": (v) => okIf(["experts", "layers"].includes(v)),
  "expert-guess": (v) => okIf(["on", "off"].includes(v)),
  device: (v) => (v === "cuda" ? "either" : okIf(["cpu", "auto"].includes(v))),
};

const RUN_RULES: Record<string, Rule> = {
  ...MODEL_RULES,
  "max-tokens": (v) => { const n = int(v); return okIf(n !== null && n >= 0); },
  // The prompt is 5 tokens and needs one more position; the model has 512.
  ctx: (v) => { const n = int(v); return okIf(n !== null && n >= 6 && n <= 512); },
  temp: (v) => { const n = num(v); return okIf(n !== null && n >= 0); },
  "top-k": (v) => { const n = int(v); return okIf(n !== null && n >= 0); },
  "top-p": (v) => { const n = num(v); return okIf(n !== null && n > 0 && n <= 1); },
  "min-p": (v) => { const n = num(v); return okIf(n !== null && n >= 0 && n < 1); },
  "repeat-penalty": (v) => { const n = num(v); return okIf(n !== null && n > 0); },
  seed: (v) => okIf(int(v) !== null),
  stop: () => "ok",
};

const BENCH_RULES: Record<string, Rule> = {
  ...MODEL_RULES,
  "prompt-tokens": (v) => { const n = int(v); return okIf(n !== null && n >= 1 && n + 2 <= 512); },
  "decode-tokens": (v) => { const n = int(v); return okIf(n !== null && n >= 1 && n + 8 <= 512); },
};

interface FlagCase {
  readonly what: string;
  readonly expect: Expect;
  readonly hugeCount?: boolean;
  /** The arguments after the model, given the case folder. */
  readonly args: (dir: string) => string[];
  readonly command: "run" | "logits" | "bench" | "split" | "plan";
}

const isHuge = (v: string) => (num(v) ?? 0) >= 1e9 || (size(v) ?? 0) >= 2 ** 40;

function valueCase(rng: Rng): FlagCase {
  const command = rng.pick(["run", "run", "run", "bench", "logits"] as const);
  const rules = command === "run" ? RUN_RULES : command === "bench" ? BENCH_RULES : MODEL_RULES;
  const flag = rng.pick(Object.keys(rules));
  const own = { "kv-dtype": ["f16", "bf16", "f32", "f8"], device: ["cpu", "auto", "cuda", "gpu"], "moe-streaming": ["experts", "layers"], "expert-guess": ["on", "off"] }[flag] ?? [];
  const value = rng.pick([...VALUES, ...own, ...own]);
  const base: Record<string, string> =
    command === "run" ? { "--prompt": "Once upon a time", "--max-tokens": "4", "--device": "cpu" }
    : command === "bench" ? { "--prompt-tokens": "8", "--decode-tokens": "2", "--device": "cpu" }
    : { "--ids": "1,2,3", "--device": "cpu" };
  // The flag under test replaces the base's own setting of it; a long generation gets a short context.
  delete base[`--${flag}`];
  if (command === "run" && flag === "max-tokens" && (int(value) ?? 0) > 64) base["--ctx"] = "64";
  return {
    command,
    what: `${command} --${flag} ${JSON.stringify(value)}`,
    expect: rules[flag]!(value),
    hugeCount: isHuge(value),
    args: (dir) => [...Object.entries(base).flat(), ...(command === "logits" ? ["-o", join(dir, "l.f32")] : []), `--${flag}`, value],
  };
}

/** The misuses, one case each. */
const FIXED: FlagCase[] = [
  { command: "run", what: "an unknown option", expect: "error", args: () => ["-p", "x", "--bogus"] },
  { command: "run", what: "an unknown option with ESC in its name", expect: "error", args: () => ["-p", "x", "--\u001b[2Jx"] },
  { command: "run", what: "-n given twice", expect: "error", args: () => ["-p", "x", "-n", "2", "-n", "3"] },
  { command: "run", what: "--stop given twice (repeatable)", expect: "ok", args: () => ["-p", "Once", "-n", "4", "--stop", "a", "--stop", "b"] },
  { command: "run", what: "-p and --ids together", expect: "error", args: () => ["-p", "x", "--ids", "1"] },
  { command: "run", what: "-p and -f together", expect: "error", args: (d) => ["-p", "x", "-f", join(d, "p.txt")] },
  { command: "run", what: "--json with a value", expect: "error", args: () => ["-p", "x", "--json=yes"] },
  { command: "run", what: "-n without its value", expect: "error", args: () => ["-p", "x", "-n"] },
  { command: "run", what: "two models", expect: "error", args: () => ["-p", "x", "second-model"] },
  { command: "run", what: "--ids with a negative id", expect: "error", args: () => ["--ids", "1,-4"] },
  { command: "run", what: "--ids with an id past the vocabulary", expect: "error", args: () => ["--ids", "1,600"] },
  { command: "run", what: "--ids 1,403,407", expect: "ok", args: () => ["--ids", "1,403,407", "-n", "3"] },
  { command: "run", what: "--ids with 5000 ids", expect: "error", hugeCount: true, args: () => ["--ids", Array(5000).fill(1).join(",")] },
  { command: "run", what: "--ids empty", expect: "error", args: () => ["--ids", ""] },
  { command: "run", what: "-f with an empty path", expect: "error", args: () => ["-f", ""] },
  { command: "run", what: "-f a missing file", expect: "error", args: (d) => ["-f", join(d, "missing.txt")] },
  { command: "run", what: "--ctx 1e12", expect: "error", hugeCount: true, args: () => ["-p", "x", "--ctx", "1e12"] },
  { command: "run", what: "-n 1e15 (generation stops at the context)", expect: "ok", hugeCount: true, args: () => ["-p", "Once", "-n", "1e15", "--ctx", "32"] },
  { command: "run", what: "--prefetch -1 without a budget", expect: "error", args: () => ["-p", "x", "--prefetch", "-1"] },
  { command: "run", what: "--prefetch and --no-prefetch", expect: "error", args: () => ["-p", "x", "--prefetch", "2", "--no-prefetch"] },
  { command: "run", what: "--compression 4bit on a folder copy", expect: "ok", args: () => ["-p", "Once", "-n", "2", "--compression", "4bit"] },
  { command: "run", what: "--compression 3bit", expect: "error", args: () => ["-p", "x", "--compression", "3bit"] },
  { command: "bench", what: "--prompt-tokens 1e9", expect: "error", hugeCount: true, args: () => ["--prompt-tokens", "1e9"] },
  { command: "bench", what: "--prompt-tokens 0", expect: "error", args: () => ["--prompt-tokens", "0"] },
  { command: "bench", what: "--decode-tokens -1", expect: "error", args: () => ["--prompt-tokens", "8", "--decode-tokens", "-1"] },
  { command: "logits", what: "--ids and -p together", expect: "error", args: (d) => ["--ids", "1", "-p", "x", "-o", join(d, "l.f32")] },
  { command: "logits", what: "5000 ids on a 512-position model", expect: "error", hugeCount: true, args: (d) => ["--ids", Array(5000).fill(1).join(","), "-o", join(d, "l.f32")] },
  { command: "logits", what: "no --out", expect: "error", args: () => ["--ids", "1"] },
  { command: "logits", what: "-p text", expect: "ok", args: (d) => ["-p", "Once upon a time", "-o", join(d, "l.f32")] },
  { command: "split", what: "--out \"\"", expect: "error", args: () => ["--out", ""] },
  { command: "split", what: "--out a new folder", expect: "ok", args: (d) => ["--out", join(d, "split")] },
  { command: "split", what: "--compression 8bit", expect: "ok", args: (d) => ["--out", join(d, "split"), "--compression", "8bit"] },
  { command: "plan", what: "--ctx 1e12", expect: "error", hugeCount: true, args: () => ["--device", "cpu", "--ctx", "1e12"] },
  { command: "plan", what: "--max-memory garbage", expect: "error", args: () => ["--device", "cpu", "--max-memory", "garbage"] },
  { command: "plan", what: "--max-memory 64MiB", expect: "ok", args: () => ["--device", "cpu", "--max-memory", "64MiB"] },
];

export const flagFamily: Family = (rng) => {
  const c = rng.chance(0.35) ? rng.pick(FIXED) : valueCase(rng);
  return {
    what: c.what,
    expect: c.expect,
    hugeCount: c.hugeCount,
    build(dir) {
      // A copy of the folder: --compression and split write beside the model.
      const model = modelFolder(dir, BASES.hf, {}, HF_FILES);
      writeFileSync(join(dir, "p.txt"), "Once upon a time");
      return { args: [c.command, model, ...c.args(dir)] };
    },
  };
};
