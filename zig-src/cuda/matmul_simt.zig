//! Prefill matmul for f32 weights on the ordinary FMA units (tensor cores would round the
//! weights): out[M, N] = x[M, K] · wᵀ, M = tokens, N = weight rows, K = cols; output rows are
//! `ld` floats apart (≥ N).
//!
//! Launch: grid (ceil(N / 64), ceil(M / 64)), block 256. Block tile 64 tokens × 64 features,
//! k-step 16; thread (ty, tx) = (tid / 16, tid % 16) computes tokens 4ty.. and features 4tx..
//! Both tiles are stored k-major in shared memory so the inner loop reads float4s.
const c = @import("common.zig");
const tile = @import("tile_simt.zig");

pub const BM = tile.BM;
pub const BN = tile.BN;
const BK = 16;
const LD = tile.LD;

var smem_a: [BK * LD]f32 align(16) addrspace(.shared) = undefined;
var smem_b: [BK * LD]f32 align(16) addrspace(.shared) = undefined;

/// Tile row r (token or feature) and k-group kq of four: four elements, zeros outside the matrix.
inline fn loadRow4(src: c.ConstPtr(f32), rows: usize, K: usize, r: usize, k: usize, vec_ok: bool) @Vector(4, f32) {
    if (vec_ok) return if (r < rows and k < K) c.loadF32(4, src + r * K + k) else @splat(0);
    var v: @Vector(4, f32) = @splat(0);
    inline for (0..4) |e| {
        if (r < rows and k + e < K) v[e] = src[r * K + k + e];
    }
    return v;
}

pub fn kernel(out: c.Ptr(f32), x: c.ConstPtr(f32), w: c.ConstPtr(f32), m_: u32, n_: u32, k_: u32, ld: u32) callconv(.kernel) void {
    const M: usize = m_;
    const N: usize = n_;
    const K: usize = k_;
    const tid = c.threadIdx();
    const ty = tid / 16;
    const tx = tid % 16;
    const m0 = @as(usize, c.blockIdx(1)) * BM;
    const n0 = @as(usize, c.blockIdx(0)) * BN;
    const vec_ok = K % 4 == 0 and c.isAligned16(x) and c.isAligned16(w);
    const sa: *addrspace(.shared) [BK * LD]f32 = &smem_a;
    const sb: *addrspace(.shared) [BK * LD]f32 = &smem_b;
    // Loader role: 64 rows × 4 groups of 4 k = 256 groups, one per thread.
    const lr = tid / 4;
    const lk = (tid % 4) * 4;

    var acc: tile.Acc = @splat(@splat(0));
    var k0: usize = 0;
    while (k0 < K) : (k0 += BK) {
        const av = loadRow4(x, M, K, m0 + lr, k0 + lk, vec_ok);
        const bv = loadRow4(w, N, K, n0 + lr, k0 + lk, vec_ok);
        inline for (0..4) |e| {
            sa[(lk + e) * LD + lr] = av[e];
            sb[(lk + e) * LD + lr] = bv[e];
        }
        c.syncThreads();
        tile.accumulate(BK, sa, sb, ty, tx, &acc);
        c.syncThreads(); // the next iteration overwrites the tiles
    }

    tile.store(out, ld, M, N, m0, n0, ty, tx, &acc);
}
