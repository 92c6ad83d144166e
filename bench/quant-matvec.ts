// CPU decode matvec (T = 1) on a [4096, 4096] weight in BF16 and in GGUF quantized types:
// GB/s of weight bytes read beside a large memcpy (the ceiling: decode streams every weight once).
// Quantized weights are random blocks with small f16 scales (speed does not depend on values).
// With --tokens T > 1 the same weight multiplies T token rows (prefill); GGUF legacy and
// K-quant types, nf4 and q8_block quantize the activations to int8 unless --exact-activations.
//   bun bench/quant-matvec.ts [--threads N] [--rows 4096] [--cols 4096] [--types bf16,q4_k,iq1_s,...]
//                             [--tokens 1] [--exact-activations] [--json bench/results/NAME.json]
import { toArrayBuffer, type Pointer } from "bun:ffi";
import { writeFileSync } from "node:fs";
import { createCpuBackend } from "../src/backend/cpu/cpu-backend.ts";
import { isQuantized, tensorBytes, type DType } from "../src/backend/backend.ts";
import { setSmallScales } from "../src/backend/cuda/op-selftest.ts";

const arg = (name: string, dflt: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1]! : dflt;
};
const threads = process.argv.includes("--threads") ? Number(arg("threads", "0")) : undefined;
const rows = Number(arg("rows", "4096"));
const cols = Number(arg("cols", "4096"));
const types = arg("types", "bf16,q8_0,q4_k,q6_k,q4_0").split(",") as DType[];
const jsonPath = process.argv.includes("--json") ? arg("json", "") : null;
const T = Number(arg("tokens", "1"));
const exactActivations = process.argv.includes("--exact-activations");
const be = createCpuBackend({ threads, exactActivations });

function best(f: () => void, reps: number): number {
  let t = Infinity;
  for (let i = 0; i < reps; i++) {
    const s = Bun.nanoseconds();
    f();
    t = Math.min(t, (Bun.nanoseconds() - s) / 1e9);
  }
  return t;
}

const N = 1 << 28;
const a = be.alloc(N);
const b = be.alloc(N);
new Uint32Array(toArrayBuffer(a as Pointer, 0, N)).fill(0x3c003c00);
const copyGBs = (2 * N) / best(() => be.copy(b, a, N), 5) / 1e9;
be.free(a);
be.free(b);
console.log(`threads ${be.threads}; memcpy ${copyGBs.toFixed(1)} GB/s (read + write): the decode ceiling`);

const x = be.alloc(T * cols * 4);
new Float32Array(toArrayBuffer(x as Pointer, 0, T * cols * 4)).fill(0.5);
const out = be.alloc(T * rows * 4);
let seed = 7;
const rand = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32);
const results: { dtype: DType; bytes: number; ms: number; gbPerS: number; gweightsPerS: number; bitsPerWeight: number }[] = [];
// Weights are 4x the size of L2 and more: run over several copies so no pass finds them cached.
for (const dtype of types) {
  const bytes = tensorBytes(dtype, [rows, cols]);
  const copies = Math.max(1, Math.ceil((256 << 20) / bytes));
  const ws: number[] = [];
  for (let c = 0; c < copies; c++) {
    const w = be.alloc(bytes);
    const u8 = new Uint8Array(toArrayBuffer(w as Pointer, 0, bytes));
    for (let i = 0; i < bytes; i++) u8[i] = (i * 2654435761) >>> 24;
    if (isQuantized(dtype)) setSmallScales(u8, dtype, rand);
    ws.push(w);
  }
  let k = 0;
  const t = best(() => be.matmul(out, x, { addr: ws[k++ % copies]!, dtype, shape: [rows, cols] }, T), T > 1 ? 3 : 20);
  const r = { dtype, bytes, tokens: T, exactActivations, ms: t * 1e3, gbPerS: bytes / t / 1e9, gweightsPerS: (rows * cols) / t / 1e9, gmacsPerS: (T * rows * cols) / t / 1e9, bitsPerWeight: (8 * bytes) / (rows * cols) };
  results.push(r);
  console.log(`${dtype.padEnd(7)} [${rows}, ${cols}] T=${T} ${(bytes / 2 ** 20).toFixed(1)} MiB (${r.bitsPerWeight.toFixed(4)} bits/weight): ${r.ms.toFixed(3)} ms, ${r.gbPerS.toFixed(2)} GB/s, ${r.gmacsPerS.toFixed(2)} GMAC/s`);
  for (const w of ws) be.free(w);
}
if (jsonPath) writeFileSync(jsonPath, JSON.stringify({ threads: be.threads, rows, cols, tokens: T, exactActivations, memcpyGBs: copyGBs, results }, null, 2) + "\n");
be.destroy();
