import { afterAll, describe, expect, test } from "bun:test";
import { toArrayBuffer } from "bun:ffi";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ModelFormatError } from "../src/errors.ts";
import { GgufFile } from "../src/formats/gguf.ts";
import { SafetensorsFile } from "../src/formats/safetensors.ts";
import { ggufTensorName, loadGgufModel } from "../src/model/gguf-model.ts";
import { SHARED, STORIES_HF } from "./paths.ts";

const STORIES_GGUF = join(SHARED, "models/stories260K/tinyllamas-stories-260k-f32.gguf");
const TINY_GGUF = join(SHARED, "models/tiny-random-gguf/llama-2-tiny-random.gguf");

const bytesAt = (addr: number, n: number) => new Uint8Array(toArrayBuffer(addr, 0, n));

describe("stories260K GGUF v1 (F32, tokenizer embedded)", () => {
  test("header and metadata", () => {
    const f = GgufFile.open(STORIES_GGUF);
    expect(f.version).toBe(1);
    expect(f.alignment).toBe(32);
    expect(f.get("general.architecture")).toBe("llama");
    expect(f.get("llama.embedding_length")).toBe(64);
    expect(f.get("llama.attention.head_count_kv")).toBe(4);
    const tokens = f.get("tokenizer.ggml.tokens") as string[];
    expect(tokens.length).toBe(512);
    expect(tokens[403]).toBe("▁Once");
    expect(f.get("tokenizer.ggml.scores")).toBeInstanceOf(Float32Array);
    // 5 layers × 9 tensors + embedding, final norm, output.
    expect(f.tensorNames.length).toBe(48);
    const q = f.tensor("blk.0.attn_k.weight");
    expect([q.dims, q.typeName, q.bytes]).toEqual([[64, 32], "F32", 64 * 32 * 4]);
    // The last tensor ends exactly at the end of the file.
    const out = f.tensor("output.weight");
    expect(out.offset + out.bytes).toBe(Bun.file(STORIES_GGUF).size);
    f.close();
  });

  test("config from llama.* metadata", () => {
    const m = loadGgufModel(STORIES_GGUF);
    expect(m.config).toMatchObject({
      modelType: "llama", hiddenSize: 64, intermediateSize: 172, numLayers: 5, numHeads: 8, numKvHeads: 4, headDim: 8,
      vocabSize: 512, maxPositionEmbeddings: 512, ropeTheta: 10000, ropeScaling: null, tieWordEmbeddings: false,
      torchDtype: "f32", bosTokenId: 1, eosTokenIds: [2],
    });
    expect(m.config.rmsNormEps).toBeCloseTo(1e-5, 10);
    expect(m.ropeInterleaved).toBe(true);
    expect(m.chatTemplate).toBeNull();
    m.close();
  });

  test("F32 tensors equal the Hugging Face safetensors byte for byte, q/k after undoing llama.cpp's permute", () => {
    const m = loadGgufModel(STORIES_GGUF);
    const hf = SafetensorsFile.open(join(STORIES_HF, "model.safetensors"));
    const { numHeads, numKvHeads, headDim } = m.config;
    let compared = 0;
    for (const name of hf.names()) {
      const want = hf.get(name);
      const got = m.source.get(name);
      expect([name, got.dtype, got.shape]).toEqual([name, want.dtype, want.shape]);
      let bytes: Uint8Array = bytesAt(got.addr, got.bytes);
      const heads = name.endsWith("q_proj.weight") ? numHeads : name.endsWith("k_proj.weight") ? numKvHeads : 0;
      if (heads > 0) bytes = unpermute(bytes, heads, headDim, got.shape[1]! * 4);
      expect(Buffer.compare(bytes, bytesAt(want.addr, want.bytes))).toBe(0);
      compared++;
    }
    expect(compared).toBe(1 + 5 * 9 + 1);
    // The GGUF carries an untied copy of the classifier; the HF folder ties it to the embedding.
    expect(m.source.has("lm_head.weight")).toBe(true);
    const lm = m.source.get("lm_head.weight");
    const emb = m.source.get("model.embed_tokens.weight");
    expect(Buffer.compare(bytesAt(lm.addr, lm.bytes), bytesAt(emb.addr, emb.bytes))).toBe(0);
    hf.close();
    m.close();
  });
});

