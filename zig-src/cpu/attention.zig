//! Causal grouped-query attention over one sequence's KV cache, with an optional sliding window.
//!
//! One task per (query token, KV head): the query heads sharing that KV head walk the visible
//! keys together in blocks, so each key/value row is read from memory once per task rather than
//! once per query head. Softmax is the online (flash) form: per block, scores against the block
//! maximum, and the running sum and output rescaled when the maximum grows, so no score buffer
//! of the sequence's length is needed and exp never overflows.
const std = @import("std");
const pool = @import("thread_pool.zig");
const cv = @import("convert.zig");
const V = cv.V;
const lanes = cv.lanes;

pub const Shape = struct {
    T: usize,
    n_heads: usize,
    n_kv_heads: usize,
    head_dim: usize,
    pos0: usize,
    window: usize,
    scale: f32,
};

/// f32 slots for the output accumulators of the query heads processed together.
const acc_floats = 4096;
pub const max_head_dim = acc_floats;
/// Query heads sharing a KV head that one pass walks the cache for.
const max_pass_heads = 16;
const key_block = 64;
/// Heads in one register tile: four heads' accumulators plus the shared loads fit 16 ymm.
const head_tile = 4;

const Args = struct { out: [*]f32, q: [*]const f32, k: [*]const f32, v: [*]const f32, s: Shape };

const Scores = [max_pass_heads][key_block]f32;
const zero: V = @splat(0);

/// A tile of dot products: heads g..g+ht (query rows hd apart) × keys j..j+kt (cache rows
/// `stride` apart). Each key vector is loaded once for all heads of the tile.
inline fn scoreTile(comptime kt: usize, comptime ht: usize, q: [*]const f32, hd: usize, k: [*]const f32, stride: usize, j: usize, g: usize, scores: *Scores, scale: f32) void {
    var acc: [kt][ht]V = @splat(@splat(zero));
    var d: usize = 0;
    while (d + lanes <= hd) : (d += lanes) {
        var kv: [kt]V = undefined;
        inline for (0..kt) |u| kv[u] = cv.loadF32(k + (j + u) * stride, d);
        inline for (0..ht) |h| {
            const qv = cv.loadF32(q + (g + h) * hd, d);
            inline for (0..kt) |u| acc[u][h] = @mulAdd(V, qv, kv[u], acc[u][h]);
        }
    }
    inline for (0..kt) |u| inline for (0..ht) |h| {
        var sum = @reduce(.Add, acc[u][h]);
        var e = d;
        while (e < hd) : (e += 1) sum = @mulAdd(f32, q[(g + h) * hd + e], k[(j + u) * stride + e], sum);
        scores[g + h][j + u] = sum * scale;
    };
}

inline fn scoreKeys(comptime kt: usize, q: [*]const f32, ng: usize, hd: usize, k: [*]const f32, stride: usize, j: usize, scores: *Scores, scale: f32) void {
    var g: usize = 0;
    while (g + head_tile <= ng) : (g += head_tile) scoreTile(kt, head_tile, q, hd, k, stride, j, g, scores, scale);
    switch (ng - g) {
        inline 1...head_tile - 1 => |ht| scoreTile(kt, ht, q, hd, k, stride, j, g, scores, scale),
        else => {},
    }
}

/// Cache rows sit nKvHeads·headDim floats apart, usually a page or more, so the hardware
/// prefetcher (which stays within a page) loses the stream at every key: without these hints
/// the walk over the cache is bound by DRAM latency, not bandwidth.
inline fn prefetchRow(row: [*]const f32, n: usize) void {
    var off: usize = 0;
    while (off < n) : (off += 64 / @sizeOf(f32)) @prefetch(row + off, .{ .locality = 3 });
}

