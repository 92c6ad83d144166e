//! Decode matvec on GGUF block-quantized weights, out[T, rows] = x[T, cols] · wᵀ for T ≤ 8:
//! like matvec.zig, one warp streams one weight row, but lanes take groups of 8 weights
//! (lane l: groups l, l+32, ...), each decoded in registers by the shared layouts in
//! zig-src/cpu/quant_*.zig (4 lanes share a 32-weight block; a 256-weight K-quant block feeds
//! the whole warp) and reused for up to TT tokens. Decoding is exact and the products and sums
//! are f32, like the CPU reference; only the summation order differs.
//!
//! Launch: grid (ceil(rows / 8), ceil(T / TT)), block 256 = 8 warps, warp w of block b owns
//! row 8b + w; block y covers tokens [TT*y, TT*y + TT). cols is a multiple of the block.
//! For TT > 1 the kernel takes `ld`, the output's row stride in floats (≥ rows).
const c = @import("common.zig");
const DType = @import("../dtype.zig").DType;
const kq = @import("../cpu/quant_k.zig");

pub const rows_per_block = 8;

/// x[8g .. 8g+8] of one token row; 16-byte loads when x allows them (uniform across the grid).
pub inline fn load8(xr: c.ConstPtr(f32), g: usize, vec_ok: bool) @Vector(8, f32) {
    if (vec_ok) return c.loadF32(8, xr + 8 * g);
    var v: @Vector(8, f32) = undefined;
    inline for (0..8) |e| v[e] = xr[8 * g + e];
    return v;
}

pub fn QuantMatvec(comptime dt: DType, comptime TT: u32) type {
    const G = dt.blockElems() / 8; // groups of 8 per block
    const BB = dt.blockBytes();
    return struct {
        /// One token has one output row, so only the multi-token kernel takes a row stride.
        pub const kernel = if (TT == 1) single else strided;

        fn single(out: c.Ptr(f32), x: c.ConstPtr(f32), w: c.ConstPtr(u8), rows: u32, cols: u32, T: u32) callconv(.kernel) void {
            run(out, x, w, rows, cols, T, rows);
        }

        fn strided(out: c.Ptr(f32), x: c.ConstPtr(f32), w: c.ConstPtr(u8), rows: u32, cols: u32, T: u32, ld: u32) callconv(.kernel) void {
            run(out, x, w, rows, cols, T, ld);
        }

        inline fn run(out: c.Ptr(f32), x: c.ConstPtr(f32), w: c.ConstPtr(u8), rows: u32, cols: u32, T: u32, ld: u32) void {
            const lane = c.threadIdx() & 31;
            const row = c.blockIdx(0) * rows_per_block + (c.threadIdx() >> 5);
            // The whole warp leaves together, so the shuffles below always see 32 lanes.
            if (row >= rows) return;
            const t0: usize = c.blockIdx(1) * TT;
            const nt: usize = @min(TT, T - t0);
            const n: usize = cols;
            const wrow = w + @as(usize, row) * (n / dt.blockElems() * BB);
            const xs = x + t0 * n;
            // Rows of x start 32-byte aligned when x does: cols is a multiple of 32.
            const vec_ok = c.isAligned16(x);

            var acc: [TT]f32 = .{0} ** TT;
            var g: usize = lane;
            while (g < n / 8) : (g += 32) {
                const wv = kq.dequant8Any(dt, wrow + (g / G) * BB, g % G);
                inline for (0..TT) |j| {
                    if (j < nt) acc[j] += @reduce(.Add, wv * load8(xs + j * n, g, vec_ok));
                }
            }
            inline for (0..TT) |j| {
                const s = c.warpSum(acc[j]);
                if (lane == 0 and j < nt) out[(t0 + j) * @as(usize, ld) + row] = s;
            }
        }
    };
}
