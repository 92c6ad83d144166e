// The i-quant tables (codebooks, ksigns, the IQ4_NL levels) that zig-src/cpu/quant_iq_tables.zig
// builds from their definitions must equal PyPI gguf's, entry for entry. Each table is read back
// out of our dequantization: test/fixtures/gen_gguf_quant_fixtures.py made probe blocks whose
// 8- (or 4-) weight groups walk the table entry by entry with a known scale and positive signs
// (ksigns: entry 0 of the codebook, sign index i in group i), and recorded the sha256 of gguf-py's
// table as int8 values. Undoing the scale here gives our table; its hash must be gguf-py's.
import { afterAll, describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { createCpuBackend } from "../src/backend/cpu/index.ts";
import { QUANT_BLOCKS, type QuantDType } from "../src/backend/backend.ts";
import { ROOT } from "./paths.ts";

const DIR = resolve(ROOT, "test/fixtures/gguf-quant");
const be = createCpuBackend();
afterAll(() => be.destroy());

interface TableProbe {
  type: QuantDType;
  blocks: number;
  recover: "values" | "signs";
  entries: number;
  width: number;
  scale?: number;
  offset?: number;
  sha256: string;
}

const tables = (JSON.parse(readFileSync(resolve(DIR, "manifest.json"), "utf8")) as { tables: Record<string, TableProbe> }).tables;

function dequantizeProbe(name: string, t: TableProbe): Float32Array {
  const bytes = new Uint8Array(readFileSync(resolve(DIR, `${name}.probe.blocks`)));
  const { elements, bytes: blockBytes } = QUANT_BLOCKS[t.type];
  expect(bytes.byteLength).toBe(t.blocks * blockBytes);
  const padded = new Uint8Array(Math.ceil(bytes.byteLength / 4) * 4);
  padded.set(bytes);
  const src = be.alloc(padded.byteLength);
  be.write(src, new Int32Array(padded.buffer));
  const n = t.blocks * elements;
  const dst = be.alloc(n * 4);
  be.dequantize(dst, src, t.type, n);
  const out = new Float32Array(n);
  be.download(out, dst, n * 4);
  return out;
}

/** The table as int8 bytes, in entry order: what gguf-py's hash was taken of. */
function readBack(values: Float32Array, t: TableProbe): Uint8Array {
  if (t.recover === "signs") {
    return Uint8Array.from({ length: t.entries }, (_, e) => {
      let bits = 0;
      for (let k = 0; k < 8; k++) if (values[8 * e + k]! < 0) bits |= 1 << k;
      return bits;
    });
  }
  const n = t.entries * t.width;
  const levels = Float32Array.from(values.subarray(0, n), (v) => v / t.scale! - t.offset!);
  expect(levels.every((v) => Number.isInteger(v) && v >= -128 && v < 128)).toBe(true);
  return new Uint8Array(Int8Array.from(levels).buffer);
}

describe("i-quant tables built from their definitions equal gguf-py's", () => {
  test("every table has a probe", () => {
    expect(Object.keys(tables).sort()).toEqual(
      ["iq1s_grid", "iq2s_grid", "iq2xs_grid", "iq2xxs_grid", "iq3s_grid", "iq3xxs_grid", "ksigns_iq2xs", "kvalues_iq4nl"],
    );
  });

  for (const [name, t] of Object.entries(tables)) {
    test(`${name} (${t.entries} entries, read back through ${t.type})`, () => {
      const table = readBack(dequantizeProbe(name, t), t);
      expect(table.byteLength).toBe(t.entries * (t.recover === "signs" ? 1 : t.width));
      expect(createHash("sha256").update(table).digest("hex")).toBe(t.sha256);
    });
  }
});
