//! Decode matvecs, out[T, rows] = x[T, cols] · wᵀ for small T (1 .. a few tokens), f32 results,
//! and their fused forms for a decoder layer. Decode is bound by weight bytes: warps stream
//! weight rows with 16-byte loads, several loads in flight per lane, and reuse each loaded
//! weight for up to TT tokens; x is re-read from L1/L2 (it is small). Exact f32 products and
//! accumulation, like the CPU reference.
//!
//! A row is shared by `split` warps (1, 2, 4 or 8), which take interleaved 16-byte columns of it
//! and add their sums through shared memory: a matrix of few rows (the k/v projections, 1024
//! rows) then still has enough warps in flight to keep HBM busy (bench/TUNING.md).
//!
//! Kernels (each ~3 µs of fixed cost on an H100 whatever its size, so fewer is faster):
//! - matvec:        out = x · wᵀ.
//! - matvec_multi:  up to three matrices of the same width read the same x (q, k, v), their rows
//!                  laid end to end over the grid; `accumulate` adds into out instead (the residual
//!                  add after o_proj and down_proj).
//! - matvec_swiglu: out = silu(x · gateᵀ) * (x · upᵀ): a warp streams the gate row and the up row
//!                  together.
//!
//! Launch: grid (ceil(rows / (8 / split)), ceil(T / TT)), block 256 = 8 warps; warp w of block
//! b works on row (8 / split) * b + w / split (matvec_multi: of rows0 + rows1 + rows2); block y
//! covers tokens [TT*y, TT*y + TT). The plain matvec for TT > 1 takes `ld`, the output's row
//! stride in floats (≥ rows); the fused kernels write whole matrices (stride = rows).
const c = @import("common.zig");
const DType = @import("../dtype.zig").DType;

pub const warps_per_block = 8;
/// Sums a warp hands to its row's first warp: up to two rows × four tokens.
const max_sums = 8;

var partials: [warps_per_block * max_sums]f32 addrspace(.shared) = undefined;

/// Where this warp works: its row in the grid's row space, and its share of the row's columns.
const Place = struct { row: usize, part: usize, lane: usize, t0: usize, nt: usize };

inline fn place(split: u32, T: u32, comptime TT: u32) Place {
    const warp = c.threadIdx() >> 5;
    const t0: usize = c.blockIdx(1) * TT;
    return .{
        .row = @as(usize, c.blockIdx(0)) * (warps_per_block / split) + warp / split,
        .part = warp % split,
        .lane = c.threadIdx() & 31,
        .t0 = t0,
        .nt = @min(TT, T - t0),
    };
}

/// acc[r][j] += w_r · x_j over this warp's columns of NW weight rows at once (each x load feeds
/// every row), for the first nt of TT tokens. U loads per row in flight per lane.
inline fn partialDots(
    comptime dt: DType,
    comptime TT: u32,
    comptime NW: usize,
    comptime U: usize,
    wrows: [NW]c.ConstPtr(c.Elem(dt)),
    xs: c.ConstPtr(f32),
    n: usize,
    nt: usize,
    p: Place,
    split: u32,
    vec_ok: bool,
) [NW][TT]f32 {
    const vw = c.vecWidth(dt);
    var acc: [NW][TT]f32 = .{.{0} ** TT} ** NW;
    if (vec_ok) {
        const step: usize = 32 * vw * split;
        var k: usize = (p.part * 32 + p.lane) * vw;
        while (k + (U - 1) * step < n) : (k += U * step) {
            var wv: [NW][U]@Vector(vw, f32) = undefined;
            inline for (0..NW) |r| {
                inline for (0..U) |u| wv[r][u] = c.loadWeights16(dt, wrows[r] + k + u * step);
            }
            inline for (0..U) |u| {
                inline for (0..TT) |j| {
                    if (j < nt) {
                        const xv = c.loadF32(vw, xs + j * n + k + u * step);
                        inline for (0..NW) |r| acc[r][j] += @reduce(.Add, wv[r][u] * xv);
                    }
                }
            }
        }
        while (k < n) : (k += step) {
            inline for (0..TT) |j| {
                if (j < nt) {
                    const xv = c.loadF32(vw, xs + j * n + k);
                    inline for (0..NW) |r| acc[r][j] += @reduce(.Add, c.loadWeights16(dt, wrows[r] + k) * xv);
                }
            }
        }
    } else {
        var k: usize = p.part * 32 + p.lane;
        while (k < n) : (k += 32 * split) {
            inline for (0..NW) |r| {
                const wk = c.toF32(dt, wrows[r][k]);
                inline for (0..TT) |j| {
                    if (j < nt) acc[r][j] += wk * xs[j * n + k];
                }
            }
        }
    }
    return acc;
}

/// Full sums of the row: warp reductions, then (split > 1) the row's warps add up through shared
/// memory. Afterwards every lane of the row's first warp (part 0) holds the totals. Every warp
/// of the block must call it: it has block-wide barriers when split > 1.
inline fn rowTotals(comptime NW: usize, comptime TT: u32, acc: [NW][TT]f32, p: Place, split: u32) [NW][TT]f32 {
    var s: [NW][TT]f32 = undefined;
    inline for (0..NW) |r| {
        inline for (0..TT) |j| s[r][j] = c.warpSum(acc[r][j]);
    }
    if (split == 1) return s;
    const sh: *addrspace(.shared) [warps_per_block * max_sums]f32 = &partials;
    const warp = c.threadIdx() >> 5;
    if (p.lane == 0) {
        inline for (0..NW) |r| {
            inline for (0..TT) |j| sh[warp * max_sums + r * TT + j] = s[r][j];
        }
    }
    c.syncThreads();
    if (p.part == 0) {
        inline for (0..NW) |r| {
            inline for (0..TT) |j| {
                var t: f32 = 0;
                for (0..split) |q| t += sh[(warp + q) * max_sums + r * TT + j];
                s[r][j] = t;
            }
        }
    }
    return s;
}

