//! Per-head products against head blocks of one float matrix, strided (backend.ts `matmulHeads`;
//! the CPU reference is zig-src/cpu/heads_matmul.zig). Head h of token t reads x at
//! t·x_stride + h·x_head and writes out at t·out_stride + h·out_head; its block is rows
//! [h·w_head_rows, +rows) of w, `cols` wide.
//! - normal (out[r] = Σ_c x[c]·w[r, c]): one warp per output, lanes over c, a warp sum.
//!   Launch: grid (ceil(rows / 8), heads, T), block 256 (8 warps, one output row each).
//! - transposed (out[c] = Σ_r x[r]·w[r, c]): one thread per output column, a loop over the rows
//!   (neighbouring threads read neighbouring columns of each row: coalesced).
//!   Launch: grid (ceil(cols / 256), heads, T), block 256.
const c = @import("common.zig");
const DType = @import("../dtype.zig").DType;

pub fn HeadsMatmul(comptime dt: DType) type {
    return struct {
        pub fn normal(out: c.Ptr(f32), x: c.ConstPtr(f32), w: c.ConstPtr(c.Elem(dt)), rows: u32, cols: u32, w_head_rows: u32, x_stride: u32, x_head: u32, out_stride: u32, out_head: u32) callconv(.kernel) void {
            const warp = c.threadIdx() / 32;
            const lane = c.threadIdx() % 32;
            const r: usize = @as(usize, c.blockIdx(0)) * 8 + warp;
            if (r >= rows) return;
            const h: usize = c.blockIdx(1);
            const t: usize = c.blockIdx(2);
            const xr = x + t * x_stride + h * x_head;
            const wr = w + (h * w_head_rows + r) * cols;
            var acc: f32 = 0;
            var k: usize = lane;
            while (k < cols) : (k += 32) acc += xr[k] * c.toF32(dt, wr[k]);
            acc = c.warpSum(acc);
            if (lane == 0) out[t * out_stride + h * out_head + r] = acc;
        }

        pub fn transposed(out: c.Ptr(f32), x: c.ConstPtr(f32), w: c.ConstPtr(c.Elem(dt)), rows: u32, cols: u32, w_head_rows: u32, x_stride: u32, x_head: u32, out_stride: u32, out_head: u32) callconv(.kernel) void {
            const col: usize = @as(usize, c.blockIdx(0)) * c.blockDim() + c.threadIdx();
            if (col >= cols) return;
            const h: usize = c.blockIdx(1);
            const t: usize = c.blockIdx(2);
            const xr = x + t * x_stride + h * x_head;
            const wb = w + h * w_head_rows * cols + col;
            var acc: f32 = 0;
            for (0..rows) |r| acc += xr[r] * c.toF32(dt, wb[r * cols]);
            out[t * out_stride + h * out_head + col] = acc;
        }
    };
}
