//! The 64 × 64 output tile on the ordinary FMA units, shared by the f32 prefill matmul and the
//! dequantizing ones (GGUF, NF4/8-bit): each kernel only fills the two k-major shared tiles its
//! own way. Thread (ty, tx) = (tid / 16, tid % 16) owns tokens 4ty.. and features 4tx..
const c = @import("common.zig");

pub const BM = 64;
pub const BN = 64;
/// Shared row length in floats: +4 keeps rows 16-byte aligned and spreads the transposed stores
/// over more banks.
pub const LD = BM + 4;

pub const Acc = [4][4]f32;

/// acc += this thread's 4 × 4 share of the product of the two k-major tiles (bk rows each).
pub inline fn accumulate(comptime bk: usize, sa: *addrspace(.shared) const [bk * LD]f32, sb: *addrspace(.shared) const [bk * LD]f32, ty: usize, tx: usize, acc: *Acc) void {
    inline for (0..bk) |k| {
        const a = @as(*addrspace(.shared) const @Vector(4, f32), @ptrCast(@alignCast(&sa[k * LD + ty * 4]))).*;
        const b = @as(*addrspace(.shared) const @Vector(4, f32), @ptrCast(@alignCast(&sb[k * LD + tx * 4]))).*;
        inline for (0..4) |i| {
            inline for (0..4) |j| acc[i][j] += a[i] * b[j];
        }
    }
}

/// out[m0 + 4ty + i, n0 + 4tx + j] = acc[i][j], inside the M × N bounds; output rows are `ld`
/// floats apart (≥ N: a row chunk of a larger matrix writes its columns in place).
pub inline fn store(out: c.Ptr(f32), ld: u32, M: usize, N: usize, m0: usize, n0: usize, ty: usize, tx: usize, acc: *const Acc) void {
    inline for (0..4) |i| {
        const row = m0 + ty * 4 + i;
        if (row < M) {
            inline for (0..4) |j| {
                const col = n0 + tx * 4 + j;
                if (col < N) out[row * ld + col] = acc[i][j];
            }
        }
    }
}
