//! Causal grouped-query attention over one sequence's paged KV cache (kv_pages.zig), with an
//! optional sliding window, optional ALiBi (Baichuan2-13B): head h adds slope_h · (j - p) to
//! the score of key j at query position p, and an optional tree mask (attention_tree.zig: the rows
//! of a draft tree see only their ancestors). Keys and values are f32, f16 or bf16 (comptime), widened to f32 as
//! they are loaded; all arithmetic is f32.
//!
//! Memory order drives the design. A cache row holds every KV head of one position
//! (nKvHeads·headDim elements, often exactly 4 KiB in f32), so walking one KV head down the cache
//! reads a few hundred bytes per page: on this class of machine that runs at a quarter of
//! sequential bandwidth. Each task therefore covers all heads for a range of keys and reads whole
//! rows in order, in blocks of `block` keys: scores for every head, then an online-softmax update,
//! then the weighted sum of the block's value rows (prefetched as whole rows while scoring).
//!
//! Pages do not change the arithmetic: a block's 16 row addresses are looked up through the page
//! table first, then the same tiles run on those pointers. Blocks start where they would in a
//! contiguous cache (at the task's first key, every 16 keys), whatever the page boundaries, so the
//! result is bitwise the same for every page size and page table.
//!
//! Tasks are (query token, key split). Prefill has a task per token and accumulates straight
//! into `out`; decode splits the keys (flash-decoding) so every core gets work, and a final
//! pass merges the splits' partial sums with their running maxima.
const std = @import("std");
const DType = @import("../dtype.zig").DType;
const pool = @import("thread_pool.zig");
const cv = @import("convert.zig");
const pages = @import("kv_pages.zig");
const Tree = @import("attention_tree.zig").Tree;
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
    /// ALiBi slopes, one per query head, or null.
    alibi: ?[*]const f32 = null,
    /// The T rows are a draft tree (attention_tree.zig), or null: causal rows at pos0 + t.
    tree: ?Tree = null,

    /// Position of query row t.
    fn queryPosition(s: Shape, t: usize) usize {
        return if (s.tree) |tr| tr.queryPosition(s.pos0, t) else s.pos0 + t;
    }

    /// The first slot any query row may see: the window's start (a tree's rows are masked later).
    fn firstKey(s: Shape, p: usize) usize {
        const first = if (s.window > 0 and p + 1 > s.window) p + 1 - s.window else 0;
        return if (s.tree != null) @min(first, s.pos0) else first;
    }
};

pub const Error = error{ BadShape, BadIndex, OutOfMemory };

/// Bounds the per-task stack buffers (scores and softmax state for every head).
pub const max_heads = 256;
/// Keys per block: 16 whole rows of K or V (64 KiB at 4 KiB rows) stay in L2 between passes.
const block = 16;
/// Query heads in one register tile: four heads' accumulators plus the shared loads fit 16 ymm.
const head_tile = 4;
const zero: V = @splat(0);

const Args = struct {
    out: [*]f32,
    q: [*]const f32,
    kv: pages.Paged,
    s: Shape,
    splits: usize,
    /// Per task (splits > 1): m[nH], l[nH], acc[nH·hd], merged after the tasks.
    partial: [*]f32,
};

/// The row pointers of one block of keys (or values); entries past the block's length unused.
fn Rows(comptime dt: DType) type {
    return [block][*]const cv.Elem(dt);
}

/// Scores for heads g..g+ht (query rows hd apart) × keys j..j+kt of the block, each key read at
/// element `o` of its row (the KV head); each key vector is loaded once for all heads of the tile.
inline fn scoreTile(comptime dt: DType, comptime kt: usize, comptime ht: usize, q: [*]const f32, hd: usize, krows: *const Rows(dt), o: usize, j: usize, g: usize, scores: [*]f32, scale: f32) void {
    @setEvalBranchQuota(20000);
    var kp: [kt][*]const cv.Elem(dt) = undefined;
    inline for (0..kt) |u| kp[u] = krows[j + u] + o;
    var acc: [kt][ht]V = @splat(@splat(zero));
    var d: usize = 0;
    while (d + lanes <= hd) : (d += lanes) {
        var kv: [kt]V = undefined;
        inline for (0..kt) |u| kv[u] = cv.load8(dt, kp[u], d);
        inline for (0..ht) |h| {
            const qv = cv.loadF32(q + (g + h) * hd, d);
            inline for (0..kt) |u| acc[u][h] = @mulAdd(V, qv, kv[u], acc[u][h]);
        }
    }
    inline for (0..kt) |u| inline for (0..ht) |h| {
        var sum = @reduce(.Add, acc[u][h]);
        var e = d;
        while (e < hd) : (e += 1) sum = @mulAdd(f32, q[(g + h) * hd + e], cv.load1(dt, kp[u], e), sum);
        scores[(g + h) * block + j + u] = sum * scale;
    };
}

