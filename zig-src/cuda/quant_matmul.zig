//! Prefill matmul on GGUF block-quantized weights, out[M, N] = x[M, K] · wᵀ (M = tokens,
//! N = weight rows, K = cols, a multiple of 32; output rows `ld` floats apart): a simple tiled SIMT kernel in the shape of
//! matmul_simt.zig, whose weight tile is decoded from the blocks into shared memory as f32
//! (exact, with the shared layouts of zig-src/cpu/quant_*.zig) and then reused by 64 tokens.
//! f32 FMAs throughout, so it matches the CPU reference to f32 rounding (no tensor cores:
//! they would round the activations to 16 bits).
//!
//! Launch: grid (ceil(N / 64), ceil(M / 64)), block 256. Block tile 64 tokens × 64 features,
//! k-step 32; thread (ty, tx) = (tid / 16, tid % 16) computes tokens 4ty.. and features 4tx..
//! Loader role: thread i stages row i / 4, k-group (i % 4) of 8 of both tiles.
const c = @import("common.zig");
const tile = @import("tile_simt.zig");
const DType = @import("../dtype.zig").DType;
const kq = @import("../cpu/quant_k.zig");
const load8 = @import("quant_matvec.zig").load8;

pub const BM = tile.BM;
pub const BN = tile.BN;
const BK = 32;
const LD = tile.LD;

var smem_a: [BK * LD]f32 align(16) addrspace(.shared) = undefined;
var smem_b: [BK * LD]f32 align(16) addrspace(.shared) = undefined;

pub fn QuantMatmul(comptime dt: DType) type {
    const B = dt.blockElems();
    const BB = dt.blockBytes();
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
            const vec_ok = c.isAligned16(x);
            const row_bytes = K / B * BB;
            const sa: *addrspace(.shared) [BK * LD]f32 = &smem_a;
            const sb: *addrspace(.shared) [BK * LD]f32 = &smem_b;
            const lr = tid / 4;
            const lk = (tid % 4) * 8;

            var acc: tile.Acc = @splat(@splat(0));
            var k0: usize = 0;
            while (k0 < K) : (k0 += BK) {
                const ar = m0 + lr;
                const av: @Vector(8, f32) = if (ar < M) load8(x + ar * K + k0, lk / 8, vec_ok) else @splat(0);
                const br = n0 + lr;
                const k = k0 + lk;
                const bv: @Vector(8, f32) = if (br < N) kq.dequant8Any(dt, w + br * row_bytes + (k / B) * BB, (k % B) / 8) else @splat(0);
                inline for (0..8) |e| {
                    sa[(lk + e) * LD + lr] = av[e];
                    sb[(lk + e) * LD + lr] = bv[e];
                }
                c.syncThreads();
                tile.accumulate(BK, sa, sb, ty, tx, &acc);
                c.syncThreads(); // the next iteration overwrites the tiles
            }

            tile.store(out, ld, M, N, m0, n0, ty, tx, &acc);
        }
    };
}
