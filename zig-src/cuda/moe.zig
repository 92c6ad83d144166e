//! Mixture-of-experts routing and the scatter of expert outputs (backend.ts `moeRoute`,
//! `scatterAddRows`; `gatherRows` is the f32 embedding gather, embedding.zig).
//!
//! moe_route: one warp per row of router logits [E]. Lane l holds experts l, l+32, ... in
//! registers (E <= 512: 16 per lane), so softmax and every selection step are warp reductions
//! with no shared memory and no barriers. Scores: softmax over all E in f32 (max-subtracted, one
//! ex2.approx per expert: relative error ~2^-22 per exponential, so ~1e-6 on a weight), or the
//! sigmoid 1 / (1 + e^-x) with the same exponential. Choice scores add the selection bias.
//! Groups (DeepSeek): each group's score (its largest choice score, or the sum of its two
//! largest) is reduced over the warp and kept by lane g % 32; the `group_topk` best groups are
//! picked by repeated arg-max, and experts of the other groups leave the race (choice -inf).
//! Top-k: k rounds of a warp arg-max over (choice desc, id asc), each winner marked taken by
//! its lane; lane r keeps the r-th winner's unbiased score (k <= 32), so the normalizing sum
//! is one more warp reduction.
//!
//! Launch: moe_route_<bias dtype> grid (ceil(N / 8)), block 256 (warp w of block b: row 8b + w;
//! without a bias, the f32 kernel with has_bias = 0). Limits (checked on the host): E <= 512,
//! k <= 32, k <= E, groups dividing E.
//! scatter_add_rows_f32: grid (rows, ceil(width / 256)), block 256, one thread per element.
const c = @import("common.zig");
const DType = @import("../dtype.zig").DType;

pub const max_experts = 512;
pub const max_top_k = 32;
const per_lane = max_experts / 32;
const rows_per_block = 8;
const no_id: u32 = 0xffff_ffff;

inline fn shflXorU32(v: u32, m: u32) u32 {
    return @bitCast(c.shflXor(@bitCast(v), m));
}

/// Entry i of lane `lane` in the experts' layout.
inline fn entryId(lane: u32, comptime i: u32) u32 {
    return lane + 32 * i;
}

const Best = struct { v: f32, id: u32 };

/// The warp's best (value, id): larger value, then lower id. Every lane gets it.
inline fn warpArgMax(b: Best) Best {
    var r = b;
    inline for (.{ 16, 8, 4, 2, 1 }) |m| {
        const ov = c.shflXor(r.v, m);
        const oid = shflXorU32(r.id, m);
        if (ov > r.v or (ov == r.v and oid < r.id)) r = .{ .v = ov, .id = oid };
    }
    return r;
}

/// This lane's best entry among vals[i] (entry id lane + 32 i) with bit i of `open` set; ties go
/// to the lower id, and an open entry always beats none (even at -inf).
inline fn laneArgMax(vals: *const [per_lane]f32, open: u32, lane: u32) Best {
    var b = Best{ .v = -c.inf, .id = no_id };
    inline for (0..per_lane) |i| {
        if ((open >> i) & 1 != 0 and (b.id == no_id or vals[i] > b.v)) b = .{ .v = vals[i], .id = entryId(lane, i) };
    }
    return b;
}

