//! Prefill matmul on tensor cores for 16-bit weights: out[M, N] = x[M, K] · wᵀ, with M = tokens,
//! N = weight rows (out features), K = cols; `kernel`'s output rows are `ld` floats apart (≥ N). `mma.sync.m16n8k16.row.col` with f32 accumulation;
//! the f32 activations are rounded to the weight's format (f16 or bf16) tile by tile as they
//! are staged in shared memory, so results differ from the f32 CPU reference by that rounding
//! (and, for f16, by clamping activations to ±65504).
//! w[N, K] row-major is exactly the "col" B operand the instruction wants: no transpose.
//!
//! `multi` is the same tile over up to three matrices at once (q, k, v: one launch, and enough
//! blocks to fill the GPU where k and v alone had 64), optionally adding into out.
//!
//! Launch: grid (ceil(N / 128), ceil(M / 64)), block 256 (multi: Σ ceil(N_i / 128) along x). Block tile 64 tokens × 128 features,
//! k-step 32; 8 warps as 2 (tokens) × 4 (features), each owning a 32×32 tile = 2×4 mma tiles.
//! Global loads of tile k+1 are in flight while tile k is multiplied (double-buffered smem).
const c = @import("common.zig");
const DType = @import("../dtype.zig").DType;

pub const BM = 64;
pub const BN = 128;
const BK = 32;
/// Shared row stride in 32-bit words (BK halves = 16 words, +4 padding): fragment reads by
/// the 8 row-groups × 4 lanes then hit 32 distinct banks.
const LDW = BK / 2 + 4;

var smem_a: [2 * BM * LDW]u32 align(16) addrspace(.shared) = undefined;
var smem_b: [2 * BN * LDW]u32 align(16) addrspace(.shared) = undefined;

/// Largest finite f16: activations beyond it are clamped rather than turned into inf (which
/// would make the whole output row NaN); bf16 has the f32 range and needs no clamp.
const f16_max: f32 = 65504.0;

/// Packs two activations into one word of two 16-bit values, `lo` in the low half (lower k index).
inline fn pack2(comptime dt: DType, lo: f32, hi: f32) u32 {
    if (dt == .bf16) return c.pack2(dt, lo, hi);
    return c.pack2(dt, @min(@max(lo, -f16_max), f16_max), @min(@max(hi, -f16_max), f16_max));
}

inline fn mma(comptime dt: DType, acc: *[4]f32, a: [4]u32, b: [2]u32) void {
    const t = if (dt == .bf16) "bf16" else "f16";
    var d0: f32 = undefined;
    var d1: f32 = undefined;
    var d2: f32 = undefined;
    var d3: f32 = undefined;
    asm ("mma.sync.aligned.m16n8k16.row.col.f32." ++ t ++ "." ++ t ++ ".f32 " ++
            "{%[d0],%[d1],%[d2],%[d3]}, {%[a0],%[a1],%[a2],%[a3]}, {%[b0],%[b1]}, {%[c0],%[c1],%[c2],%[c3]};"
        : [d0] "=f" (d0),
          [d1] "=f" (d1),
          [d2] "=f" (d2),
          [d3] "=f" (d3),
        : [a0] "r" (a[0]),
          [a1] "r" (a[1]),
          [a2] "r" (a[2]),
          [a3] "r" (a[3]),
          [b0] "r" (b[0]),
          [b1] "r" (b[1]),
          [c0] "f" (acc[0]),
          [c1] "f" (acc[1]),
          [c2] "f" (acc[2]),
          [c3] "f" (acc[3]),
    );
    acc.* = .{ d0, d1, d2, d3 };
}

