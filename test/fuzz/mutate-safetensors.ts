// Mutations of stories260K's model.safetensors: the header length, the header's JSON (names,
// dtypes, shapes, offsets, extra and missing tensors, metadata), the data (NaN, Inf, flipped
// bits) and the file's length. Each says whether a correct reader must refuse it.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { BASES, commandArgs, modelFolder, pickCommand, type Command, type Expect, type Family } from "./case.ts";
import type { Rng } from "./rng.ts";
import { parseSafetensors, tensorRange, writeSafetensors, type SafetensorsParts } from "./safetensors-bytes.ts";
import { hostileNames } from "./values.ts";

let base: Uint8Array | undefined;
const baseBytes = () => (base ??= new Uint8Array(readFileSync(join(BASES.hf, "model.safetensors"))));
const fresh = (): SafetensorsParts => parseSafetensors(baseBytes());

/** Tensors every pass reads whatever the prompt: damage to them must show. */
const ALWAYS_READ = ["model.norm.weight", "model.layers.0.input_layernorm.weight", "model.layers.2.self_attn.q_proj.weight", "model.layers.4.mlp.down_proj.weight"];

interface Mutation {
  what: string;
  expect: Expect;
  hugeCount?: boolean;
  /** Damage only a pass over the weights can see (split copies them without computing). */
  inData?: boolean;
  /** Damage to one embedding row: seen by run and logits (BOS is row 1), maybe not by bench's random ids. */
  inRow?: boolean;
  bytes: Uint8Array;
}

function names(p: SafetensorsParts): string[] {
  return Object.keys(p.header).filter((k) => k !== "__metadata__");
}

function setF32(p: SafetensorsParts, name: string, element: number, v: number): void {
  const [b] = tensorRange(p, name);
  new DataView(p.data.buffer, p.data.byteOffset).setFloat32(b + element * 4, v, true);
}

