//! Elementwise ops on f32 activations: add, bias add, SwiGLU. Memory bound, so they are split
//! across threads only when large enough to repay the wakeup.
const std = @import("std");
const DType = @import("../dtype.zig").DType;
const pool = @import("thread_pool.zig");
const cv = @import("convert.zig");
const V = cv.V;
const lanes = cv.lanes;

/// Elements per task below which one thread is faster than two (about 10 µs of work).
const min_elems = 1 << 15;

const Binary = struct { out: [*]f32, a: [*]const f32, b: [*]const f32 };

fn addRange(c: *const Binary, lo: usize, hi: usize) void {
    var i = lo;
    while (i + lanes <= hi) : (i += lanes) cv.storeF32(c.out, i, cv.loadF32(c.a, i) + cv.loadF32(c.b, i));
    while (i < hi) : (i += 1) c.out[i] = c.a[i] + c.b[i];
}

pub fn add(out: [*]f32, a: [*]const f32, b: [*]const f32, n: usize) void {
    pool.forRange(n, min_elems, lanes, &Binary{ .out = out, .a = a, .b = b }, addRange);
}

inline fn silu(g: V) V {
    return g / (@as(V, @splat(1)) + @exp(-g));
}

fn swigluRange(c: *const Binary, lo: usize, hi: usize) void {
    var i = lo;
    while (i + lanes <= hi) : (i += lanes) cv.storeF32(c.out, i, silu(cv.loadF32(c.a, i)) * cv.loadF32(c.b, i));
    while (i < hi) : (i += 1) {
        const g = c.a[i];
        c.out[i] = g / (1 + @exp(-g)) * c.b[i];
    }
}

/// out = silu(gate) * up; a very negative gate gives exp(-g) = inf and silu = -0, as in PyTorch.
pub fn swiglu(out: [*]f32, gate: [*]const f32, up: [*]const f32, n: usize) void {
    pool.forRange(n, min_elems / 4, lanes, &Binary{ .out = out, .a = gate, .b = up }, swigluRange);
}

const Bias = struct { x: [*]f32, bias: usize, dt: DType, n: usize };

fn biasRows(c: *const Bias, lo: usize, hi: usize) void {
    switch (c.dt) {
        inline .f32, .f16, .bf16 => |dt| {
            const b = cv.at(dt, c.bias);
            for (lo..hi) |t| {
                const x = c.x + t * c.n;
                var i: usize = 0;
                while (i + lanes <= c.n) : (i += lanes) cv.storeF32(x, i, cv.loadF32(x, i) + cv.load8(dt, b, i));
                while (i < c.n) : (i += 1) x[i] += cv.load1(dt, b, i);
            }
        },
        else => unreachable, // api.zig refuses quantized biases
    }
}

pub fn addBias(x: [*]f32, bias: usize, dt: DType, n: usize, T: usize) void {
    if (n == 0) return;
    pool.forRange(T, @max(1, min_elems / n), 1, &Bias{ .x = x, .bias = bias, .dt = dt, .n = n }, biasRows);
}

const RowScale = struct { x: [*]f32, scales: [*]const f32, n: usize };

fn scaleRowRange(c: *const RowScale, lo: usize, hi: usize) void {
    for (lo..hi) |t| {
        const x = c.x + t * c.n;
        const s: V = @splat(c.scales[t]);
        var i: usize = 0;
        while (i + lanes <= c.n) : (i += lanes) cv.storeF32(x, i, cv.loadF32(x, i) * s);
        while (i < c.n) : (i += 1) x[i] *= c.scales[t];
    }
}

/// x[t, :] *= scales[t] for t < T (Qwen's logn scaling of each query row by its position).
pub fn scaleRows(x: [*]f32, scales: [*]const f32, n: usize, T: usize) void {
    if (n == 0) return;
    pool.forRange(T, @max(1, min_elems / n), 1, &RowScale{ .x = x, .scales = scales, .n = n }, scaleRowRange);
}

fn scaleColumnRows(c: *const Bias, lo: usize, hi: usize) void {
    switch (c.dt) {
        inline .f32, .f16, .bf16 => |dt| {
            const s = cv.at(dt, c.bias);
            for (lo..hi) |t| {
                const x = c.x + t * c.n;
                var i: usize = 0;
                while (i + lanes <= c.n) : (i += lanes) cv.storeF32(x, i, cv.loadF32(x, i) * cv.load8(dt, s, i));
                while (i < c.n) : (i += 1) x[i] *= cv.load1(dt, s, i);
            }
        },
        else => unreachable, // api.zig refuses quantized scales
    }
}

/// x[t, :] *= scales (elementwise, one factor per column) for t < T.
pub fn scaleColumns(x: [*]f32, scales: usize, dt: DType, n: usize, T: usize) void {
    if (n == 0) return;
    pool.forRange(T, @max(1, min_elems / n), 1, &Bias{ .x = x, .bias = scales, .dt = dt, .n = n }, scaleColumnRows);
}
