//! Causal grouped-query attention for prefill (many queries of one sequence), the same function
//! as attention.zig's kernel (see backend.ts `attention`) over the same paged KV cache
//! (paged_kv.zig): query t sits at position p = pos0 + t and sees keys j with
//! max(0, p - window + 1) <= j <= p (window 0: no lower bound); query head h reads KV head
//! h / (nHeads / nKvHeads). Keys and values are read in the cache's dtype and widened to f32 as
//! they are staged in shared memory. With `use_alibi`, head h adds alibi[h] · (j - p) to each
//! score (Baichuan2-13B), as attention.zig does.
//!
//! One block takes a tile of `tile_q` consecutive queries of one head, so each key and value row
//! is read from L2 once per tile rather than once per query (the one-query-per-block kernel spent
//! 510 µs per layer of a 512-token prefill re-reading the cache, bench/TUNING.md). Keys go
//! through shared memory `tile_k` rows at a time: the first warp looks up the slots of the
//! next tile's 32 keys in the page table (one per lane) while all threads load this tile's rows
//! in groups of four elements (16-byte loads of f32, 8-byte of f16/bf16). Warp w owns queries 2w and 2w+1 of the tile;
//! for each key tile, lane l scores key l against the query (dot over headDim from shared
//! memory), the warp runs one online-softmax step (running max m, sum l, rescaled accumulator)
//! over the 32 scores, and lane l accumulates output dimensions l, l+32, ... over the 32 values,
//! each probability broadcast by a shuffle. Scores are in base 2 (q pre-scaled by
//! scale·log2 e), as in attention.zig.
//!
//! Launch: attention_prefill_<kv dtype> grid (ceil(T / tile_q), nHeads), block 256.
//! headDim <= 128 and a multiple of 4, K and V bases aligned to four elements (the host checks;
//! other shapes take attention.zig).
const c = @import("common.zig");
const DType = @import("../dtype.zig").DType;
const slotOf = @import("paged_kv.zig").slotOf;

pub const tile_q = 16;
pub const max_head_dim = 128;
const tile_k = 32;
const warps = 8;
const q_per_warp = tile_q / warps;
const per_lane = max_head_dim / 32;
/// K rows are padded by 4 floats: lane l reads row l with 16-byte loads, and a stride of 132
/// floats puts the 8 lanes of each load phase on distinct banks.
const k_stride = max_head_dim + 4;

var sh_q: [tile_q * max_head_dim]f32 align(16) addrspace(.shared) = undefined;
var sh_k: [tile_k * k_stride]f32 align(16) addrspace(.shared) = undefined;
var sh_v: [tile_k * max_head_dim]f32 align(16) addrspace(.shared) = undefined;
/// Element offset in the K (and V) pages of each row of the key tile, for this tile and the
/// next (looked up while this one loads).
var sh_row: [2 * tile_k]usize addrspace(.shared) = undefined;

inline fn lowestKey(p: usize, window: u32) usize {
    return if (window > 0 and p + 1 > window) p + 1 - window else 0;
}

/// Element offset of key j's head row in the K (and V) pages.
inline fn rowOf(page_table: c.ConstPtr(i32), page_size: u32, j: usize, width: usize, kv_off: usize) usize {
    return slotOf(page_table, page_size, @intCast(j)) * width + kv_off;
}

