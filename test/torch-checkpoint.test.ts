// pytorch_model*.bin read safely: checkpoints written by torch.save itself
// (test/fixtures/gen_torch_bin_fixtures.py) load to the same tensors as their safetensors twins
// (written by the safetensors library), single or sharded; pickles that name anything but a
// float state dict's globals are refused before anything else is read; broken ZIPs are clear
// errors; `split` and a forward pass read .bin weights as they read safetensors.
import { afterAll, describe, expect, test } from "bun:test";
import { toArrayBuffer } from "bun:ffi";
import { closeSync, cpSync, existsSync, ftruncateSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { WeightFiles } from "../src/formats/model-files.ts";
import { SafetensorsFile, type TensorInfo } from "../src/formats/safetensors.ts";
import { TorchCheckpointFile } from "../src/formats/torch-checkpoint.ts";
import { AutoModel } from "../src/model/auto-model.ts";
import { splitModel } from "../src/split/split-model.ts";
import { expectFormatError } from "./expect-error.ts";
import { ROOT } from "./paths.ts";

const FIXTURES = join(ROOT, "test/fixtures/torch-bin");
const tmp = mkdtempSync(join(tmpdir(), "airllm-torch-bin-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const bytesOf = (t: TensorInfo) => Buffer.from(new Uint8Array(toArrayBuffer(t.addr, 0, t.bytes)));

describe("a torch.save'd state dict loads to the same tensors as its safetensors twin", () => {
  const twin = SafetensorsFile.open(join(FIXTURES, "twin/model.safetensors"));
  afterAll(() => twin.close());

  for (const dir of ["single", "sharded"]) {
    test(`${dir}: every tensor's dtype, shape and bytes (f32, f16, bf16; 0-d, 3-d, a view at an offset, a shared storage)`, () => {
      const files = WeightFiles.open(join(FIXTURES, dir));
      try {
        expect(files.files.map((f) => f.path.split("/").pop())).toEqual(dir === "single" ? ["pytorch_model.bin"] : ["pytorch_model-00001-of-00002.bin", "pytorch_model-00002-of-00002.bin"]);
        expect(files.names().sort()).toEqual(twin.names().sort());
        const dtypes = new Set<string>();
        for (const name of twin.names()) {
          const want = twin.get(name);
          const got = files.get(name);
          expect({ name, dtype: got.dtype, shape: got.shape }).toEqual({ name, dtype: want.dtype, shape: want.shape });
          expect(bytesOf(got).equals(bytesOf(want))).toBe(true);
          // The address is the file's own bytes (mapped, not copied): the same bytes at fileOffset.
          expect(readFileSync(got.file).subarray(got.fileOffset, got.fileOffset + got.bytes).equals(bytesOf(want))).toBe(true);
          dtypes.add(got.dtype);
        }
        expect([...dtypes].sort()).toEqual(["bf16", "f16", "f32"]);
        // Two names of one storage are one range of the file.
        expect(files.get("tied.a").fileOffset).toBe(files.get("tied.b").fileOffset);
        expect(files.get("view.offset").fileOffset - files.get("view.base").fileOffset).toBe(3 * 2);
        expect(files.get("scalar").shape).toEqual([]);
      } finally {
        files.close();
      }
    });
  }
});

test("ZIP64: records past 4 GiB (a sparse file: zipfile's records after a 4 GiB hole)", () => {
  const ref = JSON.parse(readFileSync(join(FIXTURES, "zip64/zip64.json"), "utf8")) as { hole_bytes: number; tensors: Record<string, number[]> };
  const tail = readFileSync(join(FIXTURES, "zip64/tail.bin"));
  const path = join(tmp, "zip64.bin");
  const fd = openSync(path, "w");
  try {
    ftruncateSync(fd, ref.hole_bytes);
    writeSync(fd, tail, 0, tail.length, ref.hole_bytes);
  } finally {
    closeSync(fd);
  }
  const file = TorchCheckpointFile.open(path);
  try {
    const w = file.get("w");
    const h = file.get("h");
    expect(w.fileOffset).toBeGreaterThan(2 ** 32);
    expect([w.dtype, w.shape, h.dtype, h.shape]).toEqual(["f32", [2, 3], "f16", [4]]);
    expect([...new Float32Array(toArrayBuffer(w.addr, 0, w.bytes))]).toEqual(ref.tensors.w!);
    expect([...new Uint16Array(toArrayBuffer(h.addr, 0, h.bytes))]).toEqual(ref.tensors.h!.map((x) => new Uint16Array(new Float16Array([x]).buffer)[0]!));
  } finally {
    file.close();
    rmSync(path);
  }
});

describe("pickles that are not a plain float state dict are refused, naming what they hold", () => {
  const refused = (name: string) => join(FIXTURES, "refused", name);
  const MARKER = "/tmp/airllm-pickle-payload-ran"; // what the payloads would create if they ran

  test("a __reduce__ payload calling os.system, and one calling exec: refused at the global, nothing run", () => {
    rmSync(MARKER, { force: true });
    expectFormatError(() => TorchCheckpointFile.open(refused("reduce-os-system.bin")), "reduce-os-system.bin", 'names the global "posix.system"', "torch._utils._rebuild_tensor_v2");
    expectFormatError(() => TorchCheckpointFile.open(refused("reduce-exec.bin")), 'names the global "__builtin__.exec"');
    expect(existsSync(MARKER)).toBe(false);
  });

  test("the global is refused before anything else is read: the same pickle without its storage record", () => {
    // Were the storages resolved first, this file would fail on its missing record instead.
    expect(readdirSync(FIXTURES + "/refused")).toContain("reduce-no-storage.bin");
    expectFormatError(() => TorchCheckpointFile.open(refused("reduce-no-storage.bin")), 'names the global "posix.system"');
  });

  test("other kinds of storage, non-contiguous tensors, the legacy format, compressed records", () => {
    expectFormatError(() => TorchCheckpointFile.open(refused("int64.bin")), '"torch.LongStorage"');
    expectFormatError(() => TorchCheckpointFile.open(refused("non-contiguous.bin")), 'tensor "model.w" is not contiguous', "stride [1, 4]");
    expectFormatError(() => TorchCheckpointFile.open(refused("legacy.bin")), "legacy torch.save format");
    expectFormatError(() => TorchCheckpointFile.open(refused("deflated.bin")), "is compressed (method 8)");
  });

  test("a pickle whose top object is not a dict of tensors", () => {
    expectFormatError(() => TorchCheckpointFile.open(refused("not-a-dict.bin")), "opcode 0x5d (EMPTY_LIST)");
  });
});

describe("truncated or corrupt archives are clear errors", () => {
  const good = readFileSync(join(FIXTURES, "single/pytorch_model.bin"));
  const write = (name: string, bytes: Uint8Array) => {
    const path = join(tmp, name);
    writeFileSync(path, bytes);
    return path;
  };

  test("cut short anywhere: no end record, or records past the end", () => {
    for (const keep of [0, 3, 100, good.length >> 1, good.length - 30, good.length - 1]) {
      const path = write(`cut-${keep}.bin`, good.subarray(0, keep));
      expectFormatError(() => TorchCheckpointFile.open(path), `cut-${keep}.bin`);
    }
    expectFormatError(() => TorchCheckpointFile.open(write("cut-half.bin", good.subarray(0, good.length >> 1))), "no end-of-central-directory record");
  });

  test("a flipped byte in data.pkl fails its CRC; a damaged central directory is named", () => {
    const pkl = good.indexOf(Buffer.from("data.pkl")) + "data.pkl".length + 40; // inside the pickle's bytes
    const flipped = Buffer.from(good);
    flipped[pkl] ^= 0xff;
    expectFormatError(() => TorchCheckpointFile.open(write("flipped.bin", flipped)), "fails its CRC check");
    const cd = good.lastIndexOf(Buffer.from([0x50, 0x4b, 0x01, 0x02]));
    const broken = Buffer.from(good);
    broken[cd] = 0;
    expectFormatError(() => TorchCheckpointFile.open(write("central.bin", broken)), "central directory entry");
  });

  test("a shard the index lists but the folder lacks", () => {
    const dir = join(tmp, "missing-shard");
    cpSync(join(FIXTURES, "sharded"), dir, { recursive: true });
    rmSync(join(dir, "pytorch_model-00002-of-00002.bin"));
    expectFormatError(() => WeightFiles.open(dir), "pytorch_model-00002-of-00002.bin", "does not exist");
  });
});

describe("a .bin model runs and splits like its safetensors original", () => {
  const BIN = join(FIXTURES, "llama-bin");
  const ORIGINAL = join(ROOT, "test/fixtures/hf/llama-f16");

  async function logits(dir: string): Promise<Float32Array> {
    const model = await AutoModel.from_pretrained(dir, { device: "cpu" });
    try {
      return model.forward([model.newSequence()], [[1, 40, 47, 26, 78]], { allLogits: true })[0]!;
    } finally {
      model.dispose();
    }
  }

  test("the same logits as the safetensors folder it was saved from", async () => {
    expect(await logits(BIN)).toEqual(await logits(ORIGINAL));
  });

  test("airllm split writes the same per-layer safetensors files from .bin shards", () => {
    const fromBin = splitModel(BIN, { outDir: join(tmp, "split-bin") });
    const fromSafetensors = splitModel(ORIGINAL, { outDir: join(tmp, "split-st") });
    const listing = readdirSync(fromBin.splitDir).filter((f) => f.endsWith(".safetensors")).sort();
    expect(listing).toEqual(readdirSync(fromSafetensors.splitDir).filter((f) => f.endsWith(".safetensors")).sort());
    expect(listing.length).toBeGreaterThan(3);
    for (const f of listing) expect(readFileSync(join(fromBin.splitDir, f)).equals(readFileSync(join(fromSafetensors.splitDir, f)))).toBe(true);
  });

  test("split --delete-original removes the .bin shards and their index, and the split runs", async () => {
    const dir = join(tmp, "delete-original");
    cpSync(BIN, dir, { recursive: true });
    const r = splitModel(dir, { deleteOriginal: true });
    expect(r.deleted.map((p) => p.split("/").pop()).sort()).toEqual(["pytorch_model-00001-of-00002.bin", "pytorch_model-00002-of-00002.bin", "pytorch_model.bin.index.json"]);
    expect(await logits(dir)).toEqual(await logits(ORIGINAL));
  });
});
