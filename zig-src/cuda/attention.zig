//! Causal grouped-query attention over one sequence's f32 KV cache (see backend.ts
//! `attention`). Query t sits at position p = pos0 + t and sees keys j with
//! max(0, p - window + 1) <= j <= p (window 0: no lower bound). Query head h reads KV head
//! h / (nHeads / nKvHeads).
//!
//! One block per (head, query token); each of its 8 warps runs an online softmax (running max,
//! running sum, rescaled accumulator) over every 8th visible key, so no score array is needed
//! and any context length fits; the warps' partial results are merged at the end. Lane l holds
//! dimensions l, l+32, ... of q and of the accumulator. Scores are kept in base 2
//! (q pre-scaled by scale·log2 e) so each exponential is a single ex2.
//!
//! Launch: grid (T, nHeads), block 256 (T on x: grid y is limited to 65535). headDim <= 256 (checked on the host).
const c = @import("common.zig");

pub const max_head_dim = 256;
const warps = 8;
const per_lane = max_head_dim / 32;

var part_m: [warps]f32 addrspace(.shared) = undefined;
var part_l: [warps]f32 addrspace(.shared) = undefined;
var part_acc: [warps * max_head_dim]f32 addrspace(.shared) = undefined;

pub fn kernel(
    out: c.Ptr(f32),
    q: c.ConstPtr(f32),
    k_cache: c.ConstPtr(f32),
    v_cache: c.ConstPtr(f32),
    n_heads: u32,
    n_kv_heads: u32,
    head_dim: u32,
    pos0: u32,
    window: u32,
    scale: f32,
) callconv(.kernel) void {
    const lane = c.threadIdx() & 31;
    const warp = c.threadIdx() >> 5;
    const t = c.blockIdx(0);
    const h = c.blockIdx(1);
    const hd: usize = head_dim;
    const p: usize = @as(usize, pos0) + t;
    const lo: usize = if (window > 0 and p + 1 > window) p + 1 - window else 0;
    const kv_stride = @as(usize, n_kv_heads) * hd;
    const kv_off = @as(usize, h / (n_heads / n_kv_heads)) * hd;
    const qrow = q + (@as(usize, t) * n_heads + h) * hd;

    var qv: [per_lane]f32 = undefined;
    var acc: [per_lane]f32 = .{0} ** per_lane;
    inline for (0..per_lane) |e| {
        const d = lane + e * 32;
        qv[e] = if (d < hd) qrow[d] * (scale * c.log2e) else 0;
    }

    var m: f32 = -c.inf;
    var l: f32 = 0;
    // The loop bound depends only on the warp, so all 32 lanes shuffle together.
    var j: usize = lo + warp;
    while (j <= p) : (j += warps) {
        const krow = k_cache + j * kv_stride + kv_off;
        var s: f32 = 0;
        inline for (0..per_lane) |e| {
            const d = lane + e * 32;
            if (d < hd) s += qv[e] * krow[d];
        }
        s = c.warpSum(s);
        const m_new = @max(m, s);
        const corr = c.exp2(m - m_new); // 0 on the first key (m = -inf)
        const pj = c.exp2(s - m_new);
        l = l * corr + pj;
        const vrow = v_cache + j * kv_stride + kv_off;
        inline for (0..per_lane) |e| {
            const d = lane + e * 32;
            if (d < hd) acc[e] = acc[e] * corr + pj * vrow[d];
        }
        m = m_new;
    }

    // Merge the warps: rescale each partial to the global max. A warp that saw no key has
    // m = -inf and weight exp2(-inf) = 0; key p is always visible, so the max is finite.
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
    var gm: f32 = -c.inf;
    inline for (0..warps) |w| gm = @max(gm, pm[w]);
    var num: f32 = 0;
    var den: f32 = 0;
    inline for (0..warps) |w| {
        const f = c.exp2(pm[w] - gm);
        num += pa[w * max_head_dim + d] * f;
        den += pl[w] * f;
    }
    out[(@as(usize, t) * n_heads + h) * hd + d] = num / den;
}
