// Typed reads of config.json fields, each failing with a ModelFormatError that names the file, the
// key and the value. Every architecture's config parser reads through one of these, so a field a
// checkpoint leaves out takes the default the reference implementation gives it, in one place per
// architecture, and a bad value is reported the same way everywhere.
import type { DType } from "../backend/backend.ts";
import { ModelFormatError } from "../errors.ts";

const TORCH_DTYPES: Record<string, DType> = { float32: "f32", float16: "f16", bfloat16: "bf16" };

export class ConfigReader {
  constructor(
    readonly raw: Readonly<Record<string, unknown>>,
    /** Only names the source in errors. */
    readonly path: string,
  ) {}

  bad(what: string, hint = "Fix or re-download config.json."): never {
    throw new ModelFormatError(`"${this.path}": ${what}`, hint);
  }

  has(key: string): boolean {
    return key in this.raw && this.raw[key] !== undefined;
  }

  /** A positive integer (the fallback when the key is absent; absent without one is an error). */
  int(key: string, fallback?: number): number {
    const v = this.raw[key] ?? fallback;
    if (v === undefined) this.bad(`missing "${key}"`);
    if (!Number.isSafeInteger(v) || (v as number) <= 0) this.bad(`"${key}" must be a positive integer, got ${JSON.stringify(v)}`);
    return v as number;
  }

  /** A non-negative integer. */
  count(key: string, fallback: number): number {
    const v = this.raw[key] ?? fallback;
    if (!Number.isSafeInteger(v) || (v as number) < 0) this.bad(`"${key}" must be a non-negative integer, got ${JSON.stringify(v)}`);
    return v as number;
  }

  /** A positive finite number. */
  num(key: string, fallback: number): number {
    const v = this.raw[key] ?? fallback;
    if (typeof v !== "number" || !Number.isFinite(v) || v <= 0) this.bad(`"${key}" must be a positive number, got ${JSON.stringify(v)}`);
    return v as number;
  }

  bool(key: string, fallback: boolean): boolean {
    const v = this.raw[key] ?? fallback;
    if (typeof v !== "boolean") this.bad(`"${key}" must be true or false, got ${JSON.stringify(v)}`);
    return v as boolean;
  }

  /** A token id or null (an explicit null stays null; an absent key takes the fallback). */
  tokenId(key: string, fallback: number | null): number | null {
    const v = key in this.raw ? this.raw[key] : fallback;
    if (v === null || v === undefined) return null;
    if (!Number.isSafeInteger(v) || (v as number) < 0) this.bad(`"${key}" must be a token id, got ${JSON.stringify(v)}`);
    return v as number;
  }

  /** `eos_token_id`: one id, a list of them, or null. */
  tokenIds(key: string, fallback: number | null): number[] {
    const v = key in this.raw ? this.raw[key] : fallback;
    const list = v === null || v === undefined ? [] : Array.isArray(v) ? v : [v];
    if (!list.every((t) => Number.isSafeInteger(t) && t >= 0)) this.bad(`"${key}" must be a token id or a list of them, got ${JSON.stringify(v)}`);
    return list as number[];
  }

  /** The dtype the checkpoint was saved in (transformers 5 writes `dtype`, older ones `torch_dtype`). */
  torchDtype(): DType | null {
    const name = this.raw.dtype ?? this.raw.torch_dtype;
    if (name === undefined || name === null) return null;
    return TORCH_DTYPES[name as string] ?? this.bad(`torch_dtype ${JSON.stringify(name)} is not supported; supported: ${Object.keys(TORCH_DTYPES).join(", ")}`);
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
    const act = this.raw[key] ?? "silu";
    if (act !== "silu") this.bad(`${key} ${JSON.stringify(act)} is not supported; supported: silu`);
  }
}