/// Scores of keys j..j+kt for every head, one KV head after the other: the reads sweep each
/// row from start to end.
inline fn scoreKeys(comptime dt: DType, comptime kt: usize, a: *const Args, q: [*]const f32, krows: *const Rows(dt), j: usize, scores: [*]f32) void {
    const s = a.s;
    const group = s.n_heads / s.n_kv_heads;
    for (0..s.n_kv_heads) |kvh| {
        const o = kvh * s.head_dim;
        var g = kvh * group;
        const end = g + group;
        while (g + head_tile <= end) : (g += head_tile) scoreTile(dt, kt, head_tile, q, s.head_dim, krows, o, j, g, scores, s.scale);
        switch (end - g) {
            inline 1...head_tile - 1 => |ht| scoreTile(dt, kt, ht, q, s.head_dim, krows, o, j, g, scores, s.scale),
            else => {},
        }
    }
}

inline fn prefetchRow(p: [*]const u8, bytes: usize) void {
    var off: usize = 0;
    while (off < bytes) : (off += 64) @prefetch(p + off, .{ .locality = 3 });
}

/// scores[h·block + j] for the block's nj keys and every head. Meanwhile prefetches the block's
/// value rows whole: the sum that follows walks them one head-slice at a time, which the
/// hardware prefetcher would see as a strided pattern. (Keys need no hint: the scores read
/// them front to back.)
fn scoreBlock(comptime dt: DType, a: *const Args, q: [*]const f32, krows: *const Rows(dt), vrows: *const Rows(dt), nj: usize, scores: [*]f32) void {
    const row_bytes = a.s.n_kv_heads * a.s.head_dim * @sizeOf(cv.Elem(dt));
    // Fewer heads per group leave registers for more keys per tile (more independent chains).
    switch (@min(a.s.n_heads / a.s.n_kv_heads, head_tile)) {
        inline 1...head_tile => |ht| {
            const kt = if (ht >= 3) 2 else 4;
            var j: usize = 0;
            while (j < nj) {
                const n: usize = if (j + kt <= nj) kt else 1;
                for (j..j + n) |jj| prefetchRow(@ptrCast(vrows[jj]), row_bytes);
                if (n == kt) scoreKeys(dt, kt, a, q, krows, j, scores) else scoreKeys(dt, 1, a, q, krows, j, scores);
                j += n;
            }
        },
        else => unreachable,
    }
}

/// y_h[d ..] = y_h · corr_h + Σ_j p_h[j] · v_j[o + d ..] for heads g..g+ht and nv vectors at d:
/// each value vector is loaded once for all heads of the tile, and y once per block.
inline fn accumulateTile(comptime dt: DType, comptime ht: usize, comptime nv: usize, y: [*]f32, corr: [*]const f32, scores: [*]const f32, g: usize, vrows: *const Rows(dt), o: usize, nj: usize, hd: usize, d: usize) void {
    var acc: [ht][nv]V = @splat(@splat(zero));
    for (0..nj) |j| {
        var vv: [nv]V = undefined;
        inline for (0..nv) |u| vv[u] = cv.load8(dt, vrows[j] + o + d, u * lanes);
        inline for (0..ht) |h| {
            const ps: V = @splat(scores[(g + h) * block + j]);
            inline for (0..nv) |u| acc[h][u] = @mulAdd(V, ps, vv[u], acc[h][u]);
        }
    }
    inline for (0..ht) |h| inline for (0..nv) |u| {
        const yp = y + (g + h) * hd + d + u * lanes;
        cv.storeF32(yp, 0, @mulAdd(V, cv.loadF32(yp, 0), @as(V, @splat(corr[g + h])), acc[h][u]));
    };
}

