//! Per-head products against per-head blocks of one weight matrix, with strided inputs and outputs
//! (a strided batched matmul): what multi-head latent attention needs to fold kv_b_proj's key half
//! into the queries and to apply its value half after attention, without expanding anything per
//! position. Head h of token t reads x at t·x_stride + h·x_head and writes out at
//! t·out_stride + h·out_head (floats); its weight block is rows [h·w_head_rows, +rows) of w.
//! - normal:     out[r] = Σ_c x[c] · w[h·w_head_rows + r, c]   (r < rows, c < cols)
//! - transposed: out[c] = Σ_r x[r] · w[h·w_head_rows + r, c]   (the block's transpose)
//! Weights are f32/f16/bf16 or GGUF blocks; each weight row is decoded once per task into a stack
//! buffer and used for every token, so a decode (T = 1) streams the block and a prefill reuses it.
const std = @import("std");
const DType = @import("../dtype.zig").DType;
const pool = @import("thread_pool.zig");
const quant = @import("quant_ops.zig");
const cv = @import("convert.zig");
const V = cv.V;
const lanes = cv.lanes;

pub const Shape = struct {
    T: usize,
    heads: usize,
    rows: usize,
    cols: usize,
    w_head_rows: usize,
    transposed: bool,
    x_stride: usize,
    x_head: usize,
    out_stride: usize,
    out_head: usize,
};

pub const Error = error{BadShape};

/// Longest weight row a task decodes on its stack (64 KiB of f32).
pub const max_cols = 16384;
/// Weight rows per task (normal) and output columns per task (transposed).
const row_chunk = 16;
const col_chunk = 256;

const Args = struct { out: [*]f32, x: [*]const f32, w: usize, dt: DType, s: Shape, row_bytes: usize };

fn dot(a: [*]const f32, b: [*]const f32, n: usize) f32 {
    var acc: V = @splat(0);
    var i: usize = 0;
    while (i + lanes <= n) : (i += lanes) acc = @mulAdd(V, cv.loadF32(a, i), cv.loadF32(b, i), acc);
    var s = @reduce(.Add, acc);
    while (i < n) : (i += 1) s = @mulAdd(f32, a[i], b[i], s);
    return s;
}

/// out[i] += a · row[i] for i < n.
fn axpy(out: [*]f32, a: f32, row: [*]const f32, n: usize) void {
    const av: V = @splat(a);
    var i: usize = 0;
    while (i + lanes <= n) : (i += lanes) cv.storeF32(out, i, @mulAdd(V, av, cv.loadF32(row, i), cv.loadF32(out, i)));
    while (i < n) : (i += 1) out[i] = @mulAdd(f32, a, row[i], out[i]);
}

fn rowAddr(a: *const Args, h: usize, r: usize) usize {
    return a.w + (h * a.s.w_head_rows + r) * a.row_bytes;
}

fn normalTask(a: *const Args, i: usize) void {
    const s = a.s;
    const chunks = std.math.divCeil(usize, s.rows, row_chunk) catch unreachable;
    const h = i / chunks;
    const r0 = (i % chunks) * row_chunk;
    var buf: [max_cols]f32 = undefined;
    for (r0..@min(s.rows, r0 + row_chunk)) |r| {
        _ = quant.decodeRow(a.dt, rowAddr(a, h, r), &buf, s.cols);
        for (0..s.T) |t| a.out[t * s.out_stride + h * s.out_head + r] = dot(a.x + t * s.x_stride + h * s.x_head, &buf, s.cols);
    }
}

fn transposedTask(a: *const Args, i: usize) void {
    const s = a.s;
    const chunks = std.math.divCeil(usize, s.cols, col_chunk) catch unreachable;
    const h = i / chunks;
    const c0 = (i % chunks) * col_chunk;
    const n = @min(s.cols, c0 + col_chunk) - c0;
    for (0..s.T) |t| @memset((a.out + t * s.out_stride + h * s.out_head + c0)[0..n], 0);
    var buf: [max_cols]f32 = undefined;
    for (0..s.rows) |r| {
        _ = quant.decodeRow(a.dt, rowAddr(a, h, r), &buf, s.cols);
        for (0..s.T) |t| axpy(a.out + t * s.out_stride + h * s.out_head + c0, a.x[t * s.x_stride + h * s.x_head + r], buf[c0..].ptr, n);
    }
}

pub fn matmulHeads(out: [*]f32, x: [*]const f32, w: usize, dt: DType, s: Shape) Error!void {
    if (dt.isBnb() or s.cols == 0 or s.cols > max_cols or !quant.validCols(dt, s.cols)) return error.BadShape;
    if (s.T == 0 or s.heads == 0 or s.rows == 0) return;
    const a = Args{ .out = out, .x = x, .w = w, .dt = dt, .s = s, .row_bytes = dt.rowBytes(s.cols) };
    if (s.transposed) {
        pool.run(s.heads * (std.math.divCeil(usize, s.cols, col_chunk) catch unreachable), &a, transposedTask);
    } else {
        pool.run(s.heads * (std.math.divCeil(usize, s.rows, row_chunk) catch unreachable), &a, normalTask);
    }
}

test "both orientations match a scalar reference over strided heads" {
    const gpa = std.testing.allocator;
    var prng = std.Random.DefaultPrng.init(11);
    const rnd = prng.random();
    _ = pool.init(2);
    defer pool.deinit();
    const T: usize = 3;
    const H: usize = 2;
    const rows: usize = 5;
    const cols: usize = 37;
    const whr: usize = 9; // head blocks 9 rows apart: rows 5..8 of each block belong to someone else
    const w = try gpa.alloc(f32, H * whr * cols);
    defer gpa.free(w);
    for (w) |*v| v.* = rnd.float(f32) - 0.5;
    inline for ([_]bool{ false, true }) |tr| {
        const k = if (tr) rows else cols; // contracted length
        const n = if (tr) cols else rows; // outputs per head
        const xs = H * k + 3;
        const os = H * n + 1;
        const x = try gpa.alloc(f32, T * xs);
        defer gpa.free(x);
        const out = try gpa.alloc(f32, T * os);
        defer gpa.free(out);
        for (x) |*v| v.* = rnd.float(f32) - 0.5;
        try matmulHeads(out.ptr, x.ptr, @intFromPtr(w.ptr), .f32, .{
            .T = T, .heads = H, .rows = rows, .cols = cols, .w_head_rows = whr, .transposed = tr,
            .x_stride = xs, .x_head = k, .out_stride = os, .out_head = n,
        });
        for (0..T) |t| for (0..H) |h| for (0..n) |o| {
            var ref: f64 = 0;
            for (0..k) |j| {
                const r = if (tr) j else o;
                const c = if (tr) o else j;
                ref += @as(f64, x[t * xs + h * k + j]) * w[(h * whr + r) * cols + c];
            }
            try std.testing.expectApproxEqAbs(ref, out[t * os + h * n + o], 1e-5);
        };
    }
}
