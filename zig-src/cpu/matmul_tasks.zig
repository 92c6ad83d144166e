//! How a matmul out[T, rows] = x[T, cols] · wᵀ is cut into thread-pool tasks, shared by the float
//! (matmul.zig) and block-quantized (quant_ops.zig) kernels: rows in contiguous chunks (a few per
//! thread, so each streams its own stretch of weights), tokens in blocks whose activations stay
//! within half a typical L2, so the weights leave DRAM once per token block, not once per token.
const std = @import("std");
const pool = @import("thread_pool.zig");
const DType = @import("../dtype.zig").DType;

pub const Args = struct {
    out: [*]f32,
    /// Floats from one output row to the next (≥ rows): a row chunk of a larger matrix.
    ld: usize,
    x: [*]const f32,
    w: usize,
    rows: usize,
    cols: usize,
    T: usize,
    row_chunk: usize,
    row_tasks: usize,
    tok_chunk: usize,
    /// What a kernel prepared for all its tasks (the quantized activations), or null.
    ctx: ?*const anyopaque = null,
};

/// Token rows that keep one block of x within this many bytes (half a typical L2).
const x_block_bytes = 512 * 1024;
/// Multiply-adds below which a task is not worth a thread wakeup (a few microseconds of work).
const min_task_macs = 1 << 17;

fn roundUp(n: usize, m: usize) usize {
    return (std.math.divCeil(usize, n, m) catch unreachable) * m;
}

/// A kernel for weight type `dt` from its two entry points: `decode(dt, a, r_lo, r_hi)` for
/// T = 1, and `prefill(dt, a, r_lo, r_hi, t_lo, t_hi)` for a block of tokens.
pub fn Kernel(comptime dt: DType, comptime decode: anytype, comptime prefill: anytype) type {
    return struct {
        fn task(a: *const Args, i: usize) void {
            const r_lo = (i % a.row_tasks) * a.row_chunk;
            const r_hi = @min(a.rows, r_lo + a.row_chunk);
            if (a.T == 1) return decode(dt, a, r_lo, r_hi);
            const t_lo = (i / a.row_tasks) * a.tok_chunk;
            prefill(dt, a, r_lo, r_hi, t_lo, @min(a.T, t_lo + a.tok_chunk));
        }

        /// Row chunks are multiples of `row_align` (the kernel's row tile for this T), token
        /// chunks multiples of `tok_align` (its token tile).
        pub fn run(out: [*]f32, ld: usize, x: [*]const f32, w: usize, rows: usize, cols: usize, T: usize, row_align: usize, tok_align: usize, ctx: ?*const anyopaque) void {
            if (rows == 0 or T == 0) return;
            const c = @max(cols, 1);
            const tok_chunk = if (T == 1) 1 else roundUp(std.math.clamp(x_block_bytes / (c * 4), tok_align, T), tok_align);
            const tok_tasks = std.math.divCeil(usize, T, tok_chunk) catch unreachable;
            const want = pool.taskCount(rows * c * T, min_task_macs, 4);
            const row_target = std.math.divCeil(usize, want, tok_tasks) catch unreachable;
            const row_chunk = roundUp(std.math.divCeil(usize, rows, row_target) catch unreachable, row_align);
            const row_tasks = std.math.divCeil(usize, rows, row_chunk) catch unreachable;
            const a = Args{
                .out = out, .ld = ld, .x = x, .w = w, .rows = rows, .cols = cols, .T = T,
                .row_chunk = row_chunk, .row_tasks = row_tasks, .tok_chunk = tok_chunk, .ctx = ctx,
            };
            pool.run(row_tasks * tok_tasks, &a, task);
        }
    };
}