pub fn AttentionPrefill(comptime dt: DType) type {
    const E = c.Elem(dt);
    return struct {
        pub fn kernel(
            out: c.Ptr(f32),
            q: c.ConstPtr(f32),
            k_pages: c.ConstPtr(E),
            v_pages: c.ConstPtr(E),
            page_table: c.ConstPtr(i32),
            n_heads: u32,
            n_kv_heads: u32,
            head_dim: u32,
            T: u32,
            pos0: u32,
            window: u32,
            scale: f32,
            page_size: u32,
            alibi: c.ConstPtr(f32),
            use_alibi: u32,
        ) callconv(.kernel) void {
            const tid = c.threadIdx();
            const lane = tid & 31;
            const warp = tid >> 5;
            const hd: usize = head_dim;
            const t_first: usize = @as(usize, c.blockIdx(0)) * tile_q;
            const t_end: usize = @min(@as(usize, T), t_first + tile_q);
            const h: usize = c.blockIdx(1);
            const width = @as(usize, n_kv_heads) * hd;
            const kv_off = (h / (n_heads / n_kv_heads)) * hd;
            const sq: *addrspace(.shared) [tile_q * max_head_dim]f32 = &sh_q;
            const sk: *addrspace(.shared) [tile_k * k_stride]f32 = &sh_k;
            const sv: *addrspace(.shared) [tile_k * max_head_dim]f32 = &sh_v;
            const srow: *addrspace(.shared) [2 * tile_k]usize = &sh_row;

            // The tile's queries, scaled into base 2; rows past T are zeros (never written out).
            {
                var i: usize = tid;
                while (i < tile_q * hd) : (i += 256) {
                    const qi = i / hd;
                    const d = i % hd;
                    const t = t_first + qi;
                    sq[qi * max_head_dim + d] = if (t < t_end) q[(t * n_heads + h) * hd + d] * (scale * c.log2e) else 0;
                }
            }

            // ALiBi in base 2, like the scores.
            const slope: f32 = if (use_alibi != 0) alibi[h] * c.log2e else 0;
            var m: [q_per_warp]f32 = .{-c.inf} ** q_per_warp;
            var l: [q_per_warp]f32 = .{0} ** q_per_warp;
            var acc: [q_per_warp][per_lane]f32 = .{.{0} ** per_lane} ** q_per_warp;

            // Keys any query of the tile sees: from the first query's lowest to the last query's own.
            const key_lo = lowestKey(@as(usize, pos0) + t_first, window);
            const key_end = @as(usize, pos0) + t_end; // exclusive
            // The first warp looks up each tile's rows one tile ahead, into the half of srow
            // that was last read two tiles ago (before the previous tile's second barrier).
            if (tid < tile_k and key_lo + tid < key_end) srow[tid] = rowOf(page_table, page_size, key_lo + tid, width, kv_off);
            var j0 = key_lo;
            var half: usize = 0;
            while (j0 < key_end) : ({
                j0 += tile_k;
                half ^= tile_k;
            }) {
                c.syncThreads(); // the previous tile (and, first time round, the query fill and lookups) is done with
                if (tid < tile_k and j0 + tile_k + tid < key_end) {
                    srow[(half ^ tile_k) + tid] = rowOf(page_table, page_size, j0 + tile_k + tid, width, kv_off);
                }
                {
                    var i: usize = tid;
                    while (i < tile_k * hd / 4) : (i += 256) {
                        const r = (i * 4) / hd;
                        const d = (i * 4) % hd;
                        var kv4: @Vector(4, f32) = @splat(0);
                        var vv4: @Vector(4, f32) = @splat(0);
                        if (j0 + r < key_end) {
                            kv4 = c.loadElems(dt, 4, k_pages + srow[half + r] + d);
                            vv4 = c.loadElems(dt, 4, v_pages + srow[half + r] + d);
                        }
                        @as(*addrspace(.shared) align(16) @Vector(4, f32), @ptrCast(@alignCast(&sk[r * k_stride + d]))).* = kv4;
                        @as(*addrspace(.shared) align(16) @Vector(4, f32), @ptrCast(@alignCast(&sv[r * max_head_dim + d]))).* = vv4;
                    }
                }
                c.syncThreads();

                inline for (0..q_per_warp) |qq| {
                    const qi = warp * q_per_warp + qq;
                    const t = t_first + qi;
                    // Uniform across the warp: every lane has the same t.
                    if (t < t_end) {
                        const p = @as(usize, pos0) + t;
                        const lo = lowestKey(p, window);
                        const j = j0 + lane;
                        var s: f32 = 0;
                        var d: usize = 0;
                        while (d < hd) : (d += 4) {
                            const qv = @as(*addrspace(.shared) align(16) const @Vector(4, f32), @ptrCast(@alignCast(&sq[qi * max_head_dim + d]))).*;
                            const kv = @as(*addrspace(.shared) align(16) const @Vector(4, f32), @ptrCast(@alignCast(&sk[lane * k_stride + d]))).*;
                            s += @reduce(.Add, qv * kv);
                        }
                        if (use_alibi != 0) s += slope * (@as(f32, @floatFromInt(j)) - @as(f32, @floatFromInt(p)));
                        if (j > p or j < lo) s = -c.inf;
                        const m_new = @max(m[qq], c.warpMax(s));
                        // No visible key yet (a window's early tiles): nothing to add, and
                        // exp2(-inf - -inf) would be NaN.
                        if (m_new != -c.inf) {
                            const corr = c.exp2(m[qq] - m_new);
                            const pj = c.exp2(s - m_new);
                            l[qq] = l[qq] * corr + c.warpSum(pj);
                            inline for (0..per_lane) |e| acc[qq][e] *= corr;
                            for (0..tile_k) |jj| {
                                const pb = c.shflIdx(pj, @intCast(jj));
                                inline for (0..per_lane) |e| {
                                    const dd = lane + e * 32;
                                    if (dd < hd) acc[qq][e] += pb * sv[jj * max_head_dim + dd];
                                }
                            }
                            m[qq] = m_new;
                        }
                    }
                }
            }

            inline for (0..q_per_warp) |qq| {
                const t = t_first + warp * q_per_warp + qq;
                if (t < t_end) {
                    const o = out + (t * n_heads + h) * hd;
                    inline for (0..per_lane) |e| {
                        const dd = lane + e * 32;
                        if (dd < hd) o[dd] = acc[qq][e] / l[qq];
                    }
                }
            }
        }
    };
}
