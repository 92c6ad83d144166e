import { afterAll, describe, expect, test } from "bun:test";
import { toArrayBuffer } from "bun:ffi";
import { closeSync, mkdirSync, mkdtempSync, openSync, rmSync, writeFileSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { NativeError } from "../src/errors.ts";
import { MappedFile } from "../src/formats/mmap.ts";
import { openWeightFiles, WeightFiles } from "../src/formats/model-files.ts";
import { SafetensorsFile, type TensorInfo } from "../src/formats/safetensors.ts";
import { STORIES_HF } from "./paths.ts";
import { expectFormatError } from "./expect-error.ts";

const tmp = mkdtempSync(join(tmpdir(), "airllm-safetensors-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

let fileCount = 0;
/** Write a safetensors file: 8-byte LE header length, the header (JSON or raw text), then data. */
function writeSafetensors(header: object | string, data: Uint8Array | number = 0, name = `f${fileCount++}.safetensors`, dir = tmp): string {
  const json = new TextEncoder().encode(typeof header === "string" ? header : JSON.stringify(header));
  const body = typeof data === "number" ? new Uint8Array(data) : data;
  const bytes = new Uint8Array(8 + json.length + body.length);
  new DataView(bytes.buffer).setBigUint64(0, BigInt(json.length), true);
  bytes.set(json, 8);
  bytes.set(body, 8 + json.length);
  const path = join(dir, name);
  writeFileSync(path, bytes);
  return path;
}

function f32(t: TensorInfo): Float32Array {
  return new Float32Array(toArrayBuffer(t.addr, 0, t.bytes));
}


describe("stories260K-hf model.safetensors", () => {
  const path = join(STORIES_HF, "model.safetensors");

  test("lists every tensor with its dtype, shape and place in the file", () => {
    const file = SafetensorsFile.open(path);
    try {
      // 5 layers × 9 tensors + embed_tokens + norm; tied embeddings, so no lm_head.weight.
      expect(file.names().length).toBe(47);
      expect(file.has("lm_head.weight")).toBe(false);
      // The header is 4848 bytes (read with Python struct.unpack('<Q', f[:8])), data starts at 4856.
      expect(file.dataStart).toBe(4856);
      const emb = file.get("model.embed_tokens.weight");
      expect(emb).toMatchObject({ dtype: "f32", shape: [512, 64], bytes: 131072, file: path, fileOffset: 4856 });
      expect(emb.addr).toBe(file.mapping.addr + 4856);
      expect(file.get("model.layers.0.self_attn.k_proj.weight")).toMatchObject({ shape: [32, 64], fileOffset: 4856 + 147712 });
      expect(file.get("model.layers.2.mlp.down_proj.weight").shape).toEqual([64, 172]);
      expect(file.get("model.norm.weight")).toMatchObject({ shape: [64], bytes: 256, fileOffset: 4856 + 1039872 });
    } finally {
      file.close();
    }
  });

  test("addresses read the values numpy reads", () => {
    // Reference values: numpy.frombuffer over the file's bytes at 8 + header_len + data_offsets,
    // dtype '<f4', reshaped to the header shape (python3 one-off, not our code).
    const store = openWeightFiles(STORIES_HF);
    try {
      const emb = f32(store.get("model.embed_tokens.weight"));
      expect([...emb.subarray(0, 4)]).toEqual([-0.29474878311157227, 0.5618956089019775, 0.1754225343465805, 0.34057360887527466]);
      expect([...emb.subarray(511 * 64 + 60, 512 * 64)]).toEqual([-0.0016551478765904903, -0.23400729894638062, -0.16485778987407684, -0.424032598733902]);
      const down = f32(store.get("model.layers.2.mlp.down_proj.weight"));
      expect([...down.subarray(63 * 172 + 168, 64 * 172)]).toEqual([-0.012580543756484985, 0.07061547785997391, -0.07488451153039932, 0.10219375044107437]);
      const norm = f32(store.get("model.norm.weight"));
      expect([...norm.subarray(0, 4)]).toEqual([2.4583089351654053, 1.3673226833343506, 1.7504382133483887, 1.1078318357467651]);
      const k = f32(store.get("model.layers.0.self_attn.k_proj.weight"));
      expect(k.reduce((a, x) => a + x, 0)).toBeCloseTo(-16.508645431225887, 3);
    } finally {
      store.close();
    }
  });

  test("WeightFiles names, misses and close", () => {
    const store = WeightFiles.open(STORIES_HF);
    expect(store.files.length).toBe(1);
    expect(store.names()).toContain("model.layers.4.mlp.up_proj.weight");
    expect(store.has("model.layers.5.mlp.up_proj.weight")).toBe(false);
    expectFormatError(() => store.get("lm_head.weight"), "lm_head.weight", STORIES_HF);
    store.close();
    store.close(); // idempotent
    expectFormatError(() => store.get("model.norm.weight"), "model.norm.weight", "after close");
  });
});

describe("dtypes", () => {
  test("F16 and BF16 tensors map to f16 and bf16 with their raw bytes", () => {
    // 1.0 is 0x3c00 in f16 and 0x3f80 in bf16; -2.0 is 0xc000 in both.
    const data = new Uint8Array(new Uint16Array([0x3c00, 0xc000, 0x3f80, 0xc000]).buffer);
    const path = writeSafetensors(
      { __metadata__: { format: "pt" }, h: { dtype: "F16", shape: [2], data_offsets: [0, 4] }, b: { dtype: "BF16", shape: [1, 2], data_offsets: [4, 8] } },
      data,
    );
    const file = SafetensorsFile.open(path);
    expect(file.names()).toEqual(["h", "b"]);
    const h = file.get("h");
    const b = file.get("b");
    expect(h.dtype).toBe("f16");
    expect(b).toMatchObject({ dtype: "bf16", shape: [1, 2], bytes: 4 });
    expect([...new Uint16Array(toArrayBuffer(h.addr, 0, 4))]).toEqual([0x3c00, 0xc000]);
    expect([...new Uint16Array(toArrayBuffer(b.addr, 0, 4))]).toEqual([0x3f80, 0xc000]);
    file.close();
  });

  test("an empty tensor may share its offset with a neighbour", () => {
    const path = writeSafetensors({ e: { dtype: "F32", shape: [0, 3], data_offsets: [4, 4] }, a: { dtype: "F32", shape: [2], data_offsets: [0, 8] } }, 8);
    const file = SafetensorsFile.open(path);
    expect(file.get("e").bytes).toBe(0);
    file.close();
  });

  test("an unsupported dtype names the file, tensor and dtype and lists the supported ones", () => {
    const path = writeSafetensors({ "model.ids": { dtype: "I64", shape: [2], data_offsets: [0, 16] } }, 16);
    expectFormatError(() => SafetensorsFile.open(path), path, "model.ids", "I64", "F32, F16, BF16");
    const weird = writeSafetensors({ q: { dtype: "Q4_K", shape: [2], data_offsets: [0, 2] } }, 2);
    expectFormatError(() => SafetensorsFile.open(weird), weird, `"q"`, `unknown dtype "Q4_K"`);
  });
});

describe("malformed files are ModelFormatErrors naming the file and tensor", () => {
  test("empty and truncated files", () => {
    const empty = join(tmp, "empty.safetensors");
    writeFileSync(empty, new Uint8Array(0));
    expectFormatError(() => SafetensorsFile.open(empty), empty, "0 bytes");
    const short = join(tmp, "short.safetensors");
    writeFileSync(short, new Uint8Array(5));
    expectFormatError(() => SafetensorsFile.open(short), short, "5 bytes");
  });

  test("8-bit weights in the earlier layout (blocks of 2048) are named as such, with the fix", () => {
    // [3, 1000]: one full 2048-block (2052 bytes) and a 952-weight tail (4 + 952 bytes).
    const meta = { "airllm.dtype.w": "q8_block", "airllm.shape.w": "[3, 1000]" };
    const old = writeSafetensors({ __metadata__: meta, w: { dtype: "U8", shape: [3008], data_offsets: [0, 3008] } }, 3008);
    const err = expectFormatError(() => SafetensorsFile.open(old), old, "earlier layout (blocks of 2048");
    expect(err.hint).toContain("delete this splitted_model.8bit folder");
    // Any other wrong size is the generic size error.
    const bad = writeSafetensors({ __metadata__: meta, w: { dtype: "U8", shape: [3000], data_offsets: [0, 3000] } }, 3000);
    expectFormatError(() => SafetensorsFile.open(bad), bad, "q8_block shape [3, 1000] needs 3188 bytes");
  });

  test("header length bigger than the file", () => {
    const path = join(tmp, "bighdr.safetensors");
    const bytes = new Uint8Array(40);
    new DataView(bytes.buffer).setBigUint64(0, 1000n, true);
    writeFileSync(path, bytes);
    expectFormatError(() => SafetensorsFile.open(path), path, "header length 1000", "40 bytes");
    // An absurd 64-bit length must not be mistaken for a small one.
    new DataView(bytes.buffer).setBigUint64(0, 0xffff_ffff_ffff_fff0n, true);
    writeFileSync(path, bytes);
    expectFormatError(() => SafetensorsFile.open(path), path, "runs past the end");
  });

  test("header that is not a JSON object", () => {
    const path = writeSafetensors("{ not json", 0);
    expectFormatError(() => SafetensorsFile.open(path), path, "JSON");
    const arr = writeSafetensors("[1, 2]", 0);
    expectFormatError(() => SafetensorsFile.open(arr), arr, "not a JSON object");
  });

  test("data offsets past the end of the file (truncated data)", () => {
    const path = writeSafetensors({ "model.norm.weight": { dtype: "F32", shape: [64], data_offsets: [0, 256] } }, 100);
    expectFormatError(() => SafetensorsFile.open(path), path, "model.norm.weight", "[0, 256]", "100 bytes");
  });

  test("dtype and shape disagreeing with the byte length", () => {
    const path = writeSafetensors({ "w.q": { dtype: "F16", shape: [3, 4], data_offsets: [0, 48] } }, 48);
    expectFormatError(() => SafetensorsFile.open(path), path, "w.q", "needs 24 bytes", "hold 48");
  });

  test("overlapping tensors", () => {
    const path = writeSafetensors(
      { a: { dtype: "F32", shape: [4], data_offsets: [0, 16] }, "layer.b": { dtype: "F32", shape: [4], data_offsets: [8, 24] } },
      24,
    );
    expectFormatError(() => SafetensorsFile.open(path), path, `"layer.b"`, `"a"`, "overlaps");
  });

  test("end before begin, negative or missing offsets, bad shapes", () => {
    const cases: [object, string][] = [
      [{ t: { dtype: "F32", shape: [0], data_offsets: [8, 4] } }, "end before begin"],
      [{ t: { dtype: "F32", shape: [1], data_offsets: [-4, 0] } }, "data_offsets"],
      [{ t: { dtype: "F32", shape: [1] } }, "data_offsets"],
      [{ t: { dtype: "F32", shape: [-1], data_offsets: [0, 4] } }, "shape"],
      [{ t: { shape: [1], data_offsets: [0, 4] } }, "dtype"],
      [{ t: 7 }, "not an object"],
    ];
    for (const [header, what] of cases) {
      const path = writeSafetensors(header, 8);
      expectFormatError(() => SafetensorsFile.open(path), path, `"t"`, what);
    }
  });

  test("a missing file", () => {
    const path = join(tmp, "nope.safetensors");
    expectFormatError(() => SafetensorsFile.open(path), path);
  });
});

describe("sharded models", () => {
  function shardedModel(name: string, index: object | string, shards: Record<string, object>): string {
    const dir = join(tmp, name);
    mkdirSync(dir);
    writeFileSync(join(dir, "model.safetensors.index.json"), typeof index === "string" ? index : JSON.stringify(index));
    for (const [file, header] of Object.entries(shards)) {
      const bytes = Object.values(header).reduce((n, t: { data_offsets: number[] }) => Math.max(n, t.data_offsets[1]), 0);
      const data = new Float32Array(bytes / 4).map((_, i) => i + 0.5);
      writeSafetensors(header, new Uint8Array(data.buffer), file, dir);
    }
    return dir;
  }
  const shardA = { "model.embed_tokens.weight": { dtype: "F32", shape: [2, 2], data_offsets: [0, 16] } };
  const shardB = { "model.norm.weight": { dtype: "F32", shape: [2], data_offsets: [0, 8] }, "lm_head.weight": { dtype: "F32", shape: [2, 2], data_offsets: [8, 24] } };
  const weightMap = {
    "model.embed_tokens.weight": "model-00001-of-00002.safetensors",
    "model.norm.weight": "model-00002-of-00002.safetensors",
    "lm_head.weight": "model-00002-of-00002.safetensors",
  };

  test("the index maps each tensor to its shard", () => {
    const dir = shardedModel("ok", { metadata: { total_size: 40 }, weight_map: weightMap }, {
      "model-00001-of-00002.safetensors": shardA,
      "model-00002-of-00002.safetensors": shardB,
    });
    const store = openWeightFiles(dir);
    try {
      expect(store.files.length).toBe(2);
      expect(store.names().sort()).toEqual(Object.keys(weightMap).sort());
      const head = store.get("lm_head.weight");
      expect(head.file).toBe(join(dir, "model-00002-of-00002.safetensors"));
      // Shard B's data is 0.5, 1.5, ...; lm_head starts at data byte 8, i.e. element 2.
      expect([...f32(head)]).toEqual([2.5, 3.5, 4.5, 5.5]);
      expect([...f32(store.get("model.embed_tokens.weight"))]).toEqual([0.5, 1.5, 2.5, 3.5]);
    } finally {
      store.close();
    }
  });

  test("a missing shard is named", () => {
    const dir = shardedModel("missing", { weight_map: weightMap }, { "model-00001-of-00002.safetensors": shardA });
    expectFormatError(() => openWeightFiles(dir), "model-00002-of-00002.safetensors", "does not exist", "model.norm.weight");
  });

  test("a tensor the index puts in the wrong shard is named", () => {
    const dir = shardedModel("wrong", { weight_map: { ...weightMap, "model.norm.weight": "model-00001-of-00002.safetensors" } }, {
      "model-00001-of-00002.safetensors": shardA,
      "model-00002-of-00002.safetensors": shardB,
    });
    expectFormatError(() => openWeightFiles(dir), "model.norm.weight", "model-00001-of-00002.safetensors", "does not contain it");
  });

  test("a malformed index, a bad shard inside it, and a folder with no weights", () => {
    const broken = shardedModel("broken", "{", {});
    expectFormatError(() => openWeightFiles(broken), "model.safetensors.index.json", "not a valid shard index");
    const badShard = shardedModel("badshard", { weight_map: { x: "s.safetensors" } }, {
      "s.safetensors": { x: { dtype: "F32", shape: [3], data_offsets: [0, 8] } },
    });
    expectFormatError(() => openWeightFiles(badShard), join(badShard, "s.safetensors"), `"x"`);
    const bare = join(tmp, "bare");
    mkdirSync(bare);
    // A PyTorch file under another name than Hugging Face's (Meta's consolidated.00.pth) is listed, not read.
    writeFileSync(join(bare, "consolidated.00.pth"), "x");
    const err = expectFormatError(() => openWeightFiles(bare), bare, "model.safetensors", "pytorch_model.bin", 'found: "consolidated.00.pth"');
    expect(err.hint).toContain("pytorch_model.bin");
  });
});

describe("MappedFile", () => {
  test("views, advice and an idempotent close", () => {
    const path = join(tmp, "plain.bin");
    writeFileSync(path, new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8, 9]));
    const map = MappedFile.open(path);
    expect(map.length).toBe(9);
    expect([...new Uint8Array(map.view(6, 3))]).toEqual([7, 8, 9]);
    map.advise(1, 8, "willNeed");
    expect(() => map.view(5, 5)).toThrow(NativeError);
    map.close();
    map.close();
    expect(map.isOpen).toBe(false);
    expect(() => map.view(0, 1)).toThrow(NativeError);
    expect(() => MappedFile.open(join(tmp, "absent.bin"))).toThrow(NativeError);
  });

  test("a tensor beyond 4 GiB in a sparse file reads through its raw address", () => {
    // 4.5 GiB of zeros (a hole: no disk used) before the tensor, past every ArrayBuffer limit.
    const pad = 4.5 * 2 ** 30;
    const header = {
      pad: { dtype: "BF16", shape: [pad / 2], data_offsets: [0, pad] },
      x: { dtype: "F32", shape: [4], data_offsets: [pad, pad + 16] },
    };
    const path = writeSafetensors(header, 0, "huge.safetensors");
    const fd = openSync(path, "r+");
    const headerLen = JSON.stringify(header).length;
    writeSync(fd, new Uint8Array(new Float32Array([1.25, -2, 3.5, 1e30]).buffer), 0, 16, 8 + headerLen + pad);
    closeSync(fd);

    const file = SafetensorsFile.open(path);
    try {
      expect(file.mapping.length).toBe(8 + headerLen + pad + 16);
      const x = file.get("x");
      expect(x.fileOffset).toBe(8 + headerLen + pad);
      expect(x.addr - file.mapping.addr).toBeGreaterThan(2 ** 32);
      expect([...f32(x)]).toEqual([1.25, -2, 3.5, Math.fround(1e30)]);
      expect(file.get("pad").bytes).toBe(pad);
    } finally {
      file.close();
      rmSync(path);
    }
  });
});