pub fn MoeRoute(comptime bias_dt: DType) type {
    return struct {
        pub fn kernel(
            ids: c.Ptr(i32),
            weights: c.Ptr(f32),
            logits: c.ConstPtr(f32),
            bias: c.ConstPtr(c.Elem(bias_dt)),
            n_rows: u32,
            experts: u32,
            top_k: u32,
            sigmoid: u32,
            normalize: u32,
            scale: f32,
            has_bias: u32,
            n_groups: u32,
            group_topk: u32,
            top2sum: u32,
        ) callconv(.kernel) void {
            const lane = c.threadIdx() & 31;
            const row = c.blockIdx(0) * rows_per_block + (c.threadIdx() >> 5);
            // The whole warp leaves together, so every reduction below sees 32 lanes.
            if (row >= n_rows) return;
            const x = logits + @as(usize, row) * experts;

            // Bit i: expert lane + 32 i exists.
            var present: u32 = 0;
            var score: [per_lane]f32 = undefined;
            inline for (0..per_lane) |i| {
                const e = entryId(lane, i);
                if (e < experts) present |= 1 << i;
                score[i] = if (e < experts) x[e] else -c.inf;
            }
            if (sigmoid != 0) {
                inline for (0..per_lane) |i| score[i] = 1.0 / (1.0 + c.exp(-score[i]));
            } else {
                var m: f32 = -c.inf;
                inline for (0..per_lane) |i| m = @max(m, score[i]);
                m = c.warpMax(m);
                var sum: f32 = 0;
                inline for (0..per_lane) |i| {
                    score[i] = c.exp(score[i] - m); // absent experts: exp(-inf) = 0
                    sum += score[i];
                }
                sum = c.warpSum(sum);
                inline for (0..per_lane) |i| score[i] /= sum;
            }
            var choice: [per_lane]f32 = undefined;
            inline for (0..per_lane) |i| {
                const e = entryId(lane, i);
                choice[i] = if (e >= experts) -c.inf else if (has_bias != 0) score[i] + c.toF32(bias_dt, bias[e]) else score[i];
            }

            // Experts still in the race (bit i as in `present`).
            var open = present;
            if (n_groups > 0) {
                const group_size = experts / n_groups;
                var group: [per_lane]u32 = undefined;
                inline for (0..per_lane) |i| group[i] = if ((present >> i) & 1 != 0) entryId(lane, i) / group_size else no_id;
                // Group g's score lives with lane g % 32, entry g / 32 (the experts' layout).
                var gscore: [per_lane]f32 = @splat(-c.inf);
                var gpresent: u32 = 0;
                for (0..n_groups) |g| {
                    var b1: f32 = -c.inf;
                    var b2: f32 = -c.inf;
                    inline for (0..per_lane) |i| {
                        if (group[i] == g) {
                            const v = choice[i];
                            if (v > b1) {
                                b2 = b1;
                                b1 = v;
                            } else if (v > b2) b2 = v;
                        }
                    }
                    // Merge the lanes' two largest: the top two of (a1 ≥ a2) ∪ (o1 ≥ o2).
                    inline for (.{ 16, 8, 4, 2, 1 }) |m| {
                        const o1 = c.shflXor(b1, m);
                        const o2 = c.shflXor(b2, m);
                        b2 = @max(@min(b1, o1), @max(b2, o2));
                        b1 = @max(b1, o1);
                    }
                    const gs = if (top2sum != 0) b1 + b2 else b1;
                    if (lane == g % 32) {
                        inline for (0..per_lane) |i| {
                            if (i == g / 32) {
                                gscore[i] = gs;
                                gpresent |= 1 << i;
                            }
                        }
                    }
                }
                var allowed: u32 = 0;
                for (0..group_topk) |_| {
                    const best = warpArgMax(laneArgMax(&gscore, gpresent, lane));
                    inline for (0..per_lane) |i| {
                        if (group[i] == best.id) allowed |= 1 << i;
                    }
                    if (lane == best.id % 32) gpresent &= ~(@as(u32, 1) << @intCast(best.id / 32));
                }
                inline for (0..per_lane) |i| {
                    if ((allowed >> i) & 1 == 0) choice[i] = -c.inf;
                }
            }

            // Lane r keeps the r-th choice: its id and its unbiased score.
            var my_id: u32 = 0;
            var my_w: f32 = 0;
            for (0..top_k) |r| {
                const best = warpArgMax(laneArgMax(&choice, open, lane));
                const owner = best.id % 32;
                var sc: f32 = 0;
                if (lane == owner) {
                    inline for (0..per_lane) |i| {
                        if (i == best.id / 32) sc = score[i];
                    }
                    open &= ~(@as(u32, 1) << @intCast(best.id / 32));
                }
                sc = c.shflIdx(sc, owner);
                if (lane == r) {
                    my_id = best.id;
                    my_w = sc;
                }
            }
            const live = lane < top_k;
            var w = if (live) my_w else 0;
            if (normalize != 0) w /= c.warpSum(w) + 1e-20;
            w *= scale;
            if (live) {
                const at = @as(usize, row) * top_k + lane;
                ids[at] = @intCast(my_id);
                weights[at] = w;
            }
        }
    };
}

/// x[rows[i], :] += scales[i] * src[i, :]; the rows are distinct, so no two blocks write one element.
pub fn scatterAddRows(x: c.Ptr(f32), src: c.ConstPtr(f32), rows: c.ConstPtr(i32), scales: c.ConstPtr(f32), width: u32) callconv(.kernel) void {
    const j = @as(usize, c.blockIdx(1)) * c.blockDim() + c.threadIdx();
    if (j >= width) return;
    const i = c.blockIdx(0);
    const r: usize = @intCast(rows[i]);
    x[r * width + j] += scales[i] * src[@as(usize, i) * width + j];
}
