//! Mixture-of-experts plumbing: choosing each row's experts from its router logits (`route`), and
//! moving token rows into an expert's batch and its results back (`gatherRows`,
//! `scatterAddRows`). The rules are backend.ts `moeRoute` / `gatherRows` / `scatterAddRows`.
const std = @import("std");
const DType = @import("../dtype.zig").DType;
const pool = @import("thread_pool.zig");
const cv = @import("convert.zig");
const V = cv.V;
const lanes = cv.lanes;

pub const Scoring = enum(u32) { softmax = 0, sigmoid = 1 };
pub const GroupRule = enum(u32) { max = 0, top2sum = 1 };

pub const Route = struct {
    experts: usize,
    top_k: usize,
    scoring: Scoring,
    normalize: bool,
    scale: f32,
    /// f32/f16/bf16 [experts] added to the scores for choosing only; 0 = none.
    bias: usize,
    bias_dtype: DType,
    /// Equal groups of consecutive experts (0 = no groups), of which the best `top_groups` stay.
    groups: usize,
    top_groups: usize,
    rule: GroupRule,
};

/// Bounds the per-row stack buffers (DeepSeek-V3 has 256 experts, Qwen3-Next 512).
pub const max_experts = 4096;

pub const Error = error{ BadShape, BadIndex };

/// Index of the largest value among the `open` ones, the lowest index on ties; null if none is
/// open. Ascending scan with a strict `>`: a later equal value never displaces an earlier one.
fn argmaxOpen(values: []const f32, open: []const bool) ?usize {
    var best: ?usize = null;
    for (values, open, 0..) |x, o, e| {
        if (o and (best == null or x > values[best.?])) best = e;
    }
    return best;
}

/// Stable softmax in f32: max-subtract, exp, sum in index order, divide.
fn softmaxInto(out: []f32, x: []const f32) void {
    var m = -std.math.inf(f32);
    for (x) |v| m = @max(m, v);
    var sum: f32 = 0;
    for (out, x) |*o, v| {
        o.* = @exp(v - m);
        sum += o.*;
    }
    for (out) |*o| o.* /= sum;
}

fn routeRow(r: *const Route, logits: [*]const f32, ids: [*]i32, weights: [*]f32) void {
    const E = r.experts;
    var score_buf: [max_experts]f32 = undefined;
    var choice_buf: [max_experts]f32 = undefined;
    var open_buf: [max_experts]bool = undefined;
    const scores = score_buf[0..E];
    const choice = choice_buf[0..E];
    const open = open_buf[0..E];

    switch (r.scoring) {
        .softmax => softmaxInto(scores, logits[0..E]),
        .sigmoid => for (scores, logits[0..E]) |*s, x| {
            s.* = 1 / (1 + @exp(-x));
        },
    }
    if (r.bias == 0) {
        @memcpy(choice, scores);
    } else switch (r.bias_dtype) {
        inline .f32, .f16, .bf16 => |dt| for (choice, scores, 0..) |*c, s, e| {
            c.* = s + cv.load1(dt, cv.at(dt, r.bias), e);
        },
        else => unreachable, // api.zig refuses quantized biases
    }

    @memset(open, true);
    if (r.groups > 0) {
        const size = E / r.groups;
        var group_buf: [max_experts]f32 = undefined;
        var group_open: [max_experts]bool = undefined;
        const gs = group_buf[0..r.groups];
        for (gs, 0..) |*g, i| {
            const members = choice[i * size ..][0..size];
            @memset(group_open[0..size], true);
            const first = argmaxOpen(members, group_open[0..size]).?;
            g.* = members[first];
            if (r.rule == .top2sum) {
                group_open[first] = false;
                g.* += members[argmaxOpen(members, group_open[0..size]).?];
            }
        }
        @memset(group_open[0..r.groups], true);
        for (0..r.top_groups) |_| group_open[argmaxOpen(gs, group_open[0..r.groups]).?] = false;
        // Chosen groups are the closed ones: their experts stay open, all others close.
        for (open, 0..) |*o, e| o.* = !group_open[e / size];
    }

    var sum: f32 = 0;
    for (0..r.top_k) |i| {
        const e = argmaxOpen(choice, open).?; // validated: the open groups hold ≥ top_k experts
        open[e] = false;
        ids[i] = @intCast(e);
        weights[i] = scores[e];
        sum += scores[e];
    }
    const denom = sum + 1e-20;
    for (weights[0..r.top_k]) |*w| {
        if (r.normalize) w.* /= denom;
        w.* *= r.scale;
    }
}

const RouteArgs = struct { r: Route, ids: [*]i32, weights: [*]f32, logits: [*]const f32 };

fn routeRows(a: *const RouteArgs, lo: usize, hi: usize) void {
    const r = &a.r;
    for (lo..hi) |n| routeRow(r, a.logits + n * r.experts, a.ids + n * r.top_k, a.weights + n * r.top_k);
}

/// ids[N, k], weights[N, k] ← the routing of logits[N, E].
pub fn route(ids: [*]i32, weights: [*]f32, logits: [*]const f32, N: usize, r: Route) Error!void {
    const E = r.experts;
    if (E == 0 or E > max_experts or r.top_k == 0 or r.top_k > E or r.bias_dtype.isQuant()) return error.BadShape;
    if (r.groups > 0) {
        if (E % r.groups != 0 or r.top_groups == 0 or r.top_groups > r.groups) return error.BadShape;
        if (r.top_groups * (E / r.groups) < r.top_k) return error.BadShape;
        if (r.rule == .top2sum and E / r.groups < 2) return error.BadShape;
    }
    // A row is about E·(k + 4) compares and a few E transcendentals: ~10 µs of work per task.
    const min_rows = @max(1, (1 << 15) / (E * (r.top_k + 4)));
    pool.forRange(N, min_rows, 1, &RouteArgs{ .r = r, .ids = ids, .weights = weights, .logits = logits }, routeRows);
}

