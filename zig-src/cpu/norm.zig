//! RMSNorm as Hugging Face LlamaRMSNorm computes it in f32: y = (x * rsqrt(mean(x²) + eps)) * w.
const std = @import("std");
const DType = @import("../dtype.zig").DType;
const pool = @import("thread_pool.zig");
const cv = @import("convert.zig");
const V = cv.V;
const lanes = cv.lanes;

const Args = struct { out: [*]f32, x: [*]const f32, w: usize, dt: DType, n: usize, eps: f32 };

fn row(comptime dt: DType, a: *const Args, t: usize) void {
    const x = a.x + t * a.n;
    const out = a.out + t * a.n;
    const w = cv.at(dt, a.w);
    var acc0: V = @splat(0);
    var acc1: V = @splat(0);
    var i: usize = 0;
    while (i + 2 * lanes <= a.n) : (i += 2 * lanes) {
        const v0 = cv.loadF32(x, i);
        const v1 = cv.loadF32(x, i + lanes);
        acc0 = @mulAdd(V, v0, v0, acc0);
        acc1 = @mulAdd(V, v1, v1, acc1);
    }
    var ss = @reduce(.Add, acc0 + acc1);
    while (i < a.n) : (i += 1) ss = @mulAdd(f32, x[i], x[i], ss);
    const scale = 1.0 / @sqrt(ss / @as(f32, @floatFromInt(a.n)) + a.eps);
    // Reading x[i] before writing out[i] keeps out == x (in place) correct.
    i = 0;
    const sv: V = @splat(scale);
    while (i + lanes <= a.n) : (i += lanes) cv.storeF32(out, i, cv.loadF32(x, i) * sv * cv.load8(dt, w, i));
    while (i < a.n) : (i += 1) out[i] = x[i] * scale * cv.load1(dt, w, i);
}

fn rows(a: *const Args, lo: usize, hi: usize) void {
    switch (a.dt) {
        inline .f32, .f16, .bf16 => |dt| for (lo..hi) |t| row(dt, a, t),
        else => unreachable, // api.zig refuses quantized norm weights
    }
}

pub fn rmsnorm(out: [*]f32, x: [*]const f32, w: usize, dt: DType, n: usize, T: usize, eps: f32) void {
    if (n == 0) return;
    const a = Args{ .out = out, .x = x, .w = w, .dt = dt, .n = n, .eps = eps };
    pool.forRange(T, @max(1, (1 << 15) / n), 1, &a, rows);
}

const RowNormArgs = struct { out: [*]f32, src: usize, dt: DType, cols: usize };

fn rowNormRange(a: *const RowNormArgs, lo: usize, hi: usize) void {
    switch (a.dt) {
        inline .f32, .f16, .bf16 => |dt| for (lo..hi) |r| {
            const w = cv.at(dt, a.src) + r * a.cols;
            var ss: f64 = 0;
            for (0..a.cols) |i| {
                const v: f64 = cv.load1(dt, w, i);
                ss += v * v;
            }
            a.out[r] = @floatCast(@sqrt(ss));
        },
        else => unreachable, // api.zig refuses quantized rows
    }
}

/// out[r] = ‖src[r, :]‖₂ for r < rows (summed in f64, rounded once): the norms Baichuan2's head
/// divides its rows by.
pub fn rowNorms(out: [*]f32, src: usize, dt: DType, n_rows: usize, cols: usize) void {
    if (cols == 0) return;
    pool.forRange(n_rows, @max(1, (1 << 15) / cols), 1, &RowNormArgs{ .out = out, .src = src, .dt = dt, .cols = cols }, rowNormRange);
}