fn accumulateHeads(comptime dt: DType, comptime ht: usize, y: [*]f32, corr: [*]const f32, scores: [*]const f32, g: usize, vrows: *const Rows(dt), o: usize, nj: usize, hd: usize) void {
    var d: usize = 0;
    // Two vectors = one cache line of each f32 value row per pass.
    while (d + 2 * lanes <= hd) : (d += 2 * lanes) accumulateTile(dt, ht, 2, y, corr, scores, g, vrows, o, nj, hd, d);
    if (d + lanes <= hd) {
        accumulateTile(dt, ht, 1, y, corr, scores, g, vrows, o, nj, hd, d);
        d += lanes;
    }
    while (d < hd) : (d += 1) {
        inline for (0..ht) |h| {
            var sum: f32 = 0;
            for (0..nj) |j| sum = @mulAdd(f32, scores[(g + h) * block + j], cv.load1(dt, vrows[j] + o, d), sum);
            y[(g + h) * hd + d] = @mulAdd(f32, y[(g + h) * hd + d], corr[g + h], sum);
        }
    }
}

fn accumulateBlock(comptime dt: DType, a: *const Args, y: [*]f32, corr: [*]const f32, scores: [*]const f32, vrows: *const Rows(dt), nj: usize) void {
    const s = a.s;
    const group = s.n_heads / s.n_kv_heads;
    for (0..s.n_kv_heads) |kvh| {
        const o = kvh * s.head_dim;
        var g = kvh * group;
        const end = g + group;
        while (g + head_tile <= end) : (g += head_tile) accumulateHeads(dt, head_tile, y, corr, scores, g, vrows, o, nj, s.head_dim);
        switch (end - g) {
            inline 1...head_tile - 1 => |ht| accumulateHeads(dt, ht, y, corr, scores, g, vrows, o, nj, s.head_dim),
            else => {},
        }
    }
}

/// Replaces one head's block of scores with exp(score - running max), updates the running max
/// and sum, and returns the factor that rescales what was accumulated before this block.
fn softmaxBlock(p: []f32, m: *f32, l: *f32) f32 {
    var bmax = -std.math.inf(f32);
    for (p) |x| bmax = @max(bmax, x);
    const m_new = @max(m.*, bmax);
    if (m_new == -std.math.inf(f32)) {
        // Every key so far masked (a tree's other branches): nothing to add yet.
        @memset(p, 0);
        return 1;
    }
    // exp(-inf) = 0 on the first block: the empty accumulator is simply replaced.
    const corr = @exp(m.* - m_new);
    m.* = m_new;
    var sum: f32 = 0;
    for (p) |*x| {
        x.* = @exp(x.* - m_new);
        sum += x.*;
    }
    l.* = l.* * corr + sum;
    return corr;
}

/// scores[h·block + j] += slope_h · (position of key j0 + j - p): the bias of keys j0 .. j0+nj
/// seen from position p.
fn addAlibi(s: Shape, slopes: [*]const f32, j0: usize, p: usize, nj: usize, scores: [*]f32) void {
    for (0..s.n_heads) |h| {
        for (0..nj) |j| {
            const kp = if (s.tree) |tr| tr.keyPosition(s.pos0, j0 + j) else j0 + j;
            const dist: f32 = @floatFromInt(@as(i64, @intCast(kp)) - @as(i64, @intCast(p)));
            scores[h * block + j] = @mulAdd(f32, slopes[h], dist, scores[h * block + j]);
        }
    }
}

/// Keys of query t up to its own slot pos0 + t (a tree's rows masked later), cut into `splits`
/// equal ranges.
fn keyRange(s: Shape, t: usize, splits: usize, split: usize) [2]usize {
    const last = s.pos0 + t;
    const first = s.firstKey(s.queryPosition(t));
    const chunk = std.math.divCeil(usize, last + 1 - first, splits) catch unreachable;
    const lo = @min(last + 1, first + split * chunk);
    return .{ lo, @min(last + 1, lo + chunk) };
}