const MUTATIONS: ((rng: Rng) => Mutation)[] = [
  (rng) => {
    const delta = rng.pick([-1n, 1n, -8n, 8n, 2n ** 63n, -1000000n, 2n ** 64n - 1n]);
    return { what: `header length off by ${delta}`, expect: "error", hugeCount: delta > 1000n, bytes: writeSafetensors(fresh(), { lengthDelta: delta }) };
  },
  (rng) => {
    const p = fresh();
    const name = rng.pick(names(p));
    delete p.header[name];
    return { what: `tensor ${name} dropped from the header (its bytes left in place)`, expect: "error", bytes: writeSafetensors(p) };
  },
  (rng) => {
    const p = fresh();
    const name = rng.pick(names(p));
    const hostile = rng.pick(hostileNames());
    p.header[hostile.name] = p.header[name];
    delete p.header[name];
    return { what: `tensor ${name} renamed to ${hostile.what}`, expect: "error", hugeCount: hostile.huge, bytes: writeSafetensors(p) };
  },
  (rng) => {
    const p = fresh();
    const name = rng.pick(names(p));
    const dtype = rng.pick(["F16", "BF16", "I64", "U8", "Q4_K", "toString", "", 5, null, "F32\u001b[2J"]);
    p.header[name].dtype = dtype;
    return { what: `tensor ${name} dtype ${JSON.stringify(dtype)}`, expect: "error", bytes: writeSafetensors(p) };
  },
  (rng) => {
    const p = fresh();
    const name = rng.pick(names(p));
    const shape: number[] = p.header[name].shape;
    const choice = rng.pick(["grow", "transpose", "scalar", "negative", "huge", "overflow", "string"]);
    const next =
      choice === "grow" ? [shape[0]! + 1, ...shape.slice(1)]
      : choice === "transpose" ? [...shape].reverse()
      : choice === "scalar" ? []
      : choice === "negative" ? [-1, ...shape.slice(1)]
      : choice === "huge" ? [1e20, ...shape.slice(1)]
      : choice === "overflow" ? [2 ** 40, 2 ** 40]
      : ["64"];
    p.header[name].shape = next;
    // A transposed vector is itself: only a real change must be refused.
    const same = JSON.stringify(next) === JSON.stringify(shape);
    return { what: `tensor ${name} shape ${JSON.stringify(next)} (was ${JSON.stringify(shape)})`, expect: same ? "ok" : "error", hugeCount: choice === "huge" || choice === "overflow", bytes: writeSafetensors(p) };
  },
  (rng) => {
    const p = fresh();
    const all = names(p);
    const name = rng.pick(all);
    const [b, e] = p.header[name].data_offsets;
    const other = p.header[rng.pick(all.filter((n) => n !== name))].data_offsets;
    const choice = rng.pick(["shift", "overlap", "reversed", "far", "float"]);
    p.header[name].data_offsets =
      choice === "shift" ? [b + 4, e + 4]
      : choice === "overlap" ? [...other]
      : choice === "reversed" ? [e, b]
      : choice === "far" ? [0, 2 ** 60]
      : [b + 0.5, e];
    return { what: `tensor ${name} data_offsets ${choice}`, expect: "error", hugeCount: choice === "far", bytes: writeSafetensors(p) };
  },
  () => {
    // A sixth layer's tensor beside a 5-layer config: not part of the model.
    const p = fresh();
    const extra = "model.layers.5.input_layernorm.weight";
    const n = p.data.length;
    p.header[extra] = { dtype: "F32", shape: [64], data_offsets: [n, n + 256] };
    const data = new Uint8Array(n + 256);
    data.set(p.data);
    p.data = data;
    return { what: `an extra tensor ${extra} (a layer the config does not have)`, expect: "error", bytes: writeSafetensors(p) };
  },
  (rng) => {
    const p = fresh();
    const meta = rng.pick<unknown>([5, [], null, { format: "np" }, { "airllm.dtype.model.norm.weight": "nf4" }, { "\u001b]52;c;aGk=\u0007": "x" }]);
    p.header.__metadata__ = meta;
    return { what: `__metadata__ ${JSON.stringify(meta)}`, expect: "either", bytes: writeSafetensors(p) };
  },
  (rng) => {
    const choice = rng.pick(["not JSON", "array", "null", "deep nesting", "huge string"]);
    const text =
      choice === "not JSON" ? "{ this is not json"
      : choice === "array" ? "[1, 2, 3]"
      : choice === "null" ? "null"
      : choice === "deep nesting" ? "[".repeat(100_000) + "]".repeat(100_000)
      : JSON.stringify({ x: "\u0000".repeat(1_000_000) });
    return { what: `header ${choice}`, expect: "error", hugeCount: choice === "deep nesting" || choice === "huge string", bytes: writeSafetensors(fresh(), { headerText: text }) };
  },
  (rng) => {
    const p = fresh();
    const name = rng.pick(ALWAYS_READ);
    const v = rng.pick([NaN, Infinity, -Infinity]);
    setF32(p, name, rng.int(0, 63), v);
    return { what: `${v} in ${name}`, expect: "error", inData: true, bytes: writeSafetensors(p) };
  },
  (rng) => {
    // Row 1 is BOS, fed first by every prompt; rows past 500 are read only if generated.
    const p = fresh();
    const row = rng.pick([1, 1, 505]);
    setF32(p, "model.embed_tokens.weight", row * 64 + rng.int(0, 63), NaN);
    return { what: `NaN in embedding row ${row}`, expect: row === 1 ? "error" : "either", inData: true, inRow: true, bytes: writeSafetensors(p) };
  },
  (rng) => {
    const p = fresh();
    const name = rng.pick(ALWAYS_READ);
    setF32(p, name, rng.int(0, 63), rng.pick([3e38, -3e38, 1e30]));
    return { what: `a huge finite weight in ${name}`, expect: "either", bytes: writeSafetensors(p) };
  },
  (rng) => {
    const b = baseBytes();
    const cut = rng.pick([0, 4, 8, 100, 4856, b.length - 1, rng.int(9, b.length - 1)]);
    return { what: `file truncated to ${cut} bytes`, expect: "error", bytes: b.slice(0, cut) };
  },
  (rng) => {
    const b = baseBytes();
    const extra = rng.pick([1, 7, 64, 4096]);
    const out = new Uint8Array(b.length + extra);
    out.set(b);
    return { what: `${extra} bytes appended`, expect: "error", bytes: out };
  },
  (rng) => {
    const out = Uint8Array.from(baseBytes());
    const flips = rng.int(1, 16);
    for (let i = 0; i < flips; i++) out[rng.int(4856, out.length - 1)]! ^= 1 << rng.int(0, 7);
    return { what: `${flips} bits flipped in the data`, expect: "either", bytes: out };
  },
  (rng) => {
    const out = Uint8Array.from(baseBytes());
    const flips = rng.int(1, 4);
    for (let i = 0; i < flips; i++) out[rng.int(0, 4855)]! ^= 1 << rng.int(0, 7);
    return { what: `${flips} bits flipped in the header`, expect: "either", bytes: out };
  },
];

/** What `command` must do with mutation `m`. */
function expectFor(m: Mutation, command: Command): Expect {
  if (m.expect !== "error") return m.expect;
  if (m.inData && command === "split") return "either";
  if (m.inRow && command === "bench") return "either";
  return "error";
}

export const safetensorsFamily: Family = (rng) => {
  const m = rng.pick(MUTATIONS)(rng);
  const command = pickCommand(rng, { split: true });
  return {
    what: `${command}: ${m.what}`,
    expect: expectFor(m, command),
    hugeCount: m.hugeCount,
    build(dir) {
      return { args: commandArgs(command, modelFolder(dir, BASES.hf, { "model.safetensors": m.bytes }), dir) };
    },
  };
};
