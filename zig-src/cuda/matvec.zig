//! Decode matvec, out[T, rows] = x[T, cols] · wᵀ for small T (1 .. a few tokens), f32 results.
//! Decode is bound by weight bytes: warps stream weight rows with 16-byte loads, four loads in
//! flight per lane, and reuse each loaded weight for up to TT tokens; x is re-read from L1/L2
//! (it is small). Exact f32 products and accumulation, like the CPU reference.
//!
//! A row is shared by `split` warps (1, 2, 4 or 8), which take interleaved 16-byte columns of it
//! and add their sums through shared memory: a matrix of few rows (the k/v projections, 1024
//! rows) then still has enough warps in flight to keep HBM busy (bench/TUNING.md).
//!
//! Launch: grid (ceil(rows / (8 / split)), ceil(T / TT)), block 256 = 8 warps; warp w of block
//! b works on row (8 / split) * b + w / split; block y covers tokens [TT*y, TT*y + TT).
const c = @import("common.zig");
const DType = @import("../dtype.zig").DType;

pub const warps_per_block = 8;

var partials: [warps_per_block * 4]f32 addrspace(.shared) = undefined;

pub fn Matvec(comptime dt: DType, comptime TT: u32) type {
    const W = c.Elem(dt);
    const vw = c.vecWidth(dt);
    return struct {
        pub fn kernel(
            out: c.Ptr(f32),
            x: c.ConstPtr(f32),
            w: c.ConstPtr(W),
            rows: u32,
            cols: u32,
            T: u32,
            split: u32,
        ) callconv(.kernel) void {
            const lane = c.threadIdx() & 31;
            const warp = c.threadIdx() >> 5;
            const part: usize = warp % split;
            const row = c.blockIdx(0) * (warps_per_block / split) + warp / split;
            // Rows past the end still reach the barrier below (split > 1), with no work.
            const live = row < rows;
            const t0: usize = c.blockIdx(1) * TT;
            const nt: usize = @min(TT, T - t0);
            const n: usize = cols;
            const wrow = w + @as(usize, if (live) row else 0) * n;
            const xs = x + t0 * n;

            var acc: [TT]f32 = .{0} ** TT;
            // Uniform across the grid: every row start is 16-byte aligned when cols is a
            // multiple of the vector width and both bases are.
            const vec_ok = n % vw == 0 and c.isAligned16(w) and c.isAligned16(x);
            if (!live) {
                // no columns
            } else if (vec_ok) {
                const step: usize = 32 * vw * split;
                var k: usize = (part * 32 + lane) * vw;
                while (k + 3 * step < n) : (k += 4 * step) {
                    var wv: [4]@Vector(vw, f32) = undefined;
                    inline for (0..4) |u| wv[u] = c.loadWeights16(dt, wrow + k + u * step);
                    inline for (0..4) |u| {
                        inline for (0..TT) |j| {
                            if (j < nt) acc[j] += @reduce(.Add, wv[u] * c.loadF32(vw, xs + j * n + k + u * step));
                        }
                    }
                }
                while (k < n) : (k += step) {
                    const wv = c.loadWeights16(dt, wrow + k);
                    inline for (0..TT) |j| {
                        if (j < nt) acc[j] += @reduce(.Add, wv * c.loadF32(vw, xs + j * n + k));
                    }
                }
            } else {
                var k: usize = part * 32 + lane;
                while (k < n) : (k += 32 * split) {
                    const wk = c.toF32(dt, wrow[k]);
                    inline for (0..TT) |j| {
                        if (j < nt) acc[j] += wk * xs[j * n + k];
                    }
                }
            }
            inline for (0..TT) |j| acc[j] = c.warpSum(acc[j]);
            if (split == 1) {
                if (!live) return;
                inline for (0..TT) |j| {
                    if (lane == 0 and j < nt) out[(t0 + j) * rows + row] = acc[j];
                }
                return;
            }
            // The row's warps meet in shared memory, TT tokens at a time in groups of 4.
            const sh: *addrspace(.shared) [warps_per_block * 4]f32 = &partials;
            inline for (0..(TT + 3) / 4) |g| {
                inline for (0..@min(4, TT - 4 * g)) |jj| {
                    if (lane == 0) sh[warp * 4 + jj] = acc[4 * g + jj];
                }
                c.syncThreads();
                if (live and part == 0 and lane < @min(4, TT - 4 * g) and 4 * g + lane < nt) {
                    var s: f32 = 0;
                    for (0..split) |p| s += sh[(warp + p) * 4 + lane];
                    out[(t0 + 4 * g + lane) * rows + row] = s;
                }
                c.syncThreads();
            }
        }
    };
}
