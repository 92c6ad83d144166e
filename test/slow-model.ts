// A random-weight Llama (12 layers, hidden 512, BF16, 100 MB) whose 512-token prefill pass takes
// over a second on one CPU thread: the model for tests that need a long pass or a slow reply.
// Written once into the temp folder and reused (writeRandomLlama skips a complete folder).
import { tmpdir } from "node:os";
import { join } from "node:path";
import { writeRandomLlama } from "../bench/random-model.ts";
import { STORIES_HF } from "./paths.ts";

export function slowModel(): string {
  const dir = join(tmpdir(), "airllm-test-slow-llama-12x512");
  writeRandomLlama(dir, { hidden: 512, intermediate: 2048, layers: 12, heads: 8, kvHeads: 8, dtype: "BF16" }, STORIES_HF);
  return dir;
}

/** Flags that make every pass slow and streamed: one thread, and a budget well under the weights. */
export const slowFlags = (budget = "32MiB") => ["--device", "cpu", "--threads", "1", "--max-memory", budget];
