// AirLLM's compression names: 4bit = NF4 blocks of 64 (AirLLM's own), 8bit = blockwise 8-bit
// with a linear map over blocks of 64 (not AirLLM's dynamic map over 2048: see quant_bnb.zig):
// - the quantizer against bitsandbytes itself: fixtures from test/fixtures/gen_bnb_fixtures.py
//   (bitsandbytes 0.50.2, CPU) hold its codes, absmax and dequantized values for inputs with
//   ragged rows, all-zero blocks, a huge outlier and bf16 values; ours must be bit-exact;
// - fused matmul (decode and prefill) against dequantize-then-multiply in float64: decoded
//   weights are exact, so the only error is f32 summation, ≤ cols·u·Σ|xᵢwᵢ| (Higham). That is
//   the exact-activation path, and the default one where blocks span rows; the default int8
//   path on rows of whole blocks is checked in test/int-dot.test.ts;
// - stories260K compressed vs F32: next-token KL over llama2.c's 200-token greedy sequence, on
//   the default (int8 activations) and the exact-activation paths;
// - compressed splits: NaN rejected naming the tensor, resumable, re-created when markers vanish.
import { afterAll, describe, expect, test } from "bun:test";
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, truncateSync, writeSync, openSync, closeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { tensorBytes, type BnbDType } from "../src/backend/backend.ts";
import { CpuBackend } from "../src/backend/cpu/cpu-backend.ts";
import { ModelFormatError } from "../src/errors.ts";
import { SafetensorsFile } from "../src/formats/safetensors.ts";
import { AutoModel } from "../src/model/auto-model.ts";
import type { CausalLM } from "../src/model/causal-lm.ts";
import { splitModel } from "../src/split/split-model.ts";
import { ROOT, STORIES_HF } from "./paths.ts";
import { storiesRef } from "./stories-reference.ts";

const U = 2 ** -24;
const DIR = resolve(ROOT, "test/fixtures/bnb");
const be = new CpuBackend();
const exactBe = new CpuBackend({ exactActivations: true });
const tmp = mkdtempSync(join(tmpdir(), "airllm-compress-"));
afterAll(() => {
  be.destroy();
  exactBe.destroy();
  rmSync(tmp, { recursive: true, force: true });
});

const bin = (name: string) => new Uint8Array(readFileSync(join(DIR, `${name}.bin`)));
const f32 = (name: string) => new Float32Array(bin(name).buffer);

function put(data: Float32Array | Uint8Array): number {
  const addr = be.alloc(Math.max(4, data.byteLength));
  const padded = new Uint8Array(Math.ceil(data.byteLength / 4) * 4);
  padded.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
  be.write(addr, new Int32Array(padded.buffer));
  return addr;
}

function quantize(dtype: BnbDType, values: Float32Array, src: "f32" | "bf16" = "f32"): Uint8Array {
  const data = src === "f32" ? values : new Uint16Array(new Uint32Array(values.buffer.slice(0)).map((b) => b >>> 16));
  const s = put(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
  const bytes = tensorBytes(dtype, [values.length]);
  const d = be.alloc(bytes);
  expect(be.quantize(d, dtype, s, src, values.length)).toBeNull();
  const out = new Uint8Array(bytes);
  be.download(out, d, bytes);
  be.free(s);
  be.free(d);
  return out;
}

function dequantize(dtype: BnbDType, blocks: Uint8Array, n: number): Float32Array {
  const s = put(blocks);
  const d = be.alloc(n * 4);
  be.dequantize(d, s, dtype, n);
  const out = new Float32Array(n);
  be.download(out, d, n * 4);
  be.free(s);
  be.free(d);
  return out;
}

/** Our self-contained blocks split into bitsandbytes' two arrays: codes and absmax. */
function unpack(dtype: BnbDType, blocks: Uint8Array, n: number): { codes: Uint8Array; absmax: Float32Array } {
  const [B, BB] = dtype === "nf4" ? [64, 36] : [64, 68];
  const nb = Math.ceil(n / B);
  const absmax = new Float32Array(nb);
  const codes: number[] = [];
  const view = new DataView(blocks.buffer);
  for (let b = 0; b < nb; b++) {
    absmax[b] = view.getFloat32(b * BB, true);
    const len = Math.min(B, n - b * B);
    const codeBytes = dtype === "nf4" ? Math.ceil(len / 2) : len;
    for (let i = 0; i < codeBytes; i++) codes.push(blocks[b * BB + 4 + i]!);
  }
  return { codes: Uint8Array.from(codes), absmax };
}

const mismatches = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  expect(a.length).toBe(b.length);
  let n = 0;
  for (let i = 0; i < a.length; i++) if (!Object.is(a[i], b[i]) && a[i] !== b[i]) n++;
  return n;
};

