// Mutations of config.json (stories260K, and the Mixtral and Qwen2 fixtures, which run through
// `logits` by ids) and of generation_config.json: each key set to a value of every wrong kind,
// deleted, or the file replaced by what is not a JSON object. Whether the result must be refused
// follows from what the key means: a dimension that no longer matches the weights must fail, an
// unknown key must not matter.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { BASES, commandArgs, modelFolder, pickCommand, type Expect, type Family } from "./case.ts";
import type { Rng } from "./rng.ts";
import { hostileValues, jsonText, type HostileValue } from "./values.ts";

/** How a key is read, which decides whether a value must be refused. */
type Kind = "dim" | "positions" | "positive" | "flagOff" | "bool" | "act" | "dtype" | "id" | "ids" | "experts" | "topk" | "count" | "window" | "free";

interface Base {
  readonly dir: string;
  readonly files: readonly string[];
  readonly tokenizer: boolean;
  readonly vocab: number;
  /** Positions the commands need (prompt and new tokens). */
  readonly needs: number;
  readonly keys: Readonly<Record<string, Kind>>;
}

const COMMON: Record<string, Kind> = {
  hidden_size: "dim", intermediate_size: "dim", num_hidden_layers: "dim", num_attention_heads: "dim",
  num_key_value_heads: "dim", vocab_size: "dim", max_position_embeddings: "positions",
  rms_norm_eps: "positive", hidden_act: "act", bos_token_id: "id", eos_token_id: "ids", pad_token_id: "id",
  initializer_range: "free", use_cache: "free", architectures: "free", transformers_version: "free",
};

const CONFIG_BASES: readonly Base[] = [
  {
    dir: BASES.hf, files: ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "generation_config.json"], tokenizer: true, vocab: 512, needs: 10,
    keys: { ...COMMON, head_dim: "dim", rope_theta: "positive", attention_bias: "flagOff", mlp_bias: "flagOff", tie_word_embeddings: "bool", torch_dtype: "dtype" },
  },
  {
    dir: BASES.mixtral, files: ["config.json", "model.safetensors", "generation_config.json"], tokenizer: false, vocab: 128, needs: 3,
    keys: { ...COMMON, head_dim: "dim", num_local_experts: "experts", num_experts_per_tok: "topk", dtype: "dtype", sliding_window: "window", router_aux_loss_coef: "free" },
  },
  {
    dir: BASES.qwen2, files: ["config.json", "model.safetensors", "generation_config.json"], tokenizer: false, vocab: 128, needs: 3,
    keys: { ...COMMON, rope_theta: "positive", max_window_layers: "count", torch_dtype: "dtype", use_sliding_window: "bool" },
  },
];

const isInt = (v: unknown): v is number => typeof v === "number" && Number.isSafeInteger(v);
const finitePositive = (v: unknown) => typeof v === "number" && Number.isFinite(v) && v > 0;

/** What a correct binary does with `key` of kind `kind` set to `v` (undefined: deleted). */
function expectValue(base: Base, raw: Record<string, unknown>, key: string, kind: Kind, v: unknown): Expect {
  const original = raw[key];
  const absent = v === undefined || v === null;
  switch (kind) {
    case "free":
      return "ok";
    case "dim": {
      if (key !== "head_dim") return v === original ? "ok" : "error"; // a default differs from these bases' values
      // head_dim (null, 0 or absent) falls back to hidden_size / num_attention_heads.
      const derived = (raw.hidden_size as number) / (raw.num_attention_heads as number);
      const effective = (x: unknown) => (x === undefined || x === null || x === 0 ? derived : x);
      return effective(v) === effective(original) ? "ok" : "error";
    }
    case "positions":
      if (absent) return "ok";
      if (!isInt(v) || v < 1 || v > 2 ** 30) return "error";
      return v >= base.needs ? "ok" : "either";
    case "positive":
      return absent || finitePositive(v) ? "ok" : "error";
    case "flagOff":
      return absent || v === false ? "ok" : "error";
    case "bool":
      return absent || typeof v === "boolean" ? "ok" : "error";
    case "act":
      return absent || v === "silu" ? "ok" : "error";
    case "dtype":
      return absent || v === "float32" || v === "float16" || v === "bfloat16" ? "ok" : "error";
    case "id":
      return absent || (isInt(v) && v >= 0 && v < base.vocab) ? "ok" : "error";
    case "ids": {
      if (absent) return "ok";
      const list = Array.isArray(v) ? v : [v];
      return list.every((x) => isInt(x) && x >= 0 && x < base.vocab) ? "ok" : "error";
    }
    case "experts":
      return v === original ? "ok" : "error";
    case "topk":
      if (absent) return "ok";
      return isInt(v) && v >= 1 && v <= (raw.num_local_experts as number) ? "ok" : "error";
    case "count":
      return absent || (isInt(v) && v >= 0 && v <= 2 ** 16) ? "ok" : "error";
    case "window":
      return absent || (isInt(v) && v > 0) ? "ok" : "error";
  }
}

/** The JSON value `hostile` stands for (RAW markers parse to what they spell). */
function parsed(h: HostileValue): unknown {
  return JSON.parse(jsonText(h.value));
}

const MODEL_TYPES = ["llama", "mistral", "qwen2", "qwen3", "mixtral", "qwen2_moe", "gpt2", "toString", "__proto__", "constructor", "hasOwnProperty", "", 7, null];
/** Which model types each base still runs as: mistral is llama with a window; the rest need other tensors. */
const RUNS_AS: Readonly<Record<string, readonly unknown[]>> = {
  [BASES.hf]: ["llama", "mistral"],
  [BASES.mixtral]: ["mixtral"],
  [BASES.qwen2]: ["qwen2"],
};

