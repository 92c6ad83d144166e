// The CPU without a budget copies the weights into huge-page RAM at load when they fit
// (src/engine/host-copied-weights.ts); use_mmap (--mmap) reads the file mapping instead. Both give
// the same logits; only the mapped one sees bytes rewritten under it (size and mtime restored, so
// the between-pass file check cannot tell): the copies really are copies, and --mmap really maps.
import { afterAll, describe, expect, test } from "bun:test";
import { copyFileSync, mkdirSync, mkdtempSync, openSync, closeSync, rmSync, statSync, utimesSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AutoModel } from "../src/model/auto-model.ts";
import { STORIES_HF } from "./paths.ts";

const dir = mkdtempSync(join(tmpdir(), "airllm-copied-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A private copy of stories260K-hf with a fixed mtime (whole seconds: restorable exactly). */
function copyModel(name: string): string {
  const to = join(dir, name);
  mkdirSync(to);
  for (const f of ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "generation_config.json"]) copyFileSync(join(STORIES_HF, f), join(to, f));
  utimesSync(join(to, "model.safetensors"), 1_000_000_000, 1_000_000_000);
  return to;
}

/** Overwrites the second half of the weights file with a byte pattern, keeping size and mtime. */
function rewriteUnnoticed(path: string): void {
  const file = join(path, "model.safetensors");
  const size = statSync(file).size;
  const fd = openSync(file, "r+");
  try {
    writeSync(fd, new Uint8Array(Math.floor(size / 2)).fill(0x3c), 0, Math.floor(size / 2), size - Math.floor(size / 2));
  } finally {
    closeSync(fd);
  }
  utimesSync(file, 1_000_000_000, 1_000_000_000);
}

const PROMPT = [1, 403, 407, 261, 378];

async function lastLogits(path: string, useMmap: boolean, rewrite: boolean): Promise<Float32Array> {
  const model = await AutoModel.from_pretrained(path, { device: "cpu", max_seq_len: 16, use_mmap: useMmap || undefined });
  try {
    const seq = model.newSequence();
    model.forward([seq], [PROMPT.slice(0, 3)]);
    if (rewrite) rewriteUnnoticed(path);
    return model.forward([seq], [PROMPT.slice(3)])[0]!;
  } finally {
    model.dispose();
  }
}

describe("CPU weights without a budget", () => {
  test("copied (default) and mapped (use_mmap) give the same logits", async () => {
    const path = copyModel("same");
    const copied = await lastLogits(path, false, false);
    const mapped = await lastLogits(path, true, false);
    expect(copied.length).toBe(512);
    expect(Array.from(copied)).toEqual(Array.from(mapped));
  });

  test("default: the weights are copies (bytes rewritten under the model change nothing)", async () => {
    const want = await lastLogits(copyModel("copied-ref"), false, false);
    const got = await lastLogits(copyModel("copied"), false, true);
    expect(Array.from(got)).toEqual(Array.from(want));
  });

  test("use_mmap: the file mapping is read (the same rewrite changes the logits)", async () => {
    const want = await lastLogits(copyModel("mapped-ref"), true, false);
    const got = await lastLogits(copyModel("mapped"), true, true);
    expect(Array.from(got)).not.toEqual(Array.from(want));
  });
});
