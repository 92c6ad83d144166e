// `import { AutoModel } from "airllm"` from a Bun script: the package's own name resolves to the
// library entry (package.json "exports"), and the entry exposes the documented API.
import { expect, test } from "bun:test";
import { mkdtempSync, rmSync, symlinkSync, writeFileSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ROOT, STORIES_HF } from "./paths.ts";
import { storiesRef } from "./stories-reference.ts";

test("a script outside the repository imports AutoModel from \"airllm\" and generates", () => {
  const dir = mkdtempSync(join(tmpdir(), "airllm-user-"));
  try {
    mkdirSync(join(dir, "node_modules"));
    symlinkSync(ROOT, join(dir, "node_modules", "airllm")); // what `bun add file:…` or a workspace link gives
    writeFileSync(
      join(dir, "script.ts"),
      `import { AutoModel, WorkerModel } from "airllm";
       if (typeof WorkerModel.load !== "function") throw new Error("no WorkerModel");
       const model = await AutoModel.from_pretrained(${JSON.stringify(STORIES_HF)}, { device: "cpu" });
       const r = await model.generate("Once upon a time", { max_new_tokens: 8 });
       model.dispose();
       console.log(JSON.stringify(r.tokens));`,
    );
    const p = Bun.spawnSync([process.execPath, "script.ts"], { cwd: dir });
    expect(p.stderr.toString()).toBe("");
    expect(p.exitCode).toBe(0);
    // llama2.c's greedy run from <s> starts with "Once upon a time" (4 ids); greedy from that
    // prompt must continue with its next 8 ids.
    const ref = storiesRef().sequence_after_bos_prompt_then_greedy;
    expect(ref.slice(0, 4)).toEqual([403, 407, 261, 378]);
    expect(JSON.parse(p.stdout.toString())).toEqual(ref.slice(4, 12));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
