// The models the speculative-decoding tests share: stories260K alone, drafting for itself, and
// with a random Llama of its vocabulary as the draft (shares the vocabulary but not much else).
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { writeRandomLlama } from "../bench/random-model.ts";
import { AutoModel, type CausalLM } from "../src/index.ts";
import { STORIES_HF } from "./paths.ts";

export interface SpeculationModels {
  /** No draft model; 8 requests at once. */
  readonly plain: CausalLM;
  /** The model itself as the draft; `parallel` requests at once. */
  readonly withSelf: CausalLM;
  /** A random draft; 8 requests at once. */
  readonly withOther: CausalLM;
  dispose(): void;
}

export async function loadSpeculationModels(o: { readonly selfParallel?: number; readonly seed: number }): Promise<SpeculationModels> {
  const work = mkdtempSync(join(tmpdir(), "airllm-spec-"));
  const other = join(work, "random-draft");
  writeRandomLlama(other, { hidden: 64, intermediate: 128, layers: 2, heads: 4, kvHeads: 4, dtype: "F32", seed: o.seed }, STORIES_HF);
  const base = { device: "cpu", max_seq_len: 256 } as const;
  const plain = await AutoModel.from_pretrained(STORIES_HF, { ...base, parallel: 8 });
  const withSelf = await AutoModel.from_pretrained(STORIES_HF, { ...base, draft_model: STORIES_HF, ...(o.selfParallel ? { parallel: o.selfParallel } : {}) });
  const withOther = await AutoModel.from_pretrained(STORIES_HF, { ...base, draft_model: other, parallel: 8 });
  return {
    plain,
    withSelf,
    withOther,
    dispose() {
      for (const m of [plain, withSelf, withOther]) m.dispose();
      rmSync(work, { recursive: true, force: true });
    },
  };
}