fn task(comptime dt: DType, a: *const Args, i: usize) void {
    const s = a.s;
    const nh = s.n_heads;
    const hd = s.head_dim;
    const t = i / a.splits;
    var scores: [max_heads * block]f32 = undefined;
    var corr: [max_heads]f32 = undefined;
    var ml: [2 * max_heads]f32 = undefined;
    const state: [*]f32 = if (a.splits == 1) &ml else a.partial + i * nh * (hd + 2);
    const m = state[0..nh];
    const l = state[nh .. 2 * nh];
    const acc = if (a.splits == 1) a.out + t * nh * hd else state + 2 * nh;
    @memset(m, -std.math.inf(f32));
    @memset(l, 0);
    @memset(acc[0 .. nh * hd], 0);

    const q = a.q + t * nh * hd;
    const lo, const hi = keyRange(s, t, a.splits, i % a.splits);
    if (lo < hi) {
        var rows = pages.Cursor.init(a.kv, s.n_kv_heads * hd * @sizeOf(cv.Elem(dt)), lo);
        var krows: Rows(dt) = undefined;
        var vrows: Rows(dt) = undefined;
        var j0 = lo;
        while (j0 < hi) : (j0 += block) {
            const nj = @min(block, hi - j0);
            for (0..nj) |u| {
                const off = rows.next();
                krows[u] = @ptrFromInt(a.kv.k + off);
                vrows[u] = @ptrFromInt(a.kv.v + off);
            }
            scoreBlock(dt, a, q, &krows, &vrows, nj, &scores);
            if (s.tree) |tr| tr.mask(s.pos0, s.window, t, j0, nj, nh, block, &scores);
            if (s.alibi) |slopes| addAlibi(s, slopes, j0, s.queryPosition(t), nj, &scores);
            for (0..nh) |h| corr[h] = softmaxBlock(scores[h * block ..][0..nj], &m[h], &l[h]);
            accumulateBlock(dt, a, acc, &corr, &scores, &vrows, nj);
        }
    }
    if (a.splits == 1) {
        for (0..nh) |h| {
            const inv = 1 / l[h];
            for (acc[h * hd ..][0..hd]) |*x| x.* *= inv;
        }
    }
}

fn taskFor(comptime dt: DType) fn (*const Args, usize) void {
    return struct {
        fn run(a: *const Args, i: usize) void {
            task(dt, a, i);
        }
    }.run;
}

/// out = Σ_s acc_s·e^(m_s - M) / Σ_s l_s·e^(m_s - M) over the splits of each query and head.
fn merge(a: *const Args) void {
    const s = a.s;
    const nh = s.n_heads;
    const hd = s.head_dim;
    const stride = nh * (hd + 2);
    for (0..s.T) |t| for (0..nh) |h| {
        const parts = a.partial + t * a.splits * stride;
        var mx = -std.math.inf(f32);
        for (0..a.splits) |sp| mx = @max(mx, parts[sp * stride + h]);
        var total: f32 = 0;
        const out = a.out + (t * nh + h) * hd;
        @memset(out[0..hd], 0);
        for (0..a.splits) |sp| {
            const p = parts + sp * stride;
            const w = @exp(p[h] - mx); // an empty split has m = -inf: weight 0
            total += p[nh + h] * w;
            for (0..hd) |d| out[d] = @mulAdd(f32, p[2 * nh + h * hd + d], w, out[d]);
        }
        for (out[0..hd]) |*x| x.* /= total;
    };
}

/// out[T, nH·hd] = attention of q over slots 0 .. pos0+T-1 of the paged cache `kv`.
/// error.BadIndex when a page the queries can see has a negative id.
pub fn attention(out: [*]f32, q: [*]const f32, kv: pages.Paged, s: Shape) Error!void {
    if (s.n_kv_heads == 0 or s.n_heads % s.n_kv_heads != 0 or s.n_heads > max_heads or s.head_dim == 0) return error.BadShape;
    if (kv.page_size == 0) return error.BadShape;
    if (s.T == 0) return;
    const keys = s.pos0 + s.T;
    // The first query sees the earliest key; pages wholly before the window are never read.
    const first = s.firstKey(s.pos0);
    if (!pages.pagesValid(kv, first, keys)) return error.BadIndex;
    const visible = if (s.window > 0) @min(keys, s.window) else keys;
    const work = s.T * s.n_heads * visible * s.head_dim;
    // Below ~64K multiply-adds one thread beats waking the pool; below 2·T tasks the keys are
    // split, into ranges of at least 64 keys so the merge stays small next to the work.
    const target = if (work < 1 << 16) 1 else pool.concurrency() * 2;
    const splits = std.math.clamp(std.math.divCeil(usize, target, s.T) catch unreachable, 1, @max(1, visible / 64));
    var a = Args{ .out = out, .q = q, .kv = kv, .s = s, .splits = splits, .partial = undefined };
    var partial: []f32 = &.{};
    if (splits > 1) {
        partial = try std.heap.c_allocator.alloc(f32, s.T * splits * s.n_heads * (s.head_dim + 2));
        a.partial = partial.ptr;
    }
    defer std.heap.c_allocator.free(partial);
    const ctx: *const Args = &a;
    switch (kv.dtype) {
        inline .f32, .f16, .bf16 => |dt| {
            if (work < 1 << 16) {
                for (0..s.T * splits) |i| task(dt, ctx, i);
            } else {
                pool.run(s.T * splits, ctx, taskFor(dt));
            }
        },
        else => return error.BadShape, // api.zig refuses other KV types first
    }
    if (splits > 1) merge(ctx);
}