pub fn MatmulMma(comptime dt: DType) type {
    comptime if (dt == .f32) @compileError("f32 weights use matmul_simt");
    return struct {
        /// This thread's share of one k-tile, held in registers between the global load and
        /// the shared store: two groups of 4 activations, two groups of 8 weights.
        const Staged = struct { a: [2][4]f32, b: [2]@Vector(4, u32) };

        // Tile loads. Element (r, k) outside [M or N, K] reads as 0, which adds nothing.
        // A: 64×32 f32 = 512 groups of 4, thread i takes groups i and i+256 (8 per row).
        // B: 128×32 halves = 512 groups of 8, same split (4 per row).
        inline fn load(st: *Staged, x: c.ConstPtr(f32), w: c.ConstPtr(u16), M: usize, N: usize, K: usize, m0: usize, n0: usize, k0: usize, vec_ok: bool) void {
            inline for (0..2) |p| {
                const i = c.threadIdx() + p * 256;
                const ar = m0 + i / 8;
                const ak = k0 + (i % 8) * 4;
                if (vec_ok) {
                    st.a[p] = if (ar < M and ak < K) c.loadF32(4, x + ar * K + ak) else @splat(0);
                } else {
                    inline for (0..4) |e| st.a[p][e] = if (ar < M and ak + e < K) x[ar * K + ak + e] else 0;
                }
                const br = n0 + i / 4;
                const bk = k0 + (i % 4) * 8;
                if (vec_ok) {
                    st.b[p] = if (br < N and bk < K)
                        @as(*addrspace(.global) align(16) const @Vector(4, u32), @ptrCast(@alignCast(w + br * K + bk))).*
                    else
                        @splat(0);
                } else {
                    var h: [8]u16 = undefined;
                    inline for (0..8) |e| h[e] = if (br < N and bk + e < K) w[br * K + bk + e] else 0;
                    st.b[p] = @bitCast(h);
                }
            }
        }

        inline fn store(st: *const Staged, buf: usize) void {
            const sa: *addrspace(.shared) [2 * BM * LDW]u32 = &smem_a;
            const sb: *addrspace(.shared) [2 * BN * LDW]u32 = &smem_b;
            inline for (0..2) |p| {
                const i = c.threadIdx() + p * 256;
                const ai = buf * BM * LDW + (i / 8) * LDW + (i % 8) * 2;
                sa[ai] = pack2(dt, st.a[p][0], st.a[p][1]);
                sa[ai + 1] = pack2(dt, st.a[p][2], st.a[p][3]);
                const bi = buf * BN * LDW + (i / 4) * LDW + (i % 4) * 4;
                @as(*addrspace(.shared) @Vector(4, u32), @ptrCast(@alignCast(&sb[bi]))).* = st.b[p];
            }
        }

        pub fn kernel(out: c.Ptr(f32), x: c.ConstPtr(f32), w: c.ConstPtr(u16), m_: u32, n_: u32, k_: u32, ld: u32) callconv(.kernel) void {
            tile(out, ld, x, w, m_, n_, k_, @as(usize, c.blockIdx(0)) * BN, false);
        }

        /// Up to three weight matrices of one width reading the same x (q, k and v), their
        /// 128-row tiles laid end to end along grid x; all but the last matrix in use have
        /// whole tiles (the host checks). `accumulate`: out += x·wᵀ (the residual add after o/down).
        pub fn multi(
            out0: c.Ptr(f32),
            out1: c.Ptr(f32),
            out2: c.Ptr(f32),
            x: c.ConstPtr(f32),
            w0: c.ConstPtr(u16),
            w1: c.ConstPtr(u16),
            w2: c.ConstPtr(u16),
            m_: u32,
            n0_: u32,
            n1_: u32,
            n2_: u32,
            k_: u32,
            accumulate: u32,
        ) callconv(.kernel) void {
            const b: usize = c.blockIdx(0);
            // Only the last matrix in use may be ragged, but unused slots (0 rows) can follow
            // it: round up, so a lone ragged matrix still owns its tiles.
            const tiles0 = (n0_ + BN - 1) / BN;
            const tiles1 = (n1_ + BN - 1) / BN;
            if (b < tiles0) return tile(out0, n0_, x, w0, m_, n0_, k_, b * BN, accumulate != 0);
            if (b < tiles0 + tiles1) return tile(out1, n1_, x, w1, m_, n1_, k_, (b - tiles0) * BN, accumulate != 0);
            tile(out2, n2_, x, w2, m_, n2_, k_, (b - tiles0 - tiles1) * BN, accumulate != 0);
        }

        /// The block's 64 × 128 output tile at tokens blockIdx(1) * BM, features n0; output
        /// rows `ld` floats apart.
        inline fn tile(out: c.Ptr(f32), ld: u32, x: c.ConstPtr(f32), w: c.ConstPtr(u16), m_: u32, n_: u32, k_: u32, n0: usize, accumulate: bool) void {
            const M: usize = m_;
            const N: usize = n_;
            const K: usize = k_;
            const warp = c.threadIdx() >> 5;
            const lane = c.threadIdx() & 31;
            const g = lane >> 2; // fragment row group
            const q = lane & 3; // position inside the group
            const wm = (warp >> 2) * 32; // warp tile origin inside the block tile
            const wn = (warp & 3) * 32;
            const m0 = @as(usize, c.blockIdx(1)) * BM;
            const vec_ok = K % 8 == 0 and c.isAligned16(x) and c.isAligned16(w);
            const sa: *addrspace(.shared) [2 * BM * LDW]u32 = &smem_a;
            const sb: *addrspace(.shared) [2 * BN * LDW]u32 = &smem_b;

            var acc: [2][4][4]f32 = @splat(@splat(@splat(0)));
            var st: Staged = undefined;
            load(&st, x, w, M, N, K, m0, n0, 0, vec_ok);
            store(&st, 0);
            c.syncThreads();

            const tiles = (K + BK - 1) / BK;
            var kt: usize = 0;
            while (kt < tiles) : (kt += 1) {
                const cur = kt & 1;
                const more = kt + 1 < tiles;
                if (more) load(&st, x, w, M, N, K, m0, n0, (kt + 1) * BK, vec_ok);
                const abase = cur * BM * LDW;
                const bbase = cur * BN * LDW;
                inline for (0..2) |ks| {
                    const kw = ks * 8 + q; // word column of this lane's (k, k+1) pair
                    var af: [2][4]u32 = undefined;
                    inline for (0..2) |mt| {
                        const r = abase + (wm + mt * 16 + g) * LDW + kw;
                        af[mt] = .{ sa[r], sa[r + 8 * LDW], sa[r + 4], sa[r + 8 * LDW + 4] };
                    }
                    inline for (0..4) |nt| {
                        const r = bbase + (wn + nt * 8 + g) * LDW + kw;
                        const bf: [2]u32 = .{ sb[r], sb[r + 4] };
                        inline for (0..2) |mt| mma(dt, &acc[mt][nt], af[mt], bf);
                    }
                }
                // Buffer cur^1 was last read in the previous iteration, which ended in a
                // barrier, so it can be overwritten now; one barrier per k-tile suffices.
                if (more) store(&st, cur ^ 1);
                c.syncThreads();
            }

            inline for (0..2) |mt| {
                inline for (0..4) |nt| {
                    const col = n0 + wn + nt * 8 + q * 2;
                    inline for (0..2) |half| {
                        const row = m0 + wm + mt * 16 + g + half * 8;
                        if (row < M) {
                            inline for (0..2) |e| {
                                if (col + e < N) {
                                    const at = row * ld + col + e;
                                    out[at] = if (accumulate) out[at] + acc[mt][nt][half * 2 + e] else acc[mt][nt][half * 2 + e];
                                }
                            }
                        }
                    }
                }
            }
        }
    };
}
