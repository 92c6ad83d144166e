//! CUDA kernels on AirLLM's compressed weights (nf4, q8_block: bitsandbytes' flattened blocks,
//! layouts and decoding shared with the CPU in zig-src/cpu/quant_bnb.zig). Blocks may span rows
//! and the last may be short, so weights are addressed by flat index rather than by row blocks.
//! Decoding is exact (code·absmax in f32, like the CPU); only the summation order differs.
//!
//! - Matvec, T ≤ 8 (grid (ceil(rows/8), ceil(T/TT)), block 256): one warp per row, as
//!   quant_matvec.zig (TT > 1 takes the output row stride `ld`); lane l takes weights l, l+32, ... of the row, each decoded once and used
//!   for TT tokens. Consecutive lanes read consecutive codes, so a warp's loads coalesce.
//! - Matmul, larger T (grid (ceil(N/64), ceil(M/64)), block 256): quant_matmul.zig's 64×64 tile
//!   with k-step 32, the weight tile decoded into shared memory as f32; ragged K is zero-padded;
//!   output rows `ld` floats apart.
//! - Embedding (grid (T, ceil(cols/256)), block 256): one thread per weight.
const c = @import("common.zig");
const tile = @import("tile_simt.zig");
const DType = @import("../dtype.zig").DType;
const bnb = @import("../cpu/quant_bnb.zig");

pub const rows_per_block = 8;

pub fn BnbMatvec(comptime dt: DType, comptime TT: u32) type {
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
            // The whole warp leaves together, so warpSum always sees 32 lanes.
            if (row >= rows) return;
            const t0: usize = c.blockIdx(1) * TT;
            const nt: usize = @min(TT, T - t0);
            const n: usize = cols;
            const base: usize = @as(usize, row) * n;
            const xs = x + t0 * n;
            var acc: [TT]f32 = .{0} ** TT;
            var k: usize = lane;
            while (k < n) : (k += 32) {
                const wv = bnb.weightAt(dt, w, base + k);
                inline for (0..TT) |j| {
                    if (j < nt) acc[j] += wv * xs[j * n + k];
                }
            }
            inline for (0..TT) |j| {
                const s = c.warpSum(acc[j]);
                if (lane == 0 and j < nt) out[(t0 + j) * @as(usize, ld) + row] = s;
            }
        }
    };
}

pub const BM = tile.BM;
pub const BN = tile.BN;
const BK = 32;
const LD = tile.LD;

var smem_a: [BK * LD]f32 align(16) addrspace(.shared) = undefined;
var smem_b: [BK * LD]f32 align(16) addrspace(.shared) = undefined;

pub fn BnbMatmul(comptime dt: DType) type {
    return struct {
        pub fn kernel(out: c.Ptr(f32), x: c.ConstPtr(f32), w: c.ConstPtr(u8), m_: u32, n_: u32, k_: u32, ld: u32) callconv(.kernel) void {
            const M: usize = m_;
            const N: usize = n_;
            const K: usize = k_;
            const tid = c.threadIdx();
            const ty = tid / 16;
            const tx = tid % 16;
            const m0 = @as(usize, c.blockIdx(1)) * BM;
            const n0 = @as(usize, c.blockIdx(0)) * BN;
            const sa: *addrspace(.shared) [BK * LD]f32 = &smem_a;
            const sb: *addrspace(.shared) [BK * LD]f32 = &smem_b;
            // Loader role: thread i stages row i / 4, k-group (i % 4) of 8, of both tiles.
            const lr = tid / 4;
            const lk = (tid % 4) * 8;

            var acc: tile.Acc = @splat(@splat(0));
            var k0: usize = 0;
            while (k0 < K) : (k0 += BK) {
                const ar = m0 + lr;
                const br = n0 + lr;
                inline for (0..8) |e| {
                    const k = k0 + lk + e;
                    sa[(lk + e) * LD + lr] = if (ar < M and k < K) x[ar * K + k] else 0;
                    sb[(lk + e) * LD + lr] = if (br < N and k < K) bnb.weightAt(dt, w, br * K + k) else 0;
                }
                c.syncThreads();
                tile.accumulate(BK, sa, sb, ty, tx, &acc);
                c.syncThreads(); // the next iteration overwrites the tiles
            }
            tile.store(out, ld, M, N, m0, n0, ty, tx, &acc);
        }
    };
}

pub fn BnbEmbedding(comptime dt: DType) type {
    return struct {
        pub fn kernel(out: c.Ptr(f32), table: c.ConstPtr(u8), ids: c.ConstPtr(i32), cols: u32) callconv(.kernel) void {
            const k = @as(usize, c.blockIdx(1)) * c.blockDim() + c.threadIdx();
            if (k >= cols) return;
            const t = c.blockIdx(0);
            const id: usize = @intCast(ids[t]);
            out[@as(usize, t) * cols + k] = bnb.weightAt(dt, table, id * cols + k);
        }
    };
}