/**
 * Inverse of convert_hf_to_gguf's permute(w, n_head): within each head, GGUF row 2i + j holds
 * HF row j·hd/2 + i (rotary pair i is adjacent in the file, half a head apart in HF).
 */
function unpermute(gguf: Uint8Array, nHead: number, hd: number, rowBytes: number): Uint8Array {
  const hf = new Uint8Array(gguf.length);
  for (let h = 0; h < nHead; h++) {
    for (let i = 0; i < hd / 2; i++) {
      for (let j = 0; j < 2; j++) {
        const src = (h * hd + 2 * i + j) * rowBytes;
        hf.set(gguf.subarray(src, src + rowBytes), (h * hd + j * (hd / 2) + i) * rowBytes);
      }
    }
  }
  return hf;
}

describe("tiny-random GGUF v3 (F16 matrices, 32000-token vocabulary)", () => {
  test("config, shapes and dtypes", () => {
    const m = loadGgufModel(TINY_GGUF);
    expect(m.config).toMatchObject({
      hiddenSize: 8, intermediateSize: 32, numLayers: 1, numHeads: 2, numKvHeads: 2, headDim: 4,
      vocabSize: 32000, maxPositionEmbeddings: 4096, tieWordEmbeddings: false, torchDtype: "f16",
    });
    const emb = m.source.get("model.embed_tokens.weight");
    expect([emb.dtype, emb.shape, emb.bytes]).toEqual(["f16", [32000, 8], 32000 * 8 * 2]);
    expect(m.source.get("model.layers.0.mlp.down_proj.weight").shape).toEqual([8, 32]);
    expect(m.source.get("model.layers.0.mlp.up_proj.weight").shape).toEqual([32, 8]);
    const norm = m.source.get("model.layers.0.input_layernorm.weight");
    expect([norm.dtype, norm.shape]).toEqual(["f32", [8]]);
    expect(m.tokenizer().vocabSize).toBe(32000);
    expect(() => m.source.get("model.layers.1.self_attn.q_proj.weight")).toThrow(/blk\.1\.attn_q\.weight/);
    m.close();
  });

  test("Hugging Face names map to llama.cpp's", () => {
    expect(ggufTensorName("model.layers.12.self_attn.o_proj.weight")).toBe("blk.12.attn_output.weight");
    expect(ggufTensorName("model.layers.0.post_attention_layernorm.weight")).toBe("blk.0.ffn_norm.weight");
    expect(ggufTensorName("model.norm.weight")).toBe("output_norm.weight");
    expect(ggufTensorName("model.rotary_emb.inv_freq")).toBeUndefined();
  });
});

// --- malformed files, written by a minimal GGUF v3 writer ---

