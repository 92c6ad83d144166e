//! Decoding of ggml's legacy block formats, 32 weights per block (ggml-quants.c
//! `dequantize_row_q4_0` .. `dequantize_row_q8_0`; gguf-py `gguf.quants`):
//!   q8_0: d f16, qs i8[32]                 w = qs[i]·d
//!   q4_0: d f16, qs u8[16] (two nibbles)   w = (nib - 8)·d
//!   q4_1: d f16, m f16, qs u8[16]          w = nib·d + m
//!   q5_0: d f16, qh u32, qs u8[16]         w = (nib | bit<<4) - 16)·d
//!   q5_1: d f16, m f16, qh u32, qs u8[16]  w = (nib | bit<<4)·d + m
//! Weight i < 16 is the low nibble of qs[i], weight i ≥ 16 the high nibble of qs[i - 16];
//! its fifth bit (q5) is bit i of qh. Every product and sum is one f32 operation in ggml's
//! order, so the results are bit-exact (no FMA contraction: Zig's float mode is strict).
//!
//! `dequant8` decodes 8 consecutive weights (group j of 4) from any byte pointer — a host
//! pointer on the CPU, a global-memory pointer in the CUDA kernels — so both backends share
//! one definition of the layouts.
const DType = @import("../dtype.zig").DType;

pub const V8 = @Vector(8, f32);
const U8x8 = @Vector(8, u8);

/// Little-endian f16 at blk[o], widened to f32 (exact).
pub inline fn halfAt(blk: anytype, o: usize) f32 {
    const bits = @as(u16, blk[o]) | @as(u16, blk[o + 1]) << 8;
    return @as(f16, @bitCast(bits));
}

pub inline fn bytes8(blk: anytype, o: usize) U8x8 {
    var v: [8]u8 = undefined;
    inline for (0..8) |i| v[i] = blk[o + i];
    return v;
}

pub inline fn shr8(v: U8x8, s: usize) U8x8 {
    return v >> @as(@Vector(8, u3), @splat(@intCast(s)));
}

pub inline fn toF32(v: anytype) V8 {
    return @floatFromInt(v);
}

pub inline fn splat(x: f32) V8 {
    return @splat(x);
}

/// The four low bits of the 8 weights of group j: nibbles of qs (at byte `qs`).
inline fn nibbles(blk: anytype, qs: usize, j: usize) U8x8 {
    const raw = bytes8(blk, qs + (j % 2) * 8);
    return shr8(raw, (j / 2) * 4) & @as(U8x8, @splat(0x0f));
}

/// The fifth bits of the 8 weights of group j, already shifted to bit 4.
inline fn highBits(blk: anytype, qh: usize, j: usize) U8x8 {
    const h = @as(u32, blk[qh]) | @as(u32, blk[qh + 1]) << 8 | @as(u32, blk[qh + 2]) << 16 | @as(u32, blk[qh + 3]) << 24;
    const iota: @Vector(8, u5) = .{ 0, 1, 2, 3, 4, 5, 6, 7 };
    const bits = (@as(@Vector(8, u32), @splat(h >> @intCast(j * 8))) >> iota) & @as(@Vector(8, u32), @splat(1));
    return @as(U8x8, @intCast(bits)) << @splat(4);
}

/// Weights 8j .. 8j+7 of the block at `blk` (j < 4).
pub inline fn dequant8(comptime dt: DType, blk: anytype, j: usize) V8 {
    switch (dt) {
        .q8_0 => {
            const q: @Vector(8, i8) = @bitCast(bytes8(blk, 2 + 8 * j));
            return toF32(q) * splat(halfAt(blk, 0));
        },
        .q4_0 => {
            const q = @as(@Vector(8, i8), @bitCast(nibbles(blk, 2, j))) - @as(@Vector(8, i8), @splat(8));
            return splat(halfAt(blk, 0)) * toF32(q);
        },
        .q4_1 => return splat(halfAt(blk, 0)) * toF32(nibbles(blk, 4, j)) + splat(halfAt(blk, 2)),
        .q5_0 => {
            const u = nibbles(blk, 6, j) | highBits(blk, 2, j);
            const q = @as(@Vector(8, i8), @bitCast(u)) - @as(@Vector(8, i8), @splat(16));
            return splat(halfAt(blk, 0)) * toF32(q);
        },
        .q5_1 => return splat(halfAt(blk, 0)) * toF32(nibbles(blk, 8, j) | highBits(blk, 4, j)) + splat(halfAt(blk, 2)),
        else => @compileError("not a legacy quant type"),
    }
}