/// scores[g][j] = scale · q_g · k_j for the ng heads and nj keys of one block; meanwhile
/// prefetches this block's values and the next block's keys (up to `next_keys` of them).
fn scoreBlock(q: [*]const f32, ng: usize, hd: usize, k: [*]const f32, v: [*]const f32, stride: usize, nj: usize, next_keys: usize, scores: *Scores, scale: f32) void {
    // Fewer heads leave registers for more keys per tile (more independent FMA chains).
    switch (@min(ng, head_tile)) {
        inline 1...head_tile => |ht| {
            const kt = if (ht >= 3) 2 else 4;
            var j: usize = 0;
            while (j + kt <= nj) : (j += kt) {
                inline for (0..kt) |u| {
                    prefetchRow(v + (j + u) * stride, hd);
                    if (j + u < next_keys) prefetchRow(k + (key_block + j + u) * stride, hd);
                }
                scoreKeys(kt, q, ng, hd, k, stride, j, scores, scale);
            }
            while (j < nj) : (j += 1) {
                prefetchRow(v + j * stride, hd);
                scoreKeys(1, q, ng, hd, k, stride, j, scores, scale);
            }
        },
        else => unreachable,
    }
}

/// y_h[d .. d + nv·8] = y_h · corr_h + Σ_j p_h[j] · v_j[d ..] for heads g..g+ht: each value
/// vector is loaded once for all heads of the tile, and y once per block.
inline fn accumulateTile(comptime ht: usize, comptime nv: usize, y: [*]f32, corr: []const f32, scores: *const Scores, g: usize, v: [*]const f32, stride: usize, nj: usize, hd: usize, d: usize) void {
    var acc: [ht][nv]V = @splat(@splat(zero));
    for (0..nj) |j| {
        var vv: [nv]V = undefined;
        inline for (0..nv) |u| vv[u] = cv.loadF32(v + j * stride + d, u * lanes);
        inline for (0..ht) |h| {
            const ps: V = @splat(scores[g + h][j]);
            inline for (0..nv) |u| acc[h][u] = @mulAdd(V, ps, vv[u], acc[h][u]);
        }
    }
    inline for (0..ht) |h| inline for (0..nv) |u| {
        const yp = y + (g + h) * hd + d + u * lanes;
        cv.storeF32(yp, 0, @mulAdd(V, cv.loadF32(yp, 0), @as(V, @splat(corr[g + h])), acc[h][u]));
    };
}

fn accumulateHeads(comptime ht: usize, y: [*]f32, corr: []const f32, scores: *const Scores, g: usize, v: [*]const f32, stride: usize, nj: usize, hd: usize) void {
    var d: usize = 0;
    // Two vectors = one cache line of each value row per pass.
    while (d + 2 * lanes <= hd) : (d += 2 * lanes) accumulateTile(ht, 2, y, corr, scores, g, v, stride, nj, hd, d);
    if (d + lanes <= hd) {
        accumulateTile(ht, 1, y, corr, scores, g, v, stride, nj, hd, d);
        d += lanes;
    }
    while (d < hd) : (d += 1) {
        inline for (0..ht) |h| {
            var sum: f32 = 0;
            for (0..nj) |j| sum = @mulAdd(f32, scores[g + h][j], v[j * stride + d], sum);
            y[(g + h) * hd + d] = @mulAdd(f32, y[(g + h) * hd + d], corr[g + h], sum);
        }
    }
}

fn accumulateBlock(y: [*]f32, corr: []const f32, scores: *const Scores, ng: usize, v: [*]const f32, stride: usize, nj: usize, hd: usize) void {
    var g: usize = 0;
    while (g + head_tile <= ng) : (g += head_tile) accumulateHeads(head_tile, y, corr, scores, g, v, stride, nj, hd);
    switch (ng - g) {
        inline 1...head_tile - 1 => |ht| accumulateHeads(ht, y, corr, scores, g, v, stride, nj, hd),
        else => {},
    }
}