const dir = mkdtempSync(join(tmpdir(), "airllm-gguf-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

interface FakeTensor {
  name: string;
  dims: number[];
  type: number;
  offset: number;
}

function ggufBytes(kv: Record<string, string | number>, tensors: FakeTensor[], dataBytes: number): Uint8Array {
  const parts: Buffer[] = [];
  const u32 = (v: number) => { const b = Buffer.alloc(4); b.writeUInt32LE(v); parts.push(b); };
  const u64 = (v: number) => { const b = Buffer.alloc(8); b.writeBigUInt64LE(BigInt(v)); parts.push(b); };
  const str = (s: string) => { const b = Buffer.from(s, "utf8"); u64(b.length); parts.push(b); };
  parts.push(Buffer.from("GGUF"));
  u32(3);
  u64(tensors.length);
  u64(Object.keys(kv).length);
  for (const [k, v] of Object.entries(kv)) {
    str(k);
    if (typeof v === "string") { u32(8); str(v); } else { u32(4); u32(v); }
  }
  for (const t of tensors) {
    str(t.name);
    u32(t.dims.length);
    t.dims.forEach(u64);
    u32(t.type);
    u64(t.offset);
  }
  const header = Buffer.concat(parts);
  const pad = (32 - (header.length % 32)) % 32;
  return Buffer.concat([header, Buffer.alloc(pad), Buffer.alloc(dataBytes, 1)]);
}

function writeGguf(name: string, bytes: Uint8Array): string {
  const path = join(dir, name);
  writeFileSync(path, bytes);
  return path;
}

const goodTensors: FakeTensor[] = [
  { name: "a", dims: [4, 2], type: 0, offset: 0 }, // F32, 32 bytes
  { name: "q", dims: [32, 1], type: 8, offset: 32 }, // Q8_0, one block of 34 bytes
  { name: "iq", dims: [256], type: 16, offset: 96 }, // IQ2_XXS
];
// A copy each time: Buffer#slice shares memory, and the tests below corrupt their bytes.
const goodBytes = ggufBytes({ "general.architecture": "llama" }, goodTensors, 96 + 66);
const good = () => Uint8Array.from(goodBytes);

describe("malformed GGUF files are ModelFormatErrors naming the file and tensor", () => {
  test("a well-formed file reads, quantized sizes from the block table", () => {
    const f = GgufFile.open(writeGguf("good.gguf", good()));
    expect(f.tensor("q")).toMatchObject({ typeName: "Q8_0", bytes: 34, offset: f.dataOffset + 32 });
    expect(f.tensor("iq")).toMatchObject({ typeName: "IQ2_XXS", bytes: 66, offset: f.dataOffset + 96 });
    f.close();
  });

  test("bad magic", () => {
    const bytes = good();
    bytes[0] = 0x58;
    const path = writeGguf("magic.gguf", bytes);
    expect(() => GgufFile.open(path)).toThrow(ModelFormatError);
    expect(() => GgufFile.open(path)).toThrow(/magic\.gguf.*bad magic/);
  });

  test("unsupported version", () => {
    const bytes = good();
    bytes[4] = 9;
    expect(() => GgufFile.open(writeGguf("version.gguf", bytes))).toThrow(/version 9 is not supported/);
  });

  test("a header cut short", () => {
    const path = writeGguf("cut.gguf", good().subarray(0, 60));
    expect(() => GgufFile.open(path)).toThrow(ModelFormatError);
    expect(() => GgufFile.open(path)).toThrow(/cut\.gguf.*header ends early/);
  });

  test("a truncated data section fails for the tensor that no longer fits", () => {
    const f = GgufFile.open(writeGguf("short.gguf", good().subarray(0, goodBytes.length - 112)));
    expect(f.tensor("a").bytes).toBe(32);
    expect(() => f.tensor("q")).toThrow(/short\.gguf.*tensor "q".*past the end of the file/);
    f.close();
  });

  test("an offset past the end", () => {
    const bytes = ggufBytes({}, [{ name: "far", dims: [8], type: 0, offset: 1 << 20 }], 32);
    const f = GgufFile.open(writeGguf("far.gguf", bytes));
    expect(() => f.tensor("far")).toThrow(ModelFormatError);
    expect(() => f.tensor("far")).toThrow(/far\.gguf.*tensor "far".*past the end/);
    f.close();
  });

  test("an unsupported type is refused by name when its tensor is requested, not at open", () => {
    // Q8_K: ggml's internal dot-product type, never a weight type.
    const f = GgufFile.open(writeGguf("q8k.gguf", ggufBytes({}, [{ name: "k", dims: [256], type: 15, offset: 0 }], 320)));
    expect(() => f.tensor("k")).toThrow(/q8k\.gguf.*tensor "k" has ggml type Q8_K/);
    const unknown = GgufFile.open(writeGguf("unknown.gguf", ggufBytes({}, [{ name: "u", dims: [8], type: 99, offset: 0 }], 64)));
    expect(() => unknown.tensor("u")).toThrow(/unknown type 99/);
    unknown.close();
    f.close();
  });

  test("dims that are not whole blocks", () => {
    const f = GgufFile.open(writeGguf("blocks.gguf", ggufBytes({}, [{ name: "odd", dims: [31], type: 8, offset: 0 }], 64)));
    expect(() => f.tensor("odd")).toThrow(/tensor "odd" dims \[31\] do not fit Q8_0 blocks/);
    f.close();
  });

  test("a missing tensor and an unsupported architecture", () => {
    const f = GgufFile.open(writeGguf("arch.gguf", ggufBytes({ "general.architecture": "gemma" }, [], 0)));
    expect(() => f.tensor("nope")).toThrow(/arch\.gguf" has no tensor "nope"/);
    f.close();
    expect(() => loadGgufModel(join(dir, "arch.gguf"))).toThrow(/architecture "gemma" is not supported; supported: llama/);
  });
});
