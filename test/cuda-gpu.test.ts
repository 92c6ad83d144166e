// The CUDA backend on a real GPU, against the CPU backend as the reference. Runs only where
// probeCuda finds a usable GPU (CI has none; src/backend/cuda/op-selftest.ts is the same check
// the CLI offers on a GPU machine).
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { toArrayBuffer } from "bun:ffi";
import { createCpuBackend, type CpuBackend } from "../src/backend/cpu/cpu-backend.ts";
import { CudaBackend } from "../src/backend/cuda/cuda-backend.ts";
import { probeCuda } from "../src/backend/cuda/detect.ts";
import { runOpSelftest } from "../src/backend/cuda/op-selftest.ts";

const probe = probeCuda();

describe.if(probe.ok)("CUDA backend on the GPU", () => {
  let cpu: CpuBackend;
  let gpu: CudaBackend;
  beforeAll(() => {
    cpu = createCpuBackend({ threads: 2 });
    gpu = new CudaBackend();
  });
  afterAll(() => {
    gpu.destroy();
    cpu.destroy();
  });

  test("every op and dtype matches the CPU backend", () => {
    const results = runOpSelftest(cpu, gpu);
    const failed = results.filter((r) => !r.pass);
    expect(failed).toEqual([]);
    expect(results.length).toBeGreaterThanOrEqual(60);
  });

  test("write, copy and download round-trip; uploads order with events", () => {
    const n = 1000;
    const a = gpu.alloc(n * 4);
    const b = gpu.alloc(n * 4);
    const src = Float32Array.from({ length: n }, (_, i) => i * 0.5);
    gpu.write(a, src);
    gpu.copy(b, a, n * 4);
    const back = new Float32Array(n);
    gpu.download(back, b, n * 4);
    expect(back).toEqual(src);

    const host = gpu.allocHost(n * 4);
    const view = new Float32Array(toArrayBuffer(host as never, 0, n * 4));
    view.fill(3);
    gpu.upload(a, host, n * 4);
    const ev = gpu.record("upload");
    gpu.waitOn("compute", ev);
    gpu.add(b, a, a, n);
    const done = gpu.record("compute");
    gpu.waitHost(done);
    gpu.releaseEvent(ev);
    gpu.releaseEvent(done);
    gpu.download(back, b, n * 4);
    expect(back.every((v) => v === 6)).toBe(true);
    gpu.freeHost(host);
    gpu.free(a);
    gpu.free(b);
  });

  test("a small staging ring wraps and chunks without corrupting queued copies", () => {
    const small = new CudaBackend({ stagingBytes: 1024 });
    try {
      const n = 5000; // larger than the ring: written in pieces
      const dst = small.alloc(n * 4);
      const parts = Array.from({ length: 20 }, (_, k) => Int32Array.from({ length: 100 }, (_, i) => k * 1000 + i));
      const many = small.alloc(20 * 100 * 4);
      for (let k = 0; k < 20; k++) small.write(many + k * 400, parts[k]);
      const big = Int32Array.from({ length: n }, (_, i) => i * 7);
      small.write(dst, big);
      const back = new Uint8Array(n * 4);
      small.download(back, dst, n * 4);
      expect(new Int32Array(back.buffer)).toEqual(big);
      const back2 = new Uint8Array(20 * 400);
      small.download(back2, many, 20 * 400);
      expect([...new Int32Array(back2.buffer)]).toEqual(parts.flatMap((p) => [...p]));
    } finally {
      small.destroy();
      small.destroy();
    }
  });

  test("memInfo reports the device's memory", () => {
    const { free, total } = gpu.memInfo();
    expect(total).toBeGreaterThan(1e9);
    expect(free).toBeGreaterThan(0);
    expect(free).toBeLessThanOrEqual(total);
  });
});
