//! Decode matvec, out[T, rows] = x[T, cols] · wᵀ for small T (1 .. a few tokens), f32 results.
//! Decode is bound by weight bytes: one warp streams one weight row with 16-byte loads, four
//! loads in flight per lane, and reuses each loaded weight for up to TT tokens; x is re-read
//! from L1/L2 (it is small). Exact f32 products and accumulation, like the CPU reference.
//!
//! Launch: grid (ceil(rows / 8), ceil(T / TT)), block 256 = 8 warps, warp w of block b owns
//! row 8b + w; block y covers tokens [TT*y, TT*y + TT).
const c = @import("common.zig");
const DType = @import("../dtype.zig").DType;

pub const rows_per_block = 8;

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
        ) callconv(.kernel) void {
            const lane = c.threadIdx() & 31;
            const row = c.blockIdx(0) * rows_per_block + (c.threadIdx() >> 5);
            // The whole warp leaves together, so the shuffles below always see 32 lanes.
            if (row >= rows) return;
            const t0: usize = c.blockIdx(1) * TT;
            const nt: usize = @min(TT, T - t0);
            const n: usize = cols;
            const wrow = w + @as(usize, row) * n;
            const xs = x + t0 * n;

            var acc: [TT]f32 = .{0} ** TT;
            // Uniform across the grid: every row start is 16-byte aligned when cols is a
            // multiple of the vector width and both bases are.
            const vec_ok = n % vw == 0 and c.isAligned16(w) and c.isAligned16(x);
            if (vec_ok) {
                const step: usize = 32 * vw;
                var k: usize = lane * vw;
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
                var k: usize = lane;
                while (k < n) : (k += 32) {
                    const wk = c.toF32(dt, wrow[k]);
                    inline for (0..TT) |j| {
                        if (j < nt) acc[j] += wk * xs[j * n + k];
                    }
                }
            }
            inline for (0..TT) |j| {
                const s = c.warpSum(acc[j]);
                if (lane == 0 and j < nt) out[(t0 + j) * rows + row] = s;
            }
        }
    };
}
