//! A strided copy of f32 rows (a 2-D memcpy): dst[i·dst_stride + j] = src[i·src_stride + j] for
//! i < rows, j < width. It moves parts of activation rows between layouts (multi-head latent
//! attention's latent out of the compressed row, each head's rotary query part into the absorbed
//! query) in one call instead of one copy per row.
const std = @import("std");
const pool = @import("thread_pool.zig");

pub const Error = error{BadShape};

const Args = struct { dst: [*]f32, dst_stride: usize, src: [*]const f32, src_stride: usize, width: usize };

fn copyRange(a: *const Args, lo: usize, hi: usize) void {
    for (lo..hi) |i| @memcpy((a.dst + i * a.dst_stride)[0..a.width], (a.src + i * a.src_stride)[0..a.width]);
}

pub fn copyRows(dst: [*]f32, dst_stride: usize, src: [*]const f32, src_stride: usize, rows: usize, width: usize) Error!void {
    if (width > dst_stride or width > src_stride) return error.BadShape;
    if (rows == 0 or width == 0) return;
    pool.forRange(rows, @max(1, (1 << 15) / width), 1, &Args{ .dst = dst, .dst_stride = dst_stride, .src = src, .src_stride = src_stride, .width = width }, copyRange);
}

test "copies a column band of strided rows and nothing else" {
    var src: [4 * 7]f32 = undefined;
    for (&src, 0..) |*v, i| v.* = @floatFromInt(i);
    var dst = [_]f32{-1} ** (4 * 5);
    try copyRows(dst[1..].ptr, 5, src[2..].ptr, 7, 4, 3);
    for (0..4) |i| for (0..5) |j| {
        const want: f32 = if (j >= 1 and j < 4) @floatFromInt(i * 7 + 2 + j - 1) else -1;
        try std.testing.expectEqual(want, dst[i * 5 + j]);
    };
    try std.testing.expectError(error.BadShape, copyRows(&dst, 2, &src, 7, 1, 3));
}
