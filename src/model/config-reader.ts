// Typed reads of config.json fields, each failing with a ModelFormatError that names the file, the
// key and the value. Every architecture's config parser reads through one of these, so a field a
// checkpoint leaves out takes the default the reference implementation gives it, in one place per
// architecture, and a bad value is reported the same way everywhere (src/util/validate.ts).
import type { DType } from "../backend/backend.ts";
import { ModelFormatError } from "../errors.ts";
import { checkFinite, checkId, checkInt, own, quote, show, type Fail } from "../util/validate.ts";

const TORCH_DTYPES: Record<string, DType> = { float32: "f32", float16: "f16", bfloat16: "bf16" };

/**
 * Bounds on what a config may claim before anything is sized from it, far above every real model
 * (hidden sizes reach 2^15, vocabularies 2^18, contexts 2^24): a count past these is corruption,
 * and an array or a plan sized from it would take the machine's memory. Layer counts are further
 * checked against the tensors present before a plan is built (architecture.ts).
 */
export const CONFIG_LIMITS = {
  /** Widths: hidden, intermediate and expert sizes, head_dim. */
  dim: 2 ** 20,
  heads: 2 ** 16,
  layers: 2 ** 16,
  experts: 2 ** 16,
  vocab: 2 ** 24,
  positions: 2 ** 30,
} as const;

export class ConfigReader {
  readonly #fail: Fail;

  constructor(
    readonly raw: Readonly<Record<string, unknown>>,
    /** Only names the source in errors. */
    readonly path: string,
  ) {
    this.#fail = (what) => this.bad(what);
  }

  bad(what: string, hint = "Fix or re-download config.json."): never {
    throw new ModelFormatError(`${quote(this.path, 200)}: ${what}`, hint);
  }

  has(key: string): boolean {
    return Object.hasOwn(this.raw, key) && this.raw[key] !== undefined;
  }

  /** The key's own value, or the fallback when it is absent (an inherited "constructor" is absent). */
  get(key: string): unknown {
    return Object.hasOwn(this.raw, key) ? this.raw[key] : undefined;
  }

  /** A positive integer of at most `max` (the fallback when the key is absent; absent without one is an error). */
  int(key: string, fallback?: number, max: number = CONFIG_LIMITS.dim): number {
    const v = this.get(key) ?? fallback;
    if (v === undefined) this.bad(`missing "${key}"`);
    return checkInt(v, `"${key}"`, this.#fail, { min: 1, max });
  }

  /** A non-negative integer of at most `max`. */
  count(key: string, fallback: number, max: number = CONFIG_LIMITS.dim): number {
    return checkInt(this.get(key) ?? fallback, `"${key}"`, this.#fail, { min: 0, max });
  }

  /** A positive finite number. */
  num(key: string, fallback: number): number {
    return checkFinite(this.get(key) ?? fallback, `"${key}"`, this.#fail, { above: 0 });
  }

  bool(key: string, fallback: boolean): boolean {
    const v = this.get(key) ?? fallback;
    if (typeof v !== "boolean") this.bad(`"${key}" must be true or false, got ${show(v)}`);
    return v as boolean;
  }

  /** A token id below `vocab`, or null (an explicit null stays null; an absent key takes the fallback). */
  tokenId(key: string, fallback: number | null, vocab: number): number | null {
    const v = Object.hasOwn(this.raw, key) ? this.raw[key] : fallback;
    if (v === null || v === undefined) return null;
    return checkId(v, `"${key}"`, vocab, this.#fail);
  }

  /** `eos_token_id`: one id, a list of them, or null; each below `vocab`. */
  tokenIds(key: string, fallback: number | null, vocab: number): number[] {
    const v = Object.hasOwn(this.raw, key) ? this.raw[key] : fallback;
    const list = v === null || v === undefined ? [] : Array.isArray(v) ? v : [v];
    if (list.length > vocab) this.bad(`"${key}" lists ${list.length} ids, more than the vocabulary holds`);
    return list.map((t, i) => checkId(t, Array.isArray(v) ? `"${key}"[${i}]` : `"${key}"`, vocab, this.#fail));
  }

  /** The dtype the checkpoint was saved in (transformers 5 writes `dtype`, older ones `torch_dtype`). */
  torchDtype(): DType | null {
    const name = this.get("dtype") ?? this.get("torch_dtype");
    if (name === undefined || name === null) return null;
    return own(TORCH_DTYPES, name) ?? this.bad(`torch_dtype ${show(name)} is not supported; supported: ${Object.keys(TORCH_DTYPES).join(", ")}`);
  }

  /** hidden / heads, the head size of configs that have no head_dim; even where RoPE rotates pairs. */
  headSize(hidden: number, heads: number, rotary: boolean): number {
    if (hidden % heads !== 0) this.bad(`hidden_size ${hidden} is not a multiple of num_attention_heads ${heads}`);
    const size = hidden / heads;
    if (rotary && size % 2 !== 0) this.bad(`the head size ${size} (hidden_size / num_attention_heads) must be even (rotary pairs)`);
    return size;
  }

  /**
   * The model classes the config names: auto_map's values ("module.Class" → "Class") and
   * `architectures`. Only matched against known names; the code they point to is never read.
   */
  classNames(): string[] {
    const auto = this.raw.auto_map;
    const mapped = auto !== null && typeof auto === "object" && !Array.isArray(auto) ? Object.values(auto) : [];
    const listed = Array.isArray(this.raw.architectures) ? this.raw.architectures : [];
    return [...mapped, ...listed].filter((n): n is string => typeof n === "string").map((n) => n.slice(n.lastIndexOf(".") + 1));
  }

  /** The activation of a gated MLP: only SiLU (SwiGLU) is implemented. */
  requireSilu(key = "hidden_act"): void {
    const act = this.get(key) ?? "silu";
    if (act !== "silu") this.bad(`${key} ${show(act)} is not supported; supported: silu`);
  }
}
