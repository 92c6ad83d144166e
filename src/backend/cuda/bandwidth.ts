// Host → device copy bandwidth from pinned (cuMemAllocHost) and from pageable (an ordinary
// ArrayBuffer) memory: the two numbers that decide how fast layers stream (DESIGN.md: ≈ 50 GB/s
// pinned vs ≈ 9 GB/s pageable on PCIe Gen5). Timed with CUDA events where the driver has
// cuEventElapsedTime[_v2], otherwise with the host clock around a stream synchronize.
import { ptr } from "bun:ffi";
import { check, CU_EVENT_DEFAULT, CU_STREAM_NON_BLOCKING, OUT_A, OUT_F32, outA, PrimaryContext } from "./driver.ts";

export interface H2DBandwidth {
  readonly bytes: number;
  readonly iterations: number;
  /** GB/s = 1e9 bytes per second. */
  readonly pinnedGBs: number;
  readonly pageableGBs: number;
  readonly timer: "events" | "host";
}

export function measureH2D(bytes: number, opts: { iterations?: number; device?: number } = {}): H2DBandwidth {
  const iterations = opts.iterations ?? 5;
  const ctx = new PrimaryContext(opts.device ?? 0);
  const { drv, opt } = ctx;
  const elapsed = opt.cuEventElapsedTime_v2 ?? opt.cuEventElapsedTime;
  const handles: { dev?: number; pinned?: number; stream?: number; events: number[] } = { events: [] };
  try {
    check(drv.cuMemAlloc_v2(OUT_A, bytes), `cuMemAlloc_v2(${bytes} bytes)`);
    handles.dev = outA();
    check(drv.cuMemAllocHost_v2(OUT_A, bytes), `cuMemAllocHost_v2(${bytes} bytes)`);
    handles.pinned = outA();
    check(drv.cuStreamCreate(OUT_A, CU_STREAM_NON_BLOCKING), "cuStreamCreate");
    const stream = (handles.stream = outA());
    for (let i = 0; i < 2; i++) {
      check(drv.cuEventCreate(OUT_A, CU_EVENT_DEFAULT), "cuEventCreate");
      handles.events.push(outA());
    }
    const [start, stop] = handles.events;
    // The pageable source: one large ArrayBuffer, touched so its pages exist.
    const pageable = new Uint8Array(new ArrayBuffer(bytes)).fill(1);
    const pageableAddr = ptr(pageable);

    const time = (src: number): number => {
      const copy = (): void => check(drv.cuMemcpyHtoDAsync_v2(handles.dev!, src, bytes, stream), "cuMemcpyHtoDAsync_v2");
      copy(); // warm-up: first-touch and driver staging setup are not bandwidth
      check(drv.cuStreamSynchronize(stream), "cuStreamSynchronize");
      const t0 = performance.now();
      check(drv.cuEventRecord(start, stream), "cuEventRecord");
      for (let i = 0; i < iterations; i++) copy();
      check(drv.cuEventRecord(stop, stream), "cuEventRecord");
      check(drv.cuStreamSynchronize(stream), "cuStreamSynchronize");
      let ms = performance.now() - t0;
      if (elapsed) {
        check(elapsed(OUT_F32, start, stop), "cuEventElapsedTime");
        ms = OUT_F32[0];
      }
      return (bytes * iterations) / (ms * 1e6);
    };
    return {
      bytes,
      iterations,
      pinnedGBs: time(handles.pinned),
      pageableGBs: time(pageableAddr),
      timer: elapsed ? "events" : "host",
    };
  } finally {
    for (const e of handles.events) drv.cuEventDestroy_v2(e);
    if (handles.stream) drv.cuStreamDestroy_v2(handles.stream);
    if (handles.pinned) drv.cuMemFreeHost(handles.pinned);
    if (handles.dev) drv.cuMemFree_v2(handles.dev);
    ctx.release();
  }
}
