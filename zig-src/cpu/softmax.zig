//! Row-wise softmax in place, stable: exp(x - max) / sum.
const std = @import("std");
const pool = @import("thread_pool.zig");
const cv = @import("convert.zig");
const V = cv.V;
const lanes = cv.lanes;

/// Softmax of one contiguous row in place. Shared with attention's score blocks.
pub fn softmaxRow(x: [*]f32, n: usize) void {
    if (n == 0) return;
    var mv: V = @splat(-std.math.inf(f32));
    var i: usize = 0;
    while (i + lanes <= n) : (i += lanes) mv = @max(mv, cv.loadF32(x, i));
    var m = @reduce(.Max, mv);
    while (i < n) : (i += 1) m = @max(m, x[i]);
    // A row of -inf (fully masked) would give NaN from inf - inf; it becomes uniform instead.
    if (m == -std.math.inf(f32)) m = 0;
    const msplat: V = @splat(m);
    var sv: V = @splat(0);
    i = 0;
    while (i + lanes <= n) : (i += lanes) {
        const e = @exp(cv.loadF32(x, i) - msplat);
        cv.storeF32(x, i, e);
        sv += e;
    }
    var s = @reduce(.Add, sv);
    while (i < n) : (i += 1) {
        x[i] = @exp(x[i] - m);
        s += x[i];
    }
    const inv_s = 1 / s;
    const inv: V = @splat(inv_s);
    i = 0;
    while (i + lanes <= n) : (i += lanes) cv.storeF32(x, i, cv.loadF32(x, i) * inv);
    while (i < n) : (i += 1) x[i] *= inv_s;
}

const Args = struct { x: [*]f32, n: usize };

fn rows(a: *const Args, lo: usize, hi: usize) void {
    for (lo..hi) |r| softmaxRow(a.x + r * a.n, a.n);
}

pub fn softmax(x: [*]f32, n_rows: usize, n: usize) void {
    if (n == 0) return;
    pool.forRange(n_rows, @max(1, (1 << 13) / n), 1, &Args{ .x = x, .n = n }, rows);
}
