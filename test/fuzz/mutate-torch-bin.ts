// Mutations of a sharded PyTorch checkpoint (torch.save's ZIP, test/fixtures/torch-bin/llama-bin):
// the file cut short, its end-of-central-directory or a local header damaged, a pickle opcode or
// random bytes overwritten. Driven by ids through `logits` (the fixture has no tokenizer).
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { ROOT } from "../paths.ts";
import { commandArgs, modelFolder, type Expect, type Family } from "./case.ts";
import type { Rng } from "./rng.ts";

const BASE = join(ROOT, "test/fixtures/torch-bin/llama-bin");
const SHARD = "pytorch_model-00001-of-00002.bin";
const FILES = ["config.json", "generation_config.json", SHARD, "pytorch_model-00002-of-00002.bin", "pytorch_model.bin.index.json"];

let base: Uint8Array | undefined;
const shard = () => new Uint8Array((base ??= new Uint8Array(readFileSync(join(BASE, SHARD)))));

/** Where `needle` first occurs in `bytes`, or -1. */
function find(bytes: Uint8Array, needle: string): number {
  const n = new TextEncoder().encode(needle);
  outer: for (let i = 0; i + n.length <= bytes.length; i++) {
    for (let j = 0; j < n.length; j++) if (bytes[i + j] !== n[j]) continue outer;
    return i;
  }
  return -1;
}

const MUTATIONS: ((rng: Rng) => { what: string; expect: Expect; bytes: Uint8Array })[] = [
  (rng) => {
    const b = shard();
    const at = rng.int(0, b.length - 1);
    return { what: `shard cut to ${at} of ${b.length} bytes`, expect: "error", bytes: b.subarray(0, at) };
  },
  () => {
    const b = shard();
    b.fill(0, b.length - 22);
    return { what: "end-of-central-directory record zeroed", expect: "error", bytes: b };
  },
  (rng) => {
    const b = shard();
    // The first local header's signature, version, sizes or name length.
    const at = rng.int(0, 29);
    b[at] = b[at]! ^ (1 << rng.int(0, 7));
    return { what: `bit flipped in the first local header at byte ${at}`, expect: "either", bytes: b };
  },
  () => {
    const b = shard();
    // A global the restricted unpickler must refuse by name: torch._utils → os.system-like text.
    const at = find(b, "torch._utils");
    if (at >= 0) b.set(new TextEncoder().encode("posix\nsystem"), at);
    return { what: "the pickle's torch._utils global overwritten with posix system", expect: at >= 0 ? "error" : "either", bytes: b };
  },
  (rng) => {
    const b = shard();
    const at = rng.int(0, b.length - 16);
    for (let i = 0; i < 16; i++) b[at + i] = rng.int(0, 255);
    return { what: `16 random bytes at ${at}`, expect: "either", bytes: b };
  },
];

export const torchBinFamily: Family = (rng) => {
  const m = rng.pick(MUTATIONS)(rng);
  return {
    what: m.what,
    expect: m.expect,
    build: (dir) => ({ args: commandArgs("logits", modelFolder(dir, BASE, { [SHARD]: m.bytes }, FILES), dir) }),
  };
};
