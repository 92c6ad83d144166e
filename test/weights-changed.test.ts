// Issue 17, group 15: a weights file truncated or rewritten while a model is loaded. The mapped
// path (use_mmap) would die of SIGBUS reading past the new end; the files are checked before every
// pass, so the next pass is a clean error instead (a truncation during a pass cannot be caught:
// README). Weights copied at load (the CPU default) are refused the same way: the model is no
// longer the file's.
import { afterAll, describe, expect, test } from "bun:test";
import { copyFileSync, mkdtempSync, rmSync, truncateSync, utimesSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ModelFormatError } from "../src/errors.ts";
import { AutoModel } from "../src/model/auto-model.ts";
import { STORIES_HF } from "./paths.ts";

const dir = mkdtempSync(join(tmpdir(), "airllm-changed-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function copyModel(name: string): string {
  const to = join(dir, name);
  Bun.spawnSync(["mkdir", "-p", to]);
  for (const f of ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "generation_config.json"]) copyFileSync(join(STORIES_HF, f), join(to, f));
  return to;
}

describe("weights changed under a loaded model", () => {
  const cases = [
    { name: "copied at load", opts: {} },
    { name: "mapped", opts: { use_mmap: true } },
    { name: "streamed from disk", opts: { max_memory: "1MiB" } },
  ];
  for (const { name, opts } of cases) {
    test(`truncated between passes (${name}): the next pass is a ModelFormatError naming the file`, async () => {
      const path = copyModel(`trunc-${name.replaceAll(" ", "-")}`);
      const model = await AutoModel.from_pretrained(path, { device: "cpu", ...opts, max_seq_len: 16 });
      try {
        const seq = model.newSequence();
        model.forward([seq], [[1, 403]]);
        truncateSync(join(path, "model.safetensors"), 500_000);
        let err: unknown;
        try {
          model.forward([seq], [[407]]);
        } catch (e) {
          err = e;
        }
        expect(err).toBeInstanceOf(ModelFormatError);
        expect((err as Error).message).toMatch(/model\.safetensors" changed while the model was loaded \(1044984 bytes when mapped, 500000 now\)/);
      } finally {
        model.dispose();
      }
    });
  }

  test("rewritten in place (same size, new mtime): refused too", async () => {
    const path = copyModel("rewritten");
    const model = await AutoModel.from_pretrained(path, { device: "cpu", max_seq_len: 16 });
    try {
      const seq = model.newSequence();
      model.forward([seq], [[1]]);
      utimesSync(join(path, "model.safetensors"), new Date(), new Date(Date.now() + 5000));
      expect(() => model.forward([seq], [[403]])).toThrow(/changed while the model was loaded .*rewritten in place/);
    } finally {
      model.dispose();
    }
  });
});
