//! out[T, rows] = x[T, cols] · wᵀ with w[rows, cols] in f32/f16/bf16, f32 accumulation; output
//! row t starts at out + t·ld.
//!
//! Every output is a dot product of a token row and a weight row, both contiguous. The kernel
//! computes a register tile of `tb` tokens × `rb` weight rows at once, so each weight vector
//! loaded (and widened) from memory feeds `tb` FMAs and each token vector feeds `rb`.
//! - Decode (T = 1) is a pure stream over the weights: tiles of 1 × 4 rows with two vectors
//!   per row in flight, rows split across threads in a few contiguous chunks each.
//! - Prefill (T > 1) walks a thread's rows `rb` at a time and, for each group of rows, every
//!   token of a block that fits in L2: the weights leave DRAM once per token block (not once
//!   per token) and the token block is re-read from L2.
const std = @import("std");
const DType = @import("../dtype.zig").DType;
const pool = @import("thread_pool.zig");
const cv = @import("convert.zig");
const V = cv.V;
const lanes = cv.lanes;

const tasks = @import("matmul_tasks.zig");
const Args = tasks.Args;

/// Sums of products for a tb × rb tile: out[t0+t, r0+r] = x[t0+t] · w[r0+r].
inline fn tile(comptime dt: DType, comptime tb: usize, comptime rb: usize, comptime unroll: usize, a: *const Args, t0: usize, r0: usize) void {
    @setEvalBranchQuota(20000);
    const cols = a.cols;
    var xr: [tb][*]const f32 = undefined;
    inline for (0..tb) |t| xr[t] = a.x + (t0 + t) * cols;
    var wr: [rb][*]const cv.Elem(dt) = undefined;
    inline for (0..rb) |r| wr[r] = cv.at(dt, a.w) + (r0 + r) * cols;

    var acc: [tb][rb][unroll]V = undefined;
    inline for (0..tb) |t| inline for (0..rb) |r| inline for (0..unroll) |u| {
        acc[t][r][u] = @splat(0);
    };

    const step = lanes * unroll;
    var k: usize = 0;
    while (k + step <= cols) : (k += step) {
        inline for (0..unroll) |u| {
            var wv: [rb]V = undefined;
            inline for (0..rb) |r| wv[r] = cv.load8(dt, wr[r], k + u * lanes);
            inline for (0..tb) |t| {
                const xv = cv.loadF32(xr[t], k + u * lanes);
                inline for (0..rb) |r| acc[t][r][u] = @mulAdd(V, xv, wv[r], acc[t][r][u]);
            }
        }
    }
    while (k + lanes <= cols) : (k += lanes) {
        inline for (0..tb) |t| {
            const xv = cv.loadF32(xr[t], k);
            inline for (0..rb) |r| acc[t][r][0] = @mulAdd(V, xv, cv.load8(dt, wr[r], k), acc[t][r][0]);
        }
    }
    inline for (0..tb) |t| inline for (0..rb) |r| {
        var v = acc[t][r][0];
        inline for (1..unroll) |u| v += acc[t][r][u];
        var s = @reduce(.Add, v);
        var kk = k;
        while (kk < cols) : (kk += 1) s = @mulAdd(f32, xr[t][kk], cv.load1(dt, wr[r], kk), s);
        a.out[(t0 + t) * a.ld + r0 + r] = s;
    };
}

const decode_rb = 4;
const prefill_tb = 4;
const prefill_rb = 3;

fn decodeRows(comptime dt: DType, a: *const Args, lo: usize, hi: usize) void {
    var r = lo;
    while (r + decode_rb <= hi) : (r += decode_rb) tile(dt, 1, decode_rb, 2, a, 0, r);
    while (r < hi) : (r += 1) tile(dt, 1, 1, 2, a, 0, r);
}

fn prefillBlock(comptime dt: DType, a: *const Args, r_lo: usize, r_hi: usize, t_lo: usize, t_hi: usize) void {
    var r = r_lo;
    while (r < r_hi) {
        const n_rows = @min(prefill_rb, r_hi - r);
        switch (n_rows) {
            inline 1...prefill_rb => |rb| {
                var t = t_lo;
                while (t + prefill_tb <= t_hi) : (t += prefill_tb) tile(dt, prefill_tb, rb, 1, a, t, r);
                switch (t_hi - t) {
                    inline 1...prefill_tb - 1 => |tb| tile(dt, tb, rb, 1, a, t, r),
                    else => {},
                }
            },
            else => unreachable,
        }
        r += n_rows;
    }
}


pub fn matmul(out: [*]f32, ld: usize, x: [*]const f32, w: usize, dt: DType, rows: usize, cols: usize, T: usize) void {
    const row_align: usize = if (T == 1) decode_rb else prefill_rb;
    switch (dt) {
        inline .f32, .f16, .bf16 => |d| tasks.Kernel(d, decodeRows, prefillBlock).run(out, ld, x, w, rows, cols, T, row_align, prefill_tb, null),
        else => unreachable, // api.zig routes quantized weights to quant_ops.zig
    }
}

test "matmul matches a scalar reference on odd shapes" {
    const gpa = std.testing.allocator;
    var prng = std.Random.DefaultPrng.init(7);
    const rnd = prng.random();
    _ = pool.init(2);
    defer pool.deinit();
    for ([_][3]usize{ .{ 1, 7, 13 }, .{ 5, 11, 37 }, .{ 9, 300, 67 }, .{ 1, 64, 1000 } }) |s| {
        const T, const rows, const cols = s;
        const x = try gpa.alloc(f32, T * cols);
        defer gpa.free(x);
        const w = try gpa.alloc(f32, rows * cols);
        defer gpa.free(w);
        const out = try gpa.alloc(f32, T * rows);
        defer gpa.free(out);
        for (x) |*v| v.* = rnd.float(f32) - 0.5;
        for (w) |*v| v.* = rnd.float(f32) - 0.5;
        matmul(out.ptr, rows, x.ptr, @intFromPtr(w.ptr), .f32, rows, cols, T);
        for (0..T) |t| for (0..rows) |r| {
            var ref: f64 = 0;
            for (0..cols) |k| ref += @as(f64, x[t * cols + k]) * w[r * cols + k];
            try std.testing.expectApproxEqAbs(ref, out[t * rows + r], 1e-4);
        };
    }
}
