// CPU decode attention (T = 1) over a 4096-token context, Llama-3-8B head layout (32 heads,
// 8 KV heads, head dim 128): GB/s of K and V bytes read, beside this machine's memcpy (the
// ceiling: decode attention reads every stored key and value once). f32 in one contiguous page
// (the layout of an unpaged cache) against f16 and bf16 in pages of 16 tokens spread over the
// pool by a shuffled page table, as the KV pool hands them out.
// "in cache" is the same work from a 256-token cache that stays in L2/L3, scaled to the context:
// the compute floor. When it is close to "ms", the kernel is compute bound, not memory bound.
//   bun bench/attention-kv.ts [--threads N] [--context 4096] [--runs 15]
import { toArrayBuffer, type Pointer } from "bun:ffi";
import { createCpuBackend } from "../src/backend/cpu/cpu-backend.ts";
import { DTYPE_BYTES, type KvDType, type PagedKv } from "../src/backend/backend.ts";

const arg = (name: string, dflt: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1]! : dflt;
};
const threads = process.argv.includes("--threads") ? Number(arg("threads", "0")) : undefined;
const context = Number(arg("context", "4096"));
const runs = Number(arg("runs", "15"));
const nHeads = 32, nKvHeads = 8, headDim = 128;
const width = nKvHeads * headDim;
const small = 256;
const be = createCpuBackend({ threads });

function median(f: () => void, reps: number): number {
  const ts: number[] = [];
  for (let i = 0; i < reps; i++) {
    const s = Bun.nanoseconds();
    f();
    ts.push((Bun.nanoseconds() - s) / 1e9);
  }
  return ts.sort((a, b) => a - b)[reps >> 1]!;
}

function fill(addr: number, n: number, seed: number): void {
  const f = new Float32Array(toArrayBuffer(addr as Pointer, 0, n * 4));
  let a = seed >>> 0;
  for (let i = 0; i < n; i++) {
    a = (Math.imul(a, 1664525) + 1013904223) >>> 0;
    f[i] = a / 2 ** 31 - 1;
  }
}

const N = 1 << 28;
const a = be.alloc(N);
const b = be.alloc(N);
fill(a, N / 4, 1); // real data: an untouched source maps the zero page and reads from cache
be.copy(b, a, N);
const copyGBs = (2 * N) / median(() => be.copy(b, a, N), 9) / 1e9;
be.free(a);
be.free(b);

const q = be.alloc(nHeads * headDim * 4);
fill(q, nHeads * headDim, 2);
const out = be.alloc(nHeads * headDim * 4);
const rows = be.alloc(context * width * 4); // f32 keys and values to store, refilled per cache

/** `copies` caches of `tokens` positions ("layers"); pages in a shuffled order, or one page. */
function caches(dtype: KvDType, pageSize: number, tokens: number, copies: number): { kvs: PagedKv[]; free: () => void } {
  const pages = Math.ceil(tokens / pageSize);
  const poolBytes = pages * pageSize * width * DTYPE_BYTES[dtype];
  const pageTable = be.alloc(pages * 4);
  const table = new Int32Array(toArrayBuffer(pageTable as Pointer, 0, pages * 4));
  table.forEach((_, i) => (table[i] = i));
  for (let i = pages - 1; i > 0; i--) {
    const j = Math.floor((((i * 2654435761) >>> 0) / 2 ** 32) * (i + 1));
    [table[i], table[j]] = [table[j]!, table[i]!];
  }
  const kvs: PagedKv[] = [];
  for (let c = 0; c < copies; c++) {
    const kv = { k: be.alloc(poolBytes), v: be.alloc(poolBytes), dtype, pageSize, pageTable };
    fill(rows, tokens * width, 10 + c);
    be.storeKv(kv, rows, rows, 0, tokens, width);
    kvs.push(kv);
  }
  const free = () => {
    for (const kv of kvs) be.free(kv.k), be.free(kv.v);
    be.free(pageTable);
  };
  return { kvs, free };
}

/** Median seconds of a decode step at the last of `tokens` positions, cycling through the caches. */
function time(dtype: KvDType, pageSize: number, tokens: number, copies: number): number {
  const { kvs, free } = caches(dtype, Math.min(pageSize, tokens), tokens, copies);
  const shape = { T: 1, nHeads, nKvHeads, headDim, pos0: tokens - 1, window: 0, scale: 1 / Math.sqrt(headDim) };
  let c = 0;
  be.attention(out, q, kvs[0]!, shape);
  const t = median(() => be.attention(out, q, kvs[c++ % kvs.length]!, shape), runs);
  free();
  return t;
}

console.log(`threads ${be.threads}; memcpy ${copyGBs.toFixed(1)} GB/s (read + write): the ceiling`);
console.log(`decode attention, context ${context}, ${nHeads} heads / ${nKvHeads} KV heads × ${headDim}, median of ${runs}`);
console.log("kv     page   MiB read   ms       GB/s   % of memcpy   in cache ms");
for (const [dtype, pageSize] of [["f32", context], ["f16", 16], ["bf16", 16], ["f32", 16], ["f16", context]] as [KvDType, number][]) {
  const read = 2 * context * width * DTYPE_BYTES[dtype];
  // Enough copies that each call finds its own cache out of L3 (256 MiB in all).
  const t = time(dtype, pageSize, context, Math.max(2, Math.ceil((256 << 20) / read)));
  const floor = (time(dtype, pageSize, small, 1) * context) / small;
  const gbs = read / t / 1e9;
  console.log(
    `${dtype.padEnd(6)} ${String(pageSize >= context ? "one" : pageSize).padEnd(6)} ${(read / 2 ** 20).toFixed(1).padStart(8)}` +
      `   ${(t * 1e3).toFixed(3).padEnd(8)} ${gbs.toFixed(1).padStart(5)}   ${((100 * gbs) / copyGBs).toFixed(0).padStart(6)}%      ${(floor * 1e3).toFixed(3)}`,
  );
}
be.destroy();