describe("the quantizer against bitsandbytes 0.50.2", () => {
  const cases = Object.keys(JSON.parse(readFileSync(join(DIR, "index.json"), "utf8")));
  for (const name of cases) {
    for (const [dtype, key] of [["nf4", "nf4"], ["q8_block", "q8"]] as const) {
      test(`${name}: ${dtype} codes, absmax and dequantized values are bit-exact`, () => {
        const input = f32(`${name}.input`);
        const blocks = quantize(dtype, input);
        const { codes, absmax } = unpack(dtype, blocks, input.length);
        const ref = bin(`${name}.${key}_codes`);
        expect(mismatches(absmax, f32(`${name}.${key}_absmax`))).toBe(0);
        if (dtype === "nf4") {
          expect(mismatches(codes, ref)).toBe(0);
          expect(mismatches(dequantize(dtype, blocks, input.length), f32(`${name}.${key}_dequant`))).toBe(0);
        } else {
          // bitsandbytes' CPU 8-bit search is not exactly nearest (its binary search stops one
          // step short near some midpoints: it picks 46/127 for 0.366155, past the midpoint
          // 0.366142 toward 47/127) and exact ties go either way; ours is the exact nearest, ties
          // to the lower code. Where codes differ ours must be at least as close, and decoding
          // its codes with ours must give its dequantized values exactly.
          const refBlocks = blocks.slice();
          const want = f32(`${name}.${key}_dequant`);
          let differ = 0;
          for (let i = 0; i < input.length; i++) {
            const b = Math.floor(i / 64);
            refBlocks[b * 68 + 4 + (i % 64)] = ref[i]!;
            if (codes[i] === ref[i] || absmax[b] === 0) continue;
            differ++;
            const v = input[i]! / absmax[b]!;
            const mine = (codes[i]! - 128) / 127;
            const theirs = want[i]! / absmax[b]!;
            expect(Math.abs(v - mine)).toBeLessThanOrEqual(Math.abs(v - theirs) + 1e-6);
          }
          expect(differ).toBeLessThan(input.length / 100);
          expect(mismatches(dequantize(dtype, refBlocks, input.length), want)).toBe(0);
        }
        if (name === "bf16") expect(quantize(dtype, input, "bf16")).toEqual(blocks);
      });
    }
  }

  test("a NaN or Inf weight is reported by index", () => {
    for (const bad of [NaN, Infinity, -Infinity]) {
      const v = new Float32Array(5000).fill(0.5);
      v[4321] = bad;
      const s = put(v);
      const d = be.alloc(tensorBytes("q8_block", [5000]));
      expect(be.quantize(d, "q8_block", s, "f32", 5000)).toBe(4321);
      expect(be.quantize(d, "nf4", s, "f32", 5000)).toBe(4321);
      be.free(s);
      be.free(d);
    }
  });
});

function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296 - 0.5;
  };
}

