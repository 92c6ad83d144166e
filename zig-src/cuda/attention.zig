//! Causal grouped-query attention over one sequence's paged KV cache (see backend.ts
//! `attention`, and paged_kv.zig for the layout). Query t sits at position p = pos0 + t and
//! sees keys j with max(0, p - window + 1) <= j <= p (window 0: no lower bound). Query head h
//! reads KV head h / (nHeads / nKvHeads). With `use_alibi`, head h adds alibi[h] · (j - p) to
//! each score (Baichuan2-13B); otherwise `alibi` is never read. Keys and values are read in the cache's dtype (f32,
//! f16 or bf16: a 16-bit cache moves half the bytes) and widened to f32.
//!
//! Tree attention (a draft tree verified in one pass; backend.ts AttentionShape.tree, the CPU's
//! attention_tree.zig): with `tree_rows` = T > 0, `tree` is int32 [2T] — depth, then subtree end,
//! of rows in depth-first preorder. Query t sits at position pos0 + depth[t] and sees slots before
//! pos0 and the slots pos0 + r of its ancestors r (r <= t < end[r]); the others score -inf, and a
//! step whose keys are all masked leaves the running state alone (a tree row reads only the
//! slots up to its own, pos0 + t). With tree_rows = 0, `tree` is never read.
//!
//! Flash-decoding shape: the visible keys of one (query, head) are cut into `splits` equal
//! chunks, one block each, so that decode (1 query × a few heads) still fills the GPU. In a
//! block, each of the 8 warps runs an online softmax (running max m, running sum l, rescaled
//! accumulator) over its keys, 4 keys per step with their K and V rows loaded together, so 8
//! rows are in flight at once; no score array is needed and any context length fits. Scores are
//! kept in base 2 (q pre-scaled by scale·log2 e), so each exponential is one ex2. The warps'
//! results are merged through shared memory; with one split the block writes the output,
//! otherwise it writes its partial (acc, m, l) to `scratch` and `attention_combine` merges the
//! splits.
//!
//! Lane l holds dimensions 128e + 4l .. 128e + 4l + 3 of q and of the accumulator (e < 2), so a
//! row is read with one 16-byte (f32) or 8-byte (f16, bf16) load per lane and chunk when head
//! rows start on four elements (headDim % 4 == 0 and aligned bases; else element by element).
//!
//! Pages: a warp works in rounds of 32 keys (8 steps of 4; 16 of 2 in the wide kernel); lane i looks up key i of the round
//! (one page-table read and one division, the 32 in parallel, a round ahead), and the warp
//! gets each key's slot by a shuffle, so no key costs a division of its own and any page size
//! (1 .. beyond the context) takes the same path.
//!
//! Launch: attention_<kv dtype> grid (T, nHeads, splits), block 256;
//!         attention_combine_f32 (only when splits > 1) grid (T, nHeads), block 256.
//! headDim <= 256 (checked on the host). attention_wide_<kv dtype>: the same for headDim <= 640
//! (multi-head latent attention's absorbed query: DeepSeek's 512 + 64), with 2 keys per step so
//! the wider rows still fit the registers. scratch: [T, nHeads, splits, headDim + 2] f32.
const c = @import("common.zig");
const DType = @import("../dtype.zig").DType;
const slotOf = @import("paged_kv.zig").slotOf;

pub const max_head_dim = 256;
pub const wide_max_head_dim = 640;
const warps = 8;
/// Dimensions a warp covers per 4-element group of each lane.
const span = 32 * 4;

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

/// This lane's dimensions of one head row at `row`, as stored (zeros past hd: 16-bit rows stay
/// packed until used, which keeps 8 rows in flight within 128 registers): one load per chunk
/// when `vec` (the row starts on four elements), else one element at a time.
inline fn loadRow(comptime dt: DType, comptime chunks: comptime_int, row: c.ConstPtr(c.Elem(dt)), lane: usize, hd: usize, vec: bool) [chunks]@Vector(4, c.Elem(dt)) {
    var r: [chunks]@Vector(4, c.Elem(dt)) = @splat(@splat(0));
    inline for (0..chunks) |e| {
        const d0 = e * span + lane * 4;
        if (vec) {
            if (d0 < hd) r[e] = c.loadRaw(dt, 4, row + d0);
        } else {
            inline for (0..4) |i| {
                if (d0 + i < hd) r[e][i] = row[d0 + i];
            }
        }
    }
    return r;
}

/// The slot of position j, or 0 (unread) for j at or past `end`.
inline fn lookup(page_table: c.ConstPtr(i32), page_size: u32, j: usize, end: usize) usize {
    return if (j < end) slotOf(page_table, page_size, @intCast(j)) else 0;
}

