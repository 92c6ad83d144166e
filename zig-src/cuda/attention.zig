//! Causal grouped-query attention over one sequence's f32 KV cache (see backend.ts
//! `attention`). Query t sits at position p = pos0 + t and sees keys j with
//! max(0, p - window + 1) <= j <= p (window 0: no lower bound). Query head h reads KV head
//! h / (nHeads / nKvHeads).
//!
//! Flash-decoding shape: the visible keys of one (query, head) are cut into `splits` equal
//! chunks, one block each, so that decode (1 query × a few heads) still fills the GPU. In a
//! block, each of the 8 warps runs an online softmax (running max m, running sum l, rescaled
//! accumulator) over its keys, 4 keys per step so 4 rows of K and V are in flight at once;
//! no score array is needed and any context length fits. Lane l holds dimensions l, l+32, ...
//! of q and of the accumulator. Scores are kept in base 2 (q pre-scaled by scale·log2 e), so
//! each exponential is one ex2. The warps' results are merged through shared memory; with one
//! split the block writes the output, otherwise it writes its partial (acc, m, l) to `scratch`
//! and `attention_combine` merges the splits.
//!
//! Launch: attention_f32 grid (T, nHeads, splits), block 256;
//!         attention_combine_f32 (only when splits > 1) grid (T, nHeads), block 256.
//! headDim <= 256 (checked on the host). scratch: [T, nHeads, splits, headDim + 2] f32.
const c = @import("common.zig");

pub const max_head_dim = 256;
const warps = 8;
const per_lane = max_head_dim / 32;
/// Keys a warp handles per step.
const G = 4;

var part_m: [warps]f32 addrspace(.shared) = undefined;
var part_l: [warps]f32 addrspace(.shared) = undefined;
var part_acc: [warps * max_head_dim]f32 addrspace(.shared) = undefined;

const Merged = struct { m: f32, num: f32, den: f32 };

/// Merges n partial softmax results, partial i being (ms[i*ml_stride], ls[i*ml_stride],
/// accs[i*acc_stride + d]); each weighs
/// exp2(m_i - max m). A partial that saw no key (m = -inf, l = 0) is skipped: its weight
/// would be exp2(-inf - -inf) = NaN when no partial saw a key.
inline fn merge(n: usize, ms: anytype, ls: anytype, ml_stride: usize, accs: anytype, acc_stride: usize, d: usize) Merged {
    var r = Merged{ .m = -c.inf, .num = 0, .den = 0 };
    for (0..n) |i| r.m = @max(r.m, ms[i * ml_stride]);
    for (0..n) |i| {
        const mi = ms[i * ml_stride];
        if (mi == -c.inf) continue;
        const f = c.exp2(mi - r.m);
        r.num += accs[i * acc_stride + d] * f;
        r.den += ls[i * ml_stride] * f;
    }
    return r;
}