describe("fused matmul on compressed weights", () => {
  const shapes = [[1, 64, 172], [1, 33, 4096], [5, 64, 172], [13, 20, 4100], [3, 9, 128]] as const;
  const cases = shapes.flatMap((s) => [[...s, "exact activations"] as const, ...(s[2] % 64 ? [[...s, "default"] as const] : [])]);
  for (const dtype of ["nf4", "q8_block"] as const) {
    for (const [T, rows, cols, path] of cases) {
      test(`${dtype} T=${T} [${rows},${cols}], ${path}: within f32 summation of dequantize-then-multiply`, () => {
        const backend = path === "default" ? be : exactBe;
        const rand = rng(rows * cols + T);
        const w = Float32Array.from({ length: rows * cols }, rand);
        const x = Float32Array.from({ length: T * cols }, rand);
        const blocks = quantize(dtype, w);
        const wd = dequantize(dtype, blocks, rows * cols);
        const wa = put(blocks);
        const xa = put(x);
        const oa = be.alloc(T * rows * 4);
        backend.matmul(oa, xa, { addr: wa, dtype, shape: [rows, cols] }, T);
        const out = new Float32Array(T * rows);
        be.download(out, oa, T * rows * 4);
        for (const a of [wa, xa, oa]) be.free(a);
        for (let t = 0; t < T; t++) {
          for (let r = 0; r < rows; r++) {
            let ref = 0;
            let mag = 0;
            for (let k = 0; k < cols; k++) {
              ref += x[t * cols + k]! * wd[r * cols + k]!;
              mag += Math.abs(x[t * cols + k]! * wd[r * cols + k]!);
            }
            expect(Math.abs(out[t * rows + r]! - ref)).toBeLessThanOrEqual(cols * U * mag + 1e-30);
          }
        }
      });
    }
  }
});

function softmax(l: Float32Array, off: number, V: number): Float64Array {
  let m = -Infinity;
  for (let i = 0; i < V; i++) m = Math.max(m, l[off + i]!);
  const p = new Float64Array(V);
  let s = 0;
  for (let i = 0; i < V; i++) s += p[i] = Math.exp(l[off + i]! - m);
  return p.map((v) => v / s);
}

async function logitsAndText(model: CausalLM, ids: number[]): Promise<{ logits: Float32Array; text: string }> {
  const seq = model.newSequence();
  const [logits] = model.forward([seq], [ids], { allLogits: true });
  seq.dispose();
  const text = (await model.generate([1], { maxNewTokens: 200, temperature: 0 })).text;
  return { logits: logits!, text };
}

describe("stories260K-hf compressed vs F32", () => {
  // Mean next-token KL over llama2.c's greedy sequence, on both CPU paths: exact (f32
  // activations) and the default (x rounded to int8 in blocks of 64; NF4's table as int8 codes
  // over 127; zig-src/cpu/quant_int_bnb.zig). A 64-wide model: every weight matters. Bounds:
  // - 8bit: KL(F32 ‖ 8bit) < 1e-3, the goal, on either path.
  // - 4bit, exact path: < 0.15 (measured 0.106 when written, ~40% margin).
  // - The default path's int8 arithmetic adds 8-bit roundings on top of the compression: of x
  //   for both, and of NF4's table values for 4bit. An 8-bit rounding of the weights may cost
  //   1e-3 (the goal above), so KL(exact ‖ default) < 1e-3 for 8bit and < 2e-3 for 4bit (KLs
  //   of independent small perturbations add). √KL adds like a distance (KL ≈ ½δᵀFδ, F the
  //   Fisher information), so the default 4bit stays within (√KL_exact + √2e-3)² of F32: the
  //   exact path's own KL plus that budget, a bound the exact path meets trivially.
  // Measured on this model (exact / default): 8bit 3.3e-4 / 6.5e-4 (bitsandbytes with the same
  // map on transformers: 3.29e-4; AirLLM's own dynamic-map 8-bit over blocks of 2048:
  // 2.07e-3), 4bit 0.1057 / 0.1056; KL(exact ‖ default) 3.2e-4 (8bit), 8.6e-4 (4bit).
  test("mean next-token KL over llama2.c's greedy sequence, exact and int8 paths", async () => {
    const ids = [1, ...storiesRef().sequence_after_bos_prompt_then_greedy].slice(0, 200);
    const runs: Record<string, { logits: Float32Array; text: string }> = {};
    for (const c of [undefined, "8bit", "4bit"] as const) {
      for (const exact of c ? [false, true] : [true]) {
        const model = await AutoModel.from_pretrained(STORIES_HF, { device: "cpu", compression: c, layer_shards_saving_path: tmp, exact_activations: exact });
        runs[(c ?? "f32") + (c && exact ? " exact" : "")] = await logitsAndText(model, ids);
        model.dispose();
      }
    }
    const V = 512;
    const kl = (from: string, to: string) => {
      let total = 0;
      for (let t = 0; t < ids.length; t++) {
        const p = softmax(runs[from]!.logits, t * V, V);
        const q = softmax(runs[to]!.logits, t * V, V);
        for (let i = 0; i < V; i++) if (p[i]! > 0) total += p[i]! * Math.log(p[i]! / q[i]!);
      }
      return total / ids.length;
    };
    const budget = 1e-3; // per 8-bit rounding
    const m = {
      kl8: kl("f32", "8bit"), kl8Exact: kl("f32", "8bit exact"), kl4: kl("f32", "4bit"), kl4Exact: kl("f32", "4bit exact"),
      int8Cost8: kl("8bit exact", "8bit"), int8Cost4: kl("4bit exact", "4bit"),
    };
    console.log(JSON.stringify({ ...m, f32: runs.f32!.text, "8bit": runs["8bit"]!.text, "4bit": runs["4bit"]!.text }));
    expect(m.kl8Exact).toBeLessThan(budget);
    expect(m.kl8).toBeLessThan(budget);
    expect(m.kl4Exact).toBeLessThan(0.15);
    expect(m.int8Cost8).toBeLessThan(budget);
    expect(m.int8Cost4).toBeLessThan(2 * budget);
    expect(m.kl4).toBeLessThan((Math.sqrt(m.kl4Exact) + Math.sqrt(2 * budget)) ** 2);
    // Compressed files: 2-D weights as U8 with their logical dtype; norms kept in F32.
    const layer = SafetensorsFile.open(join(tmp, "splitted_model.4bit/model.layers.0.safetensors"));
    expect(layer.get("model.layers.0.mlp.down_proj.weight").dtype).toBe("nf4");
    expect(layer.get("model.layers.0.mlp.down_proj.weight").shape).toEqual([64, 172]);
    expect(layer.get("model.layers.0.input_layernorm.weight").dtype).toBe("f32");
    layer.close();
  }, 60_000);
});

