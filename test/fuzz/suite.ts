// The fuzz suite: every input reader's mutators, and how case n of a run with a seed is made.
// A new reader adds its family here; the weights say how often each family is drawn.
import type { Case, Family } from "./case.ts";
import { configFamily, generationConfigFamily } from "./mutate-config.ts";
import { envFamily } from "./env-cases.ts";
import { flagFamily } from "./mutate-flags.ts";
import { ggufFamily } from "./mutate-gguf.ts";
import { safetensorsFamily } from "./mutate-safetensors.ts";
import { tokenizerFamily } from "./mutate-tokenizer.ts";
import { torchBinFamily } from "./mutate-torch-bin.ts";
import { Rng } from "./rng.ts";

export const FAMILIES: readonly { readonly name: string; readonly weight: number; readonly make: Family }[] = [
  { name: "safetensors", weight: 3, make: safetensorsFamily },
  { name: "gguf", weight: 4, make: ggufFamily },
  { name: "config", weight: 3, make: configFamily },
  { name: "generation-config", weight: 1, make: generationConfigFamily },
  { name: "tokenizer", weight: 3, make: tokenizerFamily },
  { name: "torch-bin", weight: 1, make: torchBinFamily },
  { name: "flags", weight: 3, make: flagFamily },
  { name: "environment", weight: 1, make: envFamily },
];

const TOTAL = FAMILIES.reduce((a, f) => a + f.weight, 0);

/** Case `index` of the run with `seed`: the same two numbers always make the same case. */
export function makeCase(seed: number, index: number): Case {
  const rng = Rng.forCase(seed, index);
  let pick = rng.next() * TOTAL;
  const family = FAMILIES.find((f) => (pick -= f.weight) < 0) ?? FAMILIES[FAMILIES.length - 1]!;
  return { id: `${seed}/${index}`, family: family.name, ...family.make(rng, index) };
}