const GatherArgs = struct { out: [*]f32, x: [*]const f32, rows: [*]const i32, width: usize };

fn gatherRange(a: *const GatherArgs, lo: usize, hi: usize) void {
    for (lo..hi) |i| {
        const row: usize = @intCast(a.rows[i]);
        @memcpy(a.out[i * a.width ..][0..a.width], a.x[row * a.width ..][0..a.width]);
    }
}

/// Bytes-bound copies: threads pay from about 256 KB on.
const min_copy_floats = 1 << 16;

/// out[i, :] = x[rows[i], :] for i < n. error.BadIndex (nothing written) for a row below 0.
pub fn gatherRows(out: [*]f32, x: [*]const f32, rows: [*]const i32, n: usize, width: usize) Error!void {
    for (rows[0..n]) |r| if (r < 0) return error.BadIndex;
    if (width == 0) return;
    pool.forRange(n, @max(1, min_copy_floats / width), 1, &GatherArgs{ .out = out, .x = x, .rows = rows, .width = width }, gatherRange);
}

const ScatterArgs = struct { x: [*]f32, src: [*]const f32, rows: [*]const i32, scales: [*]const f32, n: usize, width: usize };

/// Columns lo..hi of every row, in order of i. Each element is one fused multiply-add,
/// x + s·src rounded once (so within half an ulp of the exact value).
fn scatterColumns(a: *const ScatterArgs, lo: usize, hi: usize) void {
    for (0..a.n) |i| {
        const row: usize = @intCast(a.rows[i]);
        const x = a.x + row * a.width;
        const src = a.src + i * a.width;
        const s = a.scales[i];
        const sv: V = @splat(s);
        var c = lo;
        while (c + lanes <= hi) : (c += lanes) cv.storeF32(x, c, @mulAdd(V, sv, cv.loadF32(src, c), cv.loadF32(x, c)));
        while (c < hi) : (c += 1) x[c] = @mulAdd(f32, s, src[c], x[c]);
    }
}

/// x[rows[i], :] += scales[i] · src[i, :] for i < n. error.BadIndex (nothing written) for a row
/// below 0. Threads split the columns, not the rows: each element's updates stay in order of i,
/// so even a repeated row (which the interface rules out) would add deterministically.
pub fn scatterAddRows(x: [*]f32, src: [*]const f32, rows: [*]const i32, scales: [*]const f32, n: usize, width: usize) Error!void {
    for (rows[0..n]) |r| if (r < 0) return error.BadIndex;
    if (n == 0 or width == 0) return;
    const args = ScatterArgs{ .x = x, .src = src, .rows = rows, .scales = scales, .n = n, .width = width };
    pool.forRange(width, @max(lanes, min_copy_floats / n), lanes, &args, scatterColumns);
}

test "route: softmax top-2 with a tie, groups, bias" {
    var ids: [4]i32 = undefined;
    var w: [4]f32 = undefined;
    // Experts 1 and 2 tie: the lower id comes first.
    const logits = [_]f32{ 0, 2, 2, 1 };
    const base = Route{ .experts = 4, .top_k = 2, .scoring = .softmax, .normalize = true, .scale = 1, .bias = 0, .bias_dtype = .f32, .groups = 0, .top_groups = 0, .rule = .max };
    try route(&ids, &w, &logits, 1, base);
    try std.testing.expectEqualSlices(i32, &.{ 1, 2 }, ids[0..2]);
    try std.testing.expectApproxEqAbs(@as(f32, 0.5), w[0], 1e-6);
    // Two groups {0,1} {2,3}; with "max" both score 2, so group 0 wins and its experts are chosen.
    try route(&ids, &w, &logits, 1, .{ .experts = 4, .top_k = 2, .scoring = .softmax, .normalize = true, .scale = 1, .bias = 0, .bias_dtype = .f32, .groups = 2, .top_groups = 1, .rule = .max });
    try std.testing.expectEqualSlices(i32, &.{ 1, 0 }, ids[0..2]);
    // "top2sum": group 1 scores e² + e¹ > e² + e⁰.
    try route(&ids, &w, &logits, 1, .{ .experts = 4, .top_k = 2, .scoring = .softmax, .normalize = true, .scale = 1, .bias = 0, .bias_dtype = .f32, .groups = 2, .top_groups = 1, .rule = .top2sum });
    try std.testing.expectEqualSlices(i32, &.{ 2, 3 }, ids[0..2]);
    // A bias on expert 0 makes it chosen first; its weight is still its unbiased score.
    const bias = [_]f32{ 1, 0, 0, 0 };
    var b = base;
    b.bias = @intFromPtr(&bias);
    b.normalize = false;
    try route(&ids, &w, &logits, 1, b);
    try std.testing.expectEqualSlices(i32, &.{ 0, 1 }, ids[0..2]);
    try std.testing.expect(w[0] < w[1]);
    b.top_k = 5;
    try std.testing.expectError(error.BadShape, route(&ids, &w, &logits, 1, b));
}