pub fn kernel(
    out: c.Ptr(f32),
    q: c.ConstPtr(f32),
    k_cache: c.ConstPtr(f32),
    v_cache: c.ConstPtr(f32),
    scratch: c.Ptr(f32),
    n_heads: u32,
    n_kv_heads: u32,
    head_dim: u32,
    pos0: u32,
    window: u32,
    scale: f32,
    splits: u32,
) callconv(.kernel) void {
    const lane = c.threadIdx() & 31;
    const warp = c.threadIdx() >> 5;
    const t = c.blockIdx(0);
    const h = c.blockIdx(1);
    const split = c.blockIdx(2);
    const hd: usize = head_dim;
    const p: usize = @as(usize, pos0) + t;
    const lo: usize = if (window > 0 and p + 1 > window) p + 1 - window else 0;
    // This block's keys: [first, end).
    const chunk = (p + 1 - lo + splits - 1) / splits;
    const first = lo + split * chunk;
    const end = @min(p + 1, first + chunk);
    const kv_stride = @as(usize, n_kv_heads) * hd;
    const kv_off = @as(usize, h / (n_heads / n_kv_heads)) * hd;
    const row = @as(usize, t) * n_heads + h;
    const qrow = q + row * hd;

    var qv: [per_lane]f32 = undefined;
    var acc: [per_lane]f32 = .{0} ** per_lane;
    inline for (0..per_lane) |e| {
        const d = lane + e * 32;
        qv[e] = if (d < hd) qrow[d] * (scale * c.log2e) else 0;
    }

    var m: f32 = -c.inf;
    var l: f32 = 0;
    // Warp w takes keys first + G*w .. + G-1, then strides by G*warps. The loop bound depends
    // only on the warp, so all 32 lanes shuffle together.
    var j0: usize = first + G * warp;
    while (j0 < end) : (j0 += G * warps) {
        var s: [G]f32 = undefined;
        inline for (0..G) |g| {
            var dot: f32 = 0;
            if (j0 + g < end) {
                const krow = k_cache + (j0 + g) * kv_stride + kv_off;
                inline for (0..per_lane) |e| {
                    const d = lane + e * 32;
                    if (d < hd) dot += qv[e] * krow[d];
                }
            }
            s[g] = dot;
        }
        inline for (0..G) |g| s[g] = c.warpSum(s[g]);
        var m_new = m;
        inline for (0..G) |g| {
            if (j0 + g >= end) s[g] = -c.inf; // past the chunk: weight 0
            m_new = @max(m_new, s[g]);
        }
        const corr = c.exp2(m - m_new); // 0 on the first step (m = -inf)
        var pj: [G]f32 = undefined;
        inline for (0..G) |g| pj[g] = c.exp2(s[g] - m_new);
        l *= corr;
        inline for (0..G) |g| l += pj[g];
        inline for (0..per_lane) |e| acc[e] *= corr;
        inline for (0..G) |g| {
            if (j0 + g < end) {
                const vrow = v_cache + (j0 + g) * kv_stride + kv_off;
                inline for (0..per_lane) |e| {
                    const d = lane + e * 32;
                    if (d < hd) acc[e] += pj[g] * vrow[d];
                }
            }
        }
        m = m_new;
    }

    // Shared arrays are always accessed through pointers: indexing the global by value
    // makes the compiler copy the whole array to local memory first.
    const pm: *addrspace(.shared) [warps]f32 = &part_m;
    const pl: *addrspace(.shared) [warps]f32 = &part_l;
    const pa: *addrspace(.shared) [warps * max_head_dim]f32 = &part_acc;
    if (lane == 0) {
        pm[warp] = m;
        pl[warp] = l;
    }
    inline for (0..per_lane) |e| {
        const d = lane + e * 32;
        if (d < hd) pa[warp * max_head_dim + d] = acc[e];
    }
    c.syncThreads();
    const d = c.threadIdx();
    if (d >= hd) return;
    const r = merge(warps, pm, pl, 1, pa, max_head_dim, d);
    if (splits == 1) {
        out[row * hd + d] = r.num / r.den;
        return;
    }
    // This split's partial, on the block's max; an empty split stores m = -inf, l = 0.
    const part = scratch + (row * splits + split) * (hd + 2);
    part[d] = r.num;
    if (d == 0) {
        part[hd] = r.m;
        part[hd + 1] = r.den;
    }
}

/// Merges the splits' partials of each (query, head) into the output.
pub fn combine(out: c.Ptr(f32), scratch: c.ConstPtr(f32), n_heads: u32, head_dim: u32, splits: u32) callconv(.kernel) void {
    const hd: usize = head_dim;
    const d = c.threadIdx();
    if (d >= hd) return;
    const row = @as(usize, c.blockIdx(0)) * n_heads + c.blockIdx(1);
    const parts = scratch + row * splits * (hd + 2);
    const r = merge(splits, parts + hd, parts + hd + 1, hd + 2, parts, hd + 2, d);
    out[row * hd + d] = r.num / r.den;
}