pub fn Attention(comptime dt: DType) type {
    return AttentionOf(dt, max_head_dim, 4);
}

pub fn AttentionWide(comptime dt: DType) type {
    return AttentionOf(dt, wide_max_head_dim, 2);
}

/// The kernel for heads of at most `max_hd` dimensions, `G` keys per warp step.
fn AttentionOf(comptime dt: DType, comptime max_hd: comptime_int, comptime G: comptime_int) type {
    const E = c.Elem(dt);
    const chunks = max_hd / span;
    // Steps of a warp per round: one key per lane of the warp.
    const steps = 32 / G;
    // Keys all warps of a block take in one round.
    const round = G * warps * steps;
    return struct {
        var part_m: [warps]f32 addrspace(.shared) = undefined;
        var part_l: [warps]f32 addrspace(.shared) = undefined;
        var part_acc: [warps * max_hd]f32 addrspace(.shared) = undefined;

        pub fn kernel(
            out: c.Ptr(f32),
            q: c.ConstPtr(f32),
            k_pages: c.ConstPtr(E),
            v_pages: c.ConstPtr(E),
            page_table: c.ConstPtr(i32),
            scratch: c.Ptr(f32),
            n_heads: u32,
            n_kv_heads: u32,
            head_dim: u32,
            pos0: u32,
            window: u32,
            scale: f32,
            splits: u32,
            page_size: u32,
            alibi: c.ConstPtr(f32),
            use_alibi: u32,
            tree: c.ConstPtr(i32),
            tree_rows: u32,
        ) callconv(.kernel) void {
            const lane = c.threadIdx() & 31;
            const warp = c.threadIdx() >> 5;
            const t = c.blockIdx(0);
            const h = c.blockIdx(1);
            const split = c.blockIdx(2);
            const hd: usize = head_dim;
            const is_tree = tree_rows != 0;
            const depth_t: usize = if (is_tree) @intCast(tree[t]) else t;
            // The query's position, and its own slot (the last it may read).
            const p: usize = @as(usize, pos0) + depth_t;
            const last: usize = @as(usize, pos0) + t;
            const lo_window: usize = if (window > 0 and p + 1 > window) p + 1 - window else 0;
            const lo: usize = if (is_tree) @min(lo_window, @as(usize, pos0)) else lo_window;
            // This block's keys: [first, end).
            const chunk = (last + 1 - lo + splits - 1) / splits;
            const first = lo + split * chunk;
            const end = @min(last + 1, first + chunk);
            const width = @as(usize, n_kv_heads) * hd;
            const kv_off = @as(usize, h / (n_heads / n_kv_heads)) * hd;
            const row = @as(usize, t) * n_heads + h;
            const qrow = q + row * hd;
            // Uniform across the grid: every head row starts on four elements when headDim is a
            // multiple of 4 (so are width and kv_off) and both bases are.
            const vec = hd % 4 == 0 and c.isAligned(k_pages, 4 * @sizeOf(E)) and c.isAligned(v_pages, 4 * @sizeOf(E));

            var qv: [chunks]@Vector(4, f32) = undefined;
            var acc: [chunks]@Vector(4, f32) = @splat(@splat(0));
            inline for (0..chunks) |e| {
                inline for (0..4) |i| {
                    const d = e * span + lane * 4 + i;
                    qv[e][i] = if (d < hd) qrow[d] * (scale * c.log2e) else 0;
                }
            }

            // ALiBi in base 2, like the scores: slope · log2 e per key of distance.
            const slope: f32 = if (use_alibi != 0) alibi[h] * c.log2e else 0;
            var m: f32 = -c.inf;
            var l: f32 = 0;
            // Rounds of 8 steps: step s of warp w takes keys jw + G*warps*s .. + G-1, where jw
            // = first + G*w + round*r, so warps take turns by G keys and a short context still
            // keeps all 8 busy. Lane i looks up key i of the warp's round (step i / G, key i % G);
            // the next round's lookups are issued before this round's rows are loaded. Loop
            // bounds depend only on the warp, so all 32 lanes shuffle together.
            const lane_key = G * warps * (lane / G) + lane % G;
            var jw: usize = first + G * warp;
            var slot = lookup(page_table, page_size, jw + lane_key, end);
            while (jw < end) : (jw += round) {
                const next = lookup(page_table, page_size, jw + round + lane_key, end);
                const slot_lo: u32 = @truncate(slot);
                const slot_hi: u32 = @truncate(slot >> 32);
                var step: u32 = 0;
                while (step < steps and jw + G * warps * step < end) : (step += 1) {
                    const j0 = jw + G * warps * step;
                    var kr: [G][chunks]@Vector(4, E) = @splat(@splat(@splat(0)));
                    var vr: [G][chunks]@Vector(4, E) = @splat(@splat(@splat(0)));
                    inline for (0..G) |g| {
                        const src = step * G + @as(u32, g);
                        const sl = @as(usize, c.shflIdxU32(slot_hi, src)) << 32 | c.shflIdxU32(slot_lo, src);
                        const at = sl * width + kv_off;
                        if (j0 + g < end) {
                            kr[g] = loadRow(dt, chunks, k_pages + at, lane, hd, vec);
                            vr[g] = loadRow(dt, chunks, v_pages + at, lane, hd, vec);
                        }
                    }
                    var s: [G]f32 = undefined;
                    inline for (0..G) |g| {
                        var dot: f32 = 0;
                        inline for (0..chunks) |e| dot += @reduce(.Add, qv[e] * c.widen(dt, 4, kr[g][e]));
                        s[g] = c.warpSum(dot);
                        const j = j0 + g;
                        // A tree key's position is its row's depth past pos0; its row r is visible
                        // to query t when r is an ancestor (or t itself) within the window.
                        var key_pos: usize = j;
                        var hidden = false;
                        if (is_tree and j >= pos0 and j < end) {
                            const r = j - pos0;
                            const depth_r: usize = @intCast(tree[r]);
                            key_pos = @as(usize, pos0) + depth_r;
                            const end_r: usize = @intCast(tree[tree_rows + r]);
                            hidden = t >= end_r or (window > 0 and depth_t - depth_r >= window);
                        }
                        if (use_alibi != 0) {
                            const dist: f32 = @floatFromInt(@as(i64, @intCast(key_pos)) - @as(i64, @intCast(p)));
                            s[g] += slope * dist;
                        }
                        if (hidden) s[g] = -c.inf;
                    }
                    var m_new = m;
                    inline for (0..G) |g| {
                        if (j0 + g >= end) s[g] = -c.inf; // past the chunk: weight 0
                        m_new = @max(m_new, s[g]);
                    }
                    // Every key of the step masked, none seen before (a tree's other branches):
                    // exp2(-inf - -inf) would be NaN. Uniform across the warp (the scores are sums).
                    if (m_new == -c.inf) continue;
                    const corr = c.exp2(m - m_new); // 0 on the first step (m = -inf)
                    var pj: [G]f32 = undefined;
                    inline for (0..G) |g| pj[g] = c.exp2(s[g] - m_new);
                    l *= corr;
                    inline for (0..G) |g| l += pj[g];
                    inline for (0..chunks) |e| {
                        acc[e] *= @splat(corr);
                        inline for (0..G) |g| acc[e] += @as(@Vector(4, f32), @splat(pj[g])) * c.widen(dt, 4, vr[g][e]);
                    }
                    m = m_new;
                }
                slot = next;
            }

            // Shared arrays are always accessed through pointers: indexing the global by value
            // makes the compiler copy the whole array to local memory first.
            const pm: *addrspace(.shared) [warps]f32 = &part_m;
            const pl: *addrspace(.shared) [warps]f32 = &part_l;
            const pa: *addrspace(.shared) [warps * max_hd]f32 = &part_acc;
            if (lane == 0) {
                pm[warp] = m;
                pl[warp] = l;
            }
            inline for (0..chunks) |e| {
                inline for (0..4) |i| {
                    const d = e * span + lane * 4 + i;
                    if (d < hd) pa[warp * max_hd + d] = acc[e][i];
                }
            }
            c.syncThreads();
            // One thread per dimension, in strides of the block for heads wider than it.
            var d: usize = c.threadIdx();
            while (d < hd) : (d += c.blockDim()) {
                const r = merge(warps, pm, pl, 1, pa, max_hd, d);
                if (splits == 1) {
                    out[row * hd + d] = r.num / r.den;
                    continue;
                }
                // This split's partial, on the block's max; an empty split stores m = -inf, l = 0.
                const part = scratch + (row * splits + split) * (hd + 2);
                part[d] = r.num;
                if (d == 0) {
                    part[hd] = r.m;
                    part[hd + 1] = r.den;
                }
            }
        }
    };
}

/// Merges the splits' partials of each (query, head) into the output.
pub fn combine(out: c.Ptr(f32), scratch: c.ConstPtr(f32), n_heads: u32, head_dim: u32, splits: u32) callconv(.kernel) void {
    const hd: usize = head_dim;
    const row = @as(usize, c.blockIdx(0)) * n_heads + c.blockIdx(1);
    const parts = scratch + row * splits * (hd + 2);
    var d: usize = c.threadIdx();
    while (d < hd) : (d += c.blockDim()) {
        const r = merge(splits, parts + hd, parts + hd + 1, hd + 2, parts, hd + 2, d);
        out[row * hd + d] = r.num / r.den;
    }
}
