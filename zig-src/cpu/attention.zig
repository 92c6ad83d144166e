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
const key_block = 64;

const Args = struct { out: [*]f32, q: [*]const f32, k: [*]const f32, v: [*]const f32, s: Shape };

fn dot(a: [*]const f32, b: [*]const f32, n: usize) f32 {
    var acc0: V = @splat(0);
    var acc1: V = @splat(0);
    var i: usize = 0;
    while (i + 2 * lanes <= n) : (i += 2 * lanes) {
        acc0 = @mulAdd(V, cv.loadF32(a, i), cv.loadF32(b, i), acc0);
        acc1 = @mulAdd(V, cv.loadF32(a, i + lanes), cv.loadF32(b, i + lanes), acc1);
    }
    if (i + lanes <= n) {
        acc0 = @mulAdd(V, cv.loadF32(a, i), cv.loadF32(b, i), acc0);
        i += lanes;
    }
    var s = @reduce(.Add, acc0 + acc1);
    while (i < n) : (i += 1) s = @mulAdd(f32, a[i], b[i], s);
    return s;
}

/// y = y * c + p * v over n floats.
fn scaleAdd(y: [*]f32, c: f32, p: f32, v: [*]const f32, n: usize) void {
    const cs: V = @splat(c);
    const ps: V = @splat(p);
    var i: usize = 0;
    while (i + lanes <= n) : (i += lanes) cv.storeF32(y, i, @mulAdd(V, ps, cv.loadF32(v, i), cv.loadF32(y, i) * cs));
    while (i < n) : (i += 1) y[i] = @mulAdd(f32, p, v[i], y[i] * c);
}

fn task(a: *const Args, i: usize) void {
    const s = a.s;
    const t = i / s.n_kv_heads;
    const kvh = i % s.n_kv_heads;
    const hd = s.head_dim;
    const group = s.n_heads / s.n_kv_heads;
    const kv_stride = s.n_kv_heads * hd;
    const p = s.pos0 + t;
    const first = if (s.window > 0 and p + 1 > s.window) p + 1 - s.window else 0;
    const per_pass = @max(1, @min(group, acc_floats / hd));

    var acc: [acc_floats]f32 = undefined;
    var m: [acc_floats]f32 = undefined;
    var l: [acc_floats]f32 = undefined;
    var scores: [key_block]f32 = undefined;

    var g0: usize = 0;
    while (g0 < group) : (g0 += per_pass) {
        const ng = @min(per_pass, group - g0);
        @memset(acc[0 .. ng * hd], 0);
        @memset(m[0..ng], -std.math.inf(f32));
        @memset(l[0..ng], 0);
        var j0 = first;
        while (j0 <= p) : (j0 += key_block) {
            const nj = @min(key_block, p + 1 - j0);
            for (0..ng) |g| {
                const h = kvh * group + g0 + g;
                const q = a.q + (t * s.n_heads + h) * hd;
                var bmax = -std.math.inf(f32);
                for (0..nj) |jj| {
                    scores[jj] = dot(q, a.k + (j0 + jj) * kv_stride + kvh * hd, hd) * s.scale;
                    bmax = @max(bmax, scores[jj]);
                }
                const m_new = @max(m[g], bmax);
                // exp(-inf) = 0 on the first block: the empty accumulator is simply replaced.
                const corr = @exp(m[g] - m_new);
                m[g] = m_new;
                var sum: f32 = 0;
                var jj: usize = 0;
                const ms: V = @splat(m_new);
                while (jj + lanes <= nj) : (jj += lanes) {
                    const e = @exp(cv.loadF32(&scores, jj) - ms);
                    cv.storeF32(&scores, jj, e);
                    sum += @reduce(.Add, e);
                }
                while (jj < nj) : (jj += 1) {
                    scores[jj] = @exp(scores[jj] - m_new);
                    sum += scores[jj];
                }
                l[g] = l[g] * corr + sum;
                const y = acc[g * hd ..].ptr;
                for (0..nj) |k| {
                    const v = a.v + (j0 + k) * kv_stride + kvh * hd;
                    scaleAdd(y, if (k == 0) corr else 1, scores[k], v, hd);
                }
            }
        }
        for (0..ng) |g| {
            const h = kvh * group + g0 + g;
            const out = a.out + (t * s.n_heads + h) * hd;
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