inline fn vecOk(comptime dt: DType, n: usize, w: anytype, x: anytype) bool {
    // Uniform across the grid: every row start is 16-byte aligned when cols is a multiple of
    // the vector width and both bases are.
    return n % c.vecWidth(dt) == 0 and c.isAligned16(w) and c.isAligned16(x);
}

pub fn Matvec(comptime dt: DType, comptime TT: u32) type {
    const W = c.Elem(dt);
    return struct {
        /// One token has one output row, so only the multi-token kernel takes a row stride.
        pub const kernel = if (TT == 1) single else strided;

        fn single(out: c.Ptr(f32), x: c.ConstPtr(f32), w: c.ConstPtr(W), rows: u32, cols: u32, T: u32, split: u32) callconv(.kernel) void {
            run(out, x, w, rows, cols, T, rows, split);
        }

        /// Output row t starts at out + t * ld (a row chunk of a larger matrix writes its columns in place).
        fn strided(out: c.Ptr(f32), x: c.ConstPtr(f32), w: c.ConstPtr(W), rows: u32, cols: u32, T: u32, ld: u32, split: u32) callconv(.kernel) void {
            run(out, x, w, rows, cols, T, ld, split);
        }

        inline fn run(out: c.Ptr(f32), x: c.ConstPtr(f32), w: c.ConstPtr(W), rows: u32, cols: u32, T: u32, ld: u32, split: u32) void {
            const p = place(split, T, TT);
            const n: usize = cols;
            // Rows past the end still reach rowTotals' barriers, with no columns.
            const live = p.row < rows;
            const acc = partialDots(dt, TT, 1, 4, .{w + (if (live) p.row else 0) * n}, x + p.t0 * n, if (live) n else 0, p.nt, p, split, vecOk(dt, n, w, x));
            const s = rowTotals(1, TT, acc, p, split);
            if (!live or p.part != 0 or p.lane != 0) return;
            inline for (0..TT) |j| {
                if (j < p.nt) out[(p.t0 + j) * @as(usize, ld) + p.row] = s[0][j];
            }
        }
    };
}

pub fn MatvecMulti(comptime dt: DType, comptime TT: u32) type {
    const W = c.Elem(dt);
    return struct {
        pub fn kernel(
            out0: c.Ptr(f32),
            out1: c.Ptr(f32),
            out2: c.Ptr(f32),
            x: c.ConstPtr(f32),
            w0: c.ConstPtr(W),
            w1: c.ConstPtr(W),
            w2: c.ConstPtr(W),
            rows0: u32,
            rows1: u32,
            rows2: u32,
            cols: u32,
            T: u32,
            split: u32,
            accumulate: u32,
        ) callconv(.kernel) void {
            const p = place(split, T, TT);
            const n: usize = cols;
            // Which matrix this warp's row falls in, and the row within it.
            var out = out0;
            var w = w0;
            var rows: usize = rows0;
            var row = p.row;
            if (row >= rows0) {
                row -= rows0;
                out = out1;
                w = w1;
                rows = rows1;
                if (row >= rows1) {
                    row -= rows1;
                    out = out2;
                    w = w2;
                    rows = rows2;
                }
            }
            const live = row < rows;
            const ok = vecOk(dt, n, w0, x) and c.isAligned16(w1) and c.isAligned16(w2);
            const acc = partialDots(dt, TT, 1, 4, .{w + (if (live) row else 0) * n}, x + p.t0 * n, if (live) n else 0, p.nt, p, split, ok);
            const s = rowTotals(1, TT, acc, p, split);
            if (!live or p.part != 0 or p.lane != 0) return;
            inline for (0..TT) |j| {
                if (j < p.nt) {
                    const at = (p.t0 + j) * rows + row;
                    out[at] = if (accumulate != 0) out[at] + s[0][j] else s[0][j];
                }
            }
        }
    };
}

pub fn MatvecSwiglu(comptime dt: DType, comptime TT: u32) type {
    const W = c.Elem(dt);
    return struct {
        pub fn kernel(out: c.Ptr(f32), x: c.ConstPtr(f32), gate: c.ConstPtr(W), up: c.ConstPtr(W), rows: u32, cols: u32, T: u32, split: u32) callconv(.kernel) void {
            const p = place(split, T, TT);
            const n: usize = cols;
            const live = p.row < rows;
            const at = (if (live) p.row else 0) * n;
            const ok = vecOk(dt, n, gate, x) and c.isAligned16(up);
            // Two rows stream together: two loads of each in flight, four in all.
            const acc = partialDots(dt, TT, 2, 2, .{ gate + at, up + at }, x + p.t0 * n, if (live) n else 0, p.nt, p, split, ok);
            const s = rowTotals(2, TT, acc, p, split);
            if (!live or p.part != 0 or p.lane != 0) return;
            inline for (0..TT) |j| {
                if (j < p.nt) {
                    const g = s[0][j];
                    // silu(g) = g / (1 + e^-g), as the swiglu kernel computes it.
                    out[(p.t0 + j) * rows + p.row] = g / (1.0 + c.exp(-g)) * s[1][j];
                }
            }
        }
    };
}