/// Turns one block of scores into exp(score - running max) in place and updates the running
/// max and sum; returns the factor that rescales what was accumulated before this block.
fn softmaxBlock(row: []f32, m: *f32, l: *f32) f32 {
    var bmax = -std.math.inf(f32);
    for (row) |x| bmax = @max(bmax, x);
    const m_new = @max(m.*, bmax);
    // exp(-inf) = 0 on the first block: the empty accumulator is simply replaced.
    const corr = @exp(m.* - m_new);
    m.* = m_new;
    const ms: V = @splat(m_new);
    var sum: f32 = 0;
    var j: usize = 0;
    while (j + lanes <= row.len) : (j += lanes) {
        const e = @exp(cv.loadF32(row.ptr, j) - ms);
        cv.storeF32(row.ptr, j, e);
        sum += @reduce(.Add, e);
    }
    while (j < row.len) : (j += 1) {
        row[j] = @exp(row[j] - m_new);
        sum += row[j];
    }
    l.* = l.* * corr + sum;
    return corr;
}

fn task(a: *const Args, i: usize) void {
    const s = a.s;
    const t = i / s.n_kv_heads;
    const kvh = i % s.n_kv_heads;
    const hd = s.head_dim;
    const group = s.n_heads / s.n_kv_heads;
    const stride = s.n_kv_heads * hd;
    const k = a.k + kvh * hd;
    const v = a.v + kvh * hd;
    const p = s.pos0 + t;
    const first = if (s.window > 0 and p + 1 > s.window) p + 1 - s.window else 0;
    const per_pass = @max(1, @min(group, max_pass_heads, acc_floats / hd));

    var acc: [acc_floats]f32 = undefined;
    var m: [max_pass_heads]f32 = undefined;
    var l: [max_pass_heads]f32 = undefined;
    var corr: [max_pass_heads]f32 = undefined;
    var scores: Scores = undefined;

    var g0: usize = 0;
    while (g0 < group) : (g0 += per_pass) {
        const ng = @min(per_pass, group - g0);
        const h0 = kvh * group + g0;
        const q = a.q + (t * s.n_heads + h0) * hd;
        @memset(acc[0 .. ng * hd], 0);
        @memset(m[0..ng], -std.math.inf(f32));
        @memset(l[0..ng], 0);
        var j0 = first;
        while (j0 <= p) : (j0 += key_block) {
            const nj = @min(key_block, p + 1 - j0);
            const next_keys = if (j0 + key_block <= p) p + 1 - j0 - key_block else 0;
            scoreBlock(q, ng, hd, k + j0 * stride, v + j0 * stride, stride, nj, next_keys, &scores, s.scale);
            for (0..ng) |g| corr[g] = softmaxBlock(scores[g][0..nj], &m[g], &l[g]);
            accumulateBlock(&acc, corr[0..ng], &scores, ng, v + j0 * stride, stride, nj, hd);
        }
        for (0..ng) |g| {
            const out = a.out + (t * s.n_heads + h0 + g) * hd;
            const inv = 1 / l[g];
            for (0..hd) |d| out[d] = acc[g * hd + d] * inv;
        }
    }
}

/// Returns false when the shape is unusable (heads not a multiple of KV heads, head_dim too big).
pub fn attention(out: [*]f32, q: [*]const f32, k: [*]const f32, v: [*]const f32, s: Shape) bool {
    if (s.n_kv_heads == 0 or s.n_heads % s.n_kv_heads != 0 or s.head_dim == 0 or s.head_dim > max_head_dim) return false;
    const keys = s.pos0 + s.T;
    const visible = if (s.window > 0) @min(keys, s.window) else keys;
    const work = s.T * s.n_heads * visible * s.head_dim;
    const n_tasks = s.T * s.n_kv_heads;
    const a = Args{ .out = out, .q = q, .k = k, .v = v, .s = s };
    // Below ~64K multiply-adds one thread beats waking the pool.
    if (work < 1 << 16) {
        for (0..n_tasks) |i| task(&a, i);
    } else {
        pool.run(n_tasks, &a, task);
    }
    return true;
}