function wholeFile(rng: Rng): { text: string; what: string; huge?: boolean } {
  return rng.pick([
    { text: "", what: "an empty file" },
    { text: "{ not json", what: "text that is not JSON" },
    { text: "[1, 2]", what: "a JSON array" },
    { text: "null", what: "null" },
    { text: "[".repeat(200_000) + "]".repeat(200_000), what: "arrays nested 200,000 deep", huge: true },
    { text: `{"a": "${"\u001b[2J".repeat(50_000)}"`, what: "an unterminated string of ESC sequences", huge: true },
  ]);
}

export const configFamily: Family = (rng) => {
  const base = rng.pick(CONFIG_BASES);
  const raw = JSON.parse(readFileSync(join(base.dir, "config.json"), "utf8")) as Record<string, unknown>;
  const command = pickCommand(rng, { tokenizer: base.tokenizer });
  let text: string;
  let what: string;
  let expect: Expect;
  let hugeCount = false;
  const r = rng.next();
  if (r < 0.08) {
    const w = wholeFile(rng);
    ({ text, what } = w);
    hugeCount = w.huge === true;
    expect = "error";
  } else if (r < 0.18) {
    const type = rng.pick(MODEL_TYPES);
    text = jsonText({ ...raw, model_type: type });
    what = `model_type ${JSON.stringify(type)}`;
    expect = RUNS_AS[base.dir]!.includes(type) ? "ok" : "error";
  } else if (r < 0.3) {
    const key = rng.pick(Object.keys(base.keys));
    const { [key]: _, ...rest } = raw;
    text = jsonText(rest);
    what = `"${key}" deleted`;
    expect = expectValue(base, raw, key, base.keys[key]!, undefined);
  } else if (r < 0.36) {
    const rope = rng.pick<[unknown, Expect]>([
      [null, "ok"], [{}, "ok"], [[], "ok"], [5, "error"], [{ type: "linear", factor: 2 }, "ok"], [{ type: "linear", factor: 0 }, "error"],
      [{ type: "linear", factor: "2" }, "error"], [{ rope_type: "yarn", factor: 4 }, "error"], [{ type: "llama3", factor: 8, low_freq_factor: 4, high_freq_factor: 1 }, "error"],
      [{ type: "toString" }, "error"], [{ type: "linear", factor: `\u0000raw:1e400` }, "error"],
    ]);
    text = jsonText({ ...raw, rope_scaling: rope[0] });
    what = `rope_scaling ${jsonText(rope[0])}`;
    // A rope dict in transformers 5's key wins over rope_scaling only when rope_scaling is absent.
    expect = base.dir === BASES.mixtral && rope[1] === "ok" ? "either" : rope[1];
  } else {
    const key = rng.pick(Object.keys(base.keys));
    const kind = base.keys[key]!;
    const numeric = kind === "dim" || kind === "positions" || kind === "experts";
    // Near the file's value, or large but inside every bound (a plan sized from it must still be refused in time).
    const near = () => (rng.chance(0.25) ? { value: 60_000, what: "60000" } : { value: (raw[key] as number) + rng.pick([-1, 1, 2]), what: "a neighbouring value" });
    const h = rng.chance(0.3) && numeric ? near() : rng.pick(hostileValues());
    const v = parsed(h);
    text = jsonText({ ...raw, [key]: h.value });
    what = `"${key}" set to ${h.what}`;
    expect = expectValue(base, raw, key, kind, v);
    hugeCount = numeric && typeof v === "number" && Math.abs(v) >= 60_000;
  }
  return {
    what: `${command} ${base.dir.split("/").pop()}: config.json ${what}`,
    expect,
    hugeCount,
    build(dir) {
      return { args: commandArgs(command, modelFolder(dir, base.dir, { "config.json": text }, base.files), dir) };
    },
  };
};

/** generation_config.json: stop ids and sampling defaults, read before the first token. */
export const generationConfigFamily: Family = (rng) => {
  const raw = JSON.parse(readFileSync(join(BASES.hf, "generation_config.json"), "utf8")) as Record<string, unknown>;
  const cases: [string, unknown, Expect][] = [
    ["eos_token_id", 600, "error"], ["eos_token_id", [2, -1], "error"], ["eos_token_id", "2", "error"], ["eos_token_id", [], "ok"], ["eos_token_id", null, "ok"],
    ["temperature", -1, "error"], ["temperature", "hot", "error"], ["temperature", 0.7, "ok"], ["temperature", `\u0000raw:1e400`, "error"],
    ["do_sample", "yes", "error"], ["do_sample", true, "ok"], ["top_p", 0, "error"], ["top_p", 2, "error"], ["top_k", -3, "error"],
    ["repetition_penalty", 0, "error"], ["max_new_tokens", 0, "error"], ["bos_token_id", 1.5, "error"], ["pad_token_id", -1, "error"],
  ];
  const [key, value, expect] = rng.pick(cases);
  const text = jsonText({ ...raw, [key]: value });
  return {
    what: `run: generation_config.json "${key}" set to ${jsonText(value)}`,
    expect,
    build(dir) {
      return { args: commandArgs("run", modelFolder(dir, BASES.hf, { "generation_config.json": text }), dir) };
    },
  };
};
