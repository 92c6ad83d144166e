// `airllm split`: AirLLM's per-layer layout, its resume after a crash, the disk-space refusal, and
// reading a split back (directly, or from a model folder whose originals were deleted).
import { afterAll, describe, expect, test } from "bun:test";
import { toArrayBuffer } from "bun:ffi";
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { writeRandomLlama } from "../bench/random-model.ts";
import { ModelFormatError, UsageError } from "../src/errors.ts";
import { SafetensorsFile } from "../src/formats/safetensors.ts";
import { openWeightFiles } from "../src/formats/model-files.ts";
import { AutoModel } from "../src/model/auto-model.ts";
import { splitModel } from "../src/split/split-model.ts";
import { ROOT, STORIES_HF } from "./paths.ts";

const TIED = join(ROOT, "test/fixtures/hf/llama-tied");
const temps: string[] = [];
const temp = () => {
  const d = mkdtempSync(join(tmpdir(), "airllm-split-"));
  temps.push(d);
  return d;
};
afterAll(() => {
  for (const d of temps) rmSync(d, { recursive: true, force: true });
});

const bytesOf = (t: { addr: number; bytes: number }) => Buffer.from(new Uint8Array(toArrayBuffer(t.addr, 0, t.bytes)));

async function logits(dir: string): Promise<Float32Array> {
  const model = await AutoModel.from_pretrained(dir, { device: "cpu" });
  try {
    return model.forward([model.newSequence()], [[1, 40, 47, 26, 78]], { allLogits: true })[0];
  } finally {
    model.dispose();
  }
}

describe("split layout", () => {
  for (const [label, src, files] of [
    ["stories260K", STORIES_HF, 8],
    ["tied llama", TIED, 0],
  ] as const) {
    test(`${label}: one file per plan entry, original tensor names and bytes, .done markers, config copied`, async () => {
      const out = temp();
      const progress: string[] = [];
      const r = splitModel(src, { outDir: out, onProgress: (p) => progress.push(`${p.done}/${p.total} ${p.name}`) });
      const dir = join(out, "splitted_model");
      expect(r.splitDir).toBe(dir);
      expect(r.reused).toBe(false);
      expect(r.writtenBytes).toBe(r.totalBytes);
      const layers = JSON.parse(readFileSync(join(src, "config.json"), "utf8")).num_hidden_layers as number;
      const stems = ["model.embed_tokens", ...Array.from({ length: layers }, (_, i) => `model.layers.${i}`), "model.norm", "lm_head"];
      if (files > 0) expect(stems.length).toBe(files);
      expect(progress).toEqual(stems.map((s, i) => `${i + 1}/${stems.length} ${s}`));
      const listing = readdirSync(dir);
      for (const s of stems) {
        expect(listing).toContain(`${s}.safetensors`);
        expect(statSync(join(dir, `${s}.safetensors.done`)).size).toBe(0);
      }
      expect(listing.filter((f) => f.endsWith(".tmp"))).toEqual([]);
      for (const f of ["config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json"]) {
        expect(existsSync(join(dir, f))).toBe(existsSync(join(src, f)));
        if (existsSync(join(src, f))) expect(readFileSync(join(dir, f))).toEqual(readFileSync(join(src, f)));
      }

      const orig = openWeightFiles(src);
      try {
        for (const s of stems) {
          const file = SafetensorsFile.open(join(dir, `${s}.safetensors`));
          try {
            for (const name of file.names()) {
              expect(name.startsWith(s === "lm_head" ? "lm_head." : `${s}.`)).toBe(true);
              // A tied model's lm_head.weight is a copy of the embedding.
              const from = orig.has(name) ? orig.get(name) : orig.get("model.embed_tokens.weight");
              const t = file.get(name);
              expect([t.dtype, t.shape]).toEqual([from.dtype, from.shape]);
              expect(bytesOf(t).equals(bytesOf(from))).toBe(true);
            }
          } finally {
            file.close();
          }
        }
      } finally {
        orig.close();
      }
      expect(await logits(dir)).toEqual(await logits(src));
    });
  }

  test("a complete split is reused without writing anything", () => {
    const out = temp();
    splitModel(STORIES_HF, { outDir: out });
    const dir = join(out, "splitted_model");
    const mtimes = () => readdirSync(dir).map((f) => [f, statSync(join(dir, f)).mtimeMs]);
    const before = mtimes();
    let calls = 0;
    const r = splitModel(STORIES_HF, { outDir: out, onProgress: () => calls++ });
    expect([r.reused, r.writtenBytes, calls]).toEqual([true, 0, 0]);
    expect(mtimes()).toEqual(before);
  });

  test("a split that does not fit is refused before anything is written", () => {
    const out = temp();
    const seen: string[] = [];
    const run = () => splitModel(STORIES_HF, { outDir: out, freeBytes: (d) => (seen.push(d), 1000) });
    expect(run).toThrow(UsageError);
    expect(run).toThrow(/needs 1\.\d MiB for 8 files but only 1000 B is free/);
    expect(seen[0]).toBe(out);
    expect(existsSync(join(out, "splitted_model"))).toBe(false);
  });

  test("--delete-original removes the weights after the split, and the model folder then runs from it", async () => {
    const model = temp();
    cpSync(TIED, model, { recursive: true });
    const expected = await logits(TIED);
    const r = splitModel(model, { deleteOriginal: true });
    expect(r.deleted).toEqual([join(model, "model.safetensors")]);
    expect(existsSync(join(model, "model.safetensors"))).toBe(false);
    expect(existsSync(join(model, "config.json"))).toBe(true);
    expect(await logits(model)).toEqual(expected);
    // Splitting again finds the complete split and has nothing to delete.
    expect(splitModel(model, { deleteOriginal: true })).toMatchObject({ reused: true, deleted: [] });
  });
});

