// CUDA kernel benchmark (llm.c style: a number beside its ceiling). Decode matvec and decode
// attention (paged, f16 and f32 caches) report GB/s of bytes read next to the device-to-device copy bandwidth (read +
// write counted); prefill matmul reports TFLOP/s. Also host → device upload GB/s, pinned and
// pageable. Weights that fit the 50 MB L2 of an H100 can read faster than HBM when repeated.
// Needs a GPU:   bun bench/cuda-kernels.ts
import type { DType } from "../src/backend/backend.ts";
import { measureH2D } from "../src/backend/cuda/bandwidth.ts";
import { CudaBackend } from "../src/backend/cuda/cuda-backend.ts";

const gpu = new CudaBackend();
const line = (s: string): void => console.log(s);
line(`device: ${gpu.device.name} (sm_${gpu.device.ccMajor}${gpu.device.ccMinor}, ${gpu.device.multiprocessors} SMs)`);

/** Seconds per call of `fn`: calls queued back to back, one sync, best of 3 rounds. */
function time(fn: () => void, iters: number): number {
  for (let i = 0; i < 3; i++) fn();
  gpu.sync();
  let best = Infinity;
  for (let round = 0; round < 3; round++) {
    const t0 = performance.now();
    for (let i = 0; i < iters; i++) fn();
    gpu.sync();
    best = Math.min(best, (performance.now() - t0) / 1e3 / iters);
  }
  return best;
}

const GB = 1e9;
const big = 1 << 30;
const a = gpu.alloc(big);
const b = gpu.alloc(big);
const copyGBs = (2 * big) / time(() => gpu.copy(b, a, big), 10) / GB;
line(`device copy: ${copyGBs.toFixed(0)} GB/s (read + write): the ceiling for decode`);

const BYTES: Record<string, number> = { f32: 4, f16: 2, bf16: 2 };
const x = gpu.alloc(64 << 20);
const out = gpu.alloc(64 << 20);
for (const [rows, cols] of [[4096, 4096], [14336, 4096], [4096, 14336], [128256, 4096]]) {
  for (const dtype of ["bf16", "f16", "f32"] as DType[]) {
    if (rows * cols * BYTES[dtype] > big) continue;
    const w = { addr: a, dtype, shape: [rows, cols] };
    for (const T of [1, 4]) {
      const s = time(() => gpu.matmul(out, x, w, T), 50);
      const gbs = (rows * cols * BYTES[dtype]) / s / GB;
      line(`matvec T=${T} ${dtype} [${rows},${cols}]: ${(s * 1e6).toFixed(1)} us, ${gbs.toFixed(0)} GB/s of weights (${((100 * gbs) / copyGBs).toFixed(0)}% of copy)`);
    }
  }
}

for (const [T, rows, cols] of [[512, 4096, 4096], [2048, 4096, 4096], [2048, 14336, 4096]]) {
  for (const dtype of ["bf16", "f16", "f32"] as DType[]) {
    if (T * cols * 4 > 64 << 20 || T * rows * 4 > 64 << 20) continue;
    const w = { addr: a, dtype, shape: [rows, cols] };
    const s = time(() => gpu.matmul(out, x, w, T), 10);
    line(`matmul T=${T} ${dtype} [${rows},${cols}]: ${(s * 1e3).toFixed(2)} ms, ${((2 * T * rows * cols) / s / 1e12).toFixed(1)} TFLOP/s`);
  }
}

// Paged KV (16-token pages, in order: the page walk, not the scatter, is what is timed) in the
// two cache dtypes: f16 should read half the bytes in about half the time.
const PAGE = 16;
const table = gpu.alloc((32768 / PAGE) * 4);
gpu.write(table, Int32Array.from({ length: 32768 / PAGE }, (_, i) => i));
for (const dtype of ["f16", "f32"] as const) {
  const kv = { k: a, v: b, dtype, pageSize: PAGE, pageTable: table };
  for (const pos0 of [1023, 8191, 32767]) {
    const shape = { T: 1, nHeads: 32, nKvHeads: 8, headDim: 128, pos0, window: 0, scale: 1 / Math.sqrt(128) };
    const kvBytes = 2 * (pos0 + 1) * 8 * 128 * BYTES[dtype];
    const s = time(() => gpu.attention(out, x, kv, shape), 50);
    line(`attention decode ${dtype} pos=${pos0} 32/8 heads hd=128: ${(s * 1e6).toFixed(1)} us, ${(kvBytes / s / GB).toFixed(0)} GB/s of KV cache`);
  }
  const s = time(() => gpu.attention(out, x, kv, { T: 512, nHeads: 32, nKvHeads: 8, headDim: 128, pos0: 0, window: 0, scale: 0.088 }), 5);
  line(`attention prefill ${dtype} T=512 32/8 heads hd=128: ${(s * 1e3).toFixed(2)} ms`);
}
gpu.destroy();

const h2d = measureH2D(256 << 20);
line(`upload 256 MiB: pinned ${h2d.pinnedGBs.toFixed(1)} GB/s, pageable ${h2d.pageableGBs.toFixed(1)} GB/s (timed by ${h2d.timer})`);