const filesOf = (dir: string) =>
  Object.fromEntries(readdirSync(dir).sort().map((f) => [f, readFileSync(join(dir, f))]));

describe("compressed splits", () => {
  test("an interrupted 4bit split resumes to identical files", () => {
    const out = join(tmp, "resume");
    const first = splitModel(STORIES_HF, { compression: "4bit", outDir: out });
    expect(first.splitDir.endsWith("splitted_model.4bit")).toBe(true);
    const before = filesOf(first.splitDir);
    rmSync(join(first.splitDir, "model.layers.2.safetensors.done"));
    rmSync(join(first.splitDir, "lm_head.safetensors.done"));
    truncateSync(join(first.splitDir, "model.layers.2.safetensors"), 100);
    const again = splitModel(STORIES_HF, { compression: "4bit", outDir: out });
    expect(again.writtenBytes).toBeGreaterThan(0);
    expect(filesOf(first.splitDir)).toEqual(before);
    expect(splitModel(STORIES_HF, { compression: "4bit", outDir: out }).reused).toBe(true);
  });

  test("loading with compression re-creates a split whose .done markers are missing", async () => {
    const out = join(tmp, "markers");
    const dir = splitModel(STORIES_HF, { compression: "8bit", outDir: out }).splitDir;
    for (const f of readdirSync(dir)) if (f.endsWith(".done")) rmSync(join(dir, f));
    const model = await AutoModel.from_pretrained(STORIES_HF, { device: "cpu", compression: "8bit", layer_shards_saving_path: out });
    model.dispose();
    expect(readdirSync(dir).filter((f) => f.endsWith(".done")).length).toBe(8);
  });

  test("a NaN weight fails the split with an error naming the tensor", () => {
    const model = join(tmp, "nan-model");
    cpSync(STORIES_HF, model, { recursive: true });
    const file = join(model, "model.safetensors");
    const st = SafetensorsFile.open(file);
    const t = st.get("model.layers.1.self_attn.k_proj.weight");
    st.close();
    const fd = openSync(file, "r+");
    writeSync(fd, new Uint8Array(new Float32Array([NaN]).buffer), 0, 4, t.fileOffset + 4 * 10);
    closeSync(fd);
    expect(() => splitModel(model, { compression: "8bit" })).toThrow(ModelFormatError);
    expect(() => splitModel(model, { compression: "8bit" })).toThrow(/model\.layers\.1\.self_attn\.k_proj\.weight.*NaN or Inf at element 10/);
    expect(existsSync(join(model, "splitted_model.8bit/model.layers.1.safetensors.done"))).toBe(false);
  });
});