describe("reading a damaged split", () => {
  const damaged = () => {
    const out = temp();
    splitModel(STORIES_HF, { outDir: out });
    return join(out, "splitted_model");
  };

  test("a .done beside a truncated file fails naming the file", () => {
    const dir = damaged();
    const file = join(dir, "model.layers.2.safetensors");
    truncateSync(file, statSync(file).size - 100);
    expect(() => openWeightFiles(dir)).toThrow(ModelFormatError);
    expect(() => openWeightFiles(dir)).toThrow(`safetensors "${file}"`);
  });

  test("a file without its .done fails naming the file, with a hint to rerun the split", () => {
    const dir = damaged();
    rmSync(join(dir, "model.layers.3.safetensors.done"));
    let error: unknown;
    try {
      openWeightFiles(dir);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ModelFormatError);
    expect((error as ModelFormatError).message).toContain(join(dir, "model.layers.3.safetensors"));
    expect((error as ModelFormatError).hint).toContain("airllm split");
  });
});

describe("resume after SIGKILL", () => {
  test("a split killed mid-way completes on the next run, byte-identical to an uninterrupted one", async () => {
    // ~200 MB: 8 layers of 25 MB, so the writer is still busy when the first marker appears.
    const model = temp();
    writeRandomLlama(model, { hidden: 1024, intermediate: 2816, layers: 8, heads: 8, kvHeads: 8, dtype: "BF16" }, STORIES_HF);
    const killedOut = temp();
    const child = Bun.spawn([process.execPath, join(ROOT, "src/cli/main.ts"), "split", model, "--out", killedOut], { stdout: "ignore", stderr: "ignore" });
    const first = join(killedOut, "splitted_model", "model.embed_tokens.safetensors.done");
    const deadline = Date.now() + 10_000;
    while (!existsSync(first) && Date.now() < deadline) await Bun.sleep(1);
    // Then, if we catch it, while layer 0 is half-written, so a partial .tmp is left behind too.
    const tmp = join(killedOut, "splitted_model", "model.layers.0.safetensors.tmp");
    const give = Date.now() + 200;
    while (!existsSync(tmp) && Date.now() < give) await Bun.sleep(1);
    child.kill("SIGKILL");
    await child.exited;
    const dir = join(killedOut, "splitted_model");
    const done = readdirSync(dir).filter((f) => f.endsWith(".done"));
    expect(done.length).toBeGreaterThan(0);
    expect(done.length).toBeLessThan(11); // interrupted mid-way, not finished

    const kept: string[] = [];
    const r = splitModel(model, { outDir: killedOut, onProgress: (p) => p.kept && kept.push(p.name) });
    expect(r.reused).toBe(false);
    expect(kept.length).toBe(done.length);
    const cleanOut = temp();
    splitModel(model, { outDir: cleanOut });
    const clean = join(cleanOut, "splitted_model");
    const names = readdirSync(clean).sort();
    expect(readdirSync(dir).sort()).toEqual(names);
    for (const f of names) expect(readFileSync(join(dir, f)).equals(readFileSync(join(clean, f)))).toBe(true);
  }, 20_000);
});

test("a split folder that cannot be written is a user error naming it, with the --out hint", () => {
  // A file where the split folder's parent should be: mkdir fails with ENOTDIR, as a read-only
  // or full disk would fail, and no stack trace or internal error reaches the user.
  const parent = mkdtempSync(join(tmpdir(), "airllm-split-ro-"));
  const blocker = join(parent, "not-a-dir");
  writeFileSync(blocker, "");
  try {
    let err: unknown;
    try {
      splitModel(STORIES_HF, { outDir: join(blocker, "out") });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(UsageError);
    expect((err as UsageError).message).toContain(blocker);
    expect((err as UsageError).hint).toContain("--out");
  } finally {
    rmSync(parent, { recursive: true, force: true });
  }
});
