//! Embedding lookup: out[t, :] = f32(table[ids[t], :]).
const std = @import("std");
const DType = @import("../dtype.zig").DType;
const pool = @import("thread_pool.zig");
const cv = @import("convert.zig");

const Args = struct { out: [*]f32, table: usize, dt: DType, cols: usize, ids: [*]const i32 };

fn rows(a: *const Args, lo: usize, hi: usize) void {
    switch (a.dt) {
        inline .f32, .f16, .bf16 => |dt| for (lo..hi) |t| {
            const id: usize = @intCast(a.ids[t]);
            cv.toF32(dt, a.out + t * a.cols, cv.at(dt, a.table) + id * a.cols, a.cols);
        },
        else => unreachable, // api.zig routes quantized tables to quant_ops.zig
    }
}

/// Returns false (and writes nothing) when an id is outside [0, n_rows).
pub fn embedding(out: [*]f32, table: usize, dt: DType, n_rows: usize, cols: usize, ids: [*]const i32, n_ids: usize) bool {
    for (ids[0..n_ids]) |id| if (id < 0 or id >= n_rows) return false;
    if (cols == 0) return true;
    pool.forRange(n_ids, @max(1, (1 << 15) / cols), 1, &Args{ .out = out, .table = table, .dt = dt, .cols = cols, .ids = ids }, rows);
    return true;
}
