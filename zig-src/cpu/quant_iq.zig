//! Decoding of llama.cpp's i-quants and ternary types (ggml-quants.c `dequantize_row_iq2_xxs`
//! .. `dequantize_row_tq2_0`; gguf-py `gguf.quants`). Byte layouts (d: f16 super-block scale):
//!   iq2_xxs (66): d, then per 32 weights two u32: 4 grid indices (bytes); 4 × 7 sign bits, scale << 28
//!   iq2_xs (74):  d, qs u16[32] (9-bit grid index | sign index << 9), scales u8[8] (a nibble per 16)
//!   iq2_s (82):   d, qs u8[32] (index low 8 bits), signs u8[32], qh u8[8] (2 high bits per 8), scales u8[8]
//!   iq3_xxs (98): d, qs u8[64] (a grid entry of 4 each), per 32 weights u32: 4 × 7 sign bits, scale << 28
//!   iq3_s (110):  d, qs u8[64], qh u8[8] (9th index bits), signs u8[32], scales u8[4] (a nibble per 32)
//!   iq1_s (50):   d, qs u8[32] (index low 8 bits), qh u16[8]: 4 × 3 index bits, 3-bit scale, delta sign
//!   iq1_m (56):   qs u8[32], qh u8[16] (3 index bits and the delta sign per 8), scales u16[4]
//!                 (3-bit scales per 16; d's 16 bits are the four words' top nibbles)
//!   iq4_nl (18):  d, qs u8[16]: 32 weights, nibbles into kvalues_iq4nl (low: 0..15, high: 16..31)
//!   iq4_xs (136): d, scales_h u16, scales_l u8[4] (6-bit scales per 32, minus 32), qs u8[128]
//!   tq1_0 (54):   qs u8[48] (5 trits a byte), qh u8[4] (4 trits a byte), d
//!   tq2_0 (66):   qs u8[64] (4 × 2 bits a byte), d
//! Every 8-weight group j is `scale(j) · codes8(j)`: codes8 is exact (a codebook entry with its
//! signs, a codebook entry plus IQ1's ±1/8 shift, a non-linear level, a trit), scale(j) is the
//! group's f32 multiplier computed as ggml does (`d * (0.5f + ls) * 0.25f`, ...), so a weight is
//! the same f32 product as ggml's: bit-exact (Zig does not contract into FMAs). The tables come
//! from quant_iq_tables.zig.
//!
//! Both take any byte pointer (host or CUDA global) and a runtime j, so the CPU ops and the CUDA
//! kernels share the layouts; `dotRow` is the CPU decode (T = 1) dot product.
const std = @import("std");
const builtin = @import("builtin");
const DType = @import("../dtype.zig").DType;
const lg = @import("quant_legacy.zig");
const tab = @import("quant_iq_tables.zig");

const V8 = lg.V8;
const U8x8 = @Vector(8, u8);
const halfAt = lg.halfAt;
const bytes8 = lg.bytes8;
const shr8 = lg.shr8;
const toF32 = lg.toF32;
const splat = lg.splat;

inline fn u16At(blk: anytype, o: usize) u16 {
    return @as(u16, blk[o]) | @as(u16, blk[o + 1]) << 8;
}

inline fn u32At(blk: anytype, o: usize) u32 {
    return @as(u32, u16At(blk, o)) | @as(u32, u16At(blk, o + 2)) << 16;
}

inline fn shr(v: anytype, s: usize) @TypeOf(v) {
    return v >> @intCast(s);
}

/// Eight codebook bytes (byte k = coordinate k) as f32.
inline fn gridF32(word: u64) V8 {
    return toF32(@as(U8x8, @bitCast(word)));
}

/// g with weight k negated where bit k of `signs` is set (exact).
inline fn withSigns(g: V8, signs: u8) V8 {
    const kmask: U8x8 = .{ 1, 2, 4, 8, 16, 32, 64, 128 };
    const neg = (@as(U8x8, @splat(signs)) & kmask) != @as(U8x8, @splat(0));
    return @select(f32, neg, -g, g);
}

/// The 16 bits of IQ1_M's super-block scale, from the top nibbles of its four scale words.
inline fn iq1mScale(blk: anytype) f32 {
    const bits = (u16At(blk, 48) >> 12) | ((u16At(blk, 50) >> 8) & 0x00f0) | ((u16At(blk, 52) >> 4) & 0x0f00) | (u16At(blk, 54) & 0xf000);
    return @as(f16, @bitCast(bits));
}

/// x86 with SSSE3 looks 16 bytes up in a 16-byte table in one instruction (pshufb).
const has_pshufb = builtin.cpu.arch == .x86_64 and std.Target.x86.featureSetHas(builtin.cpu.features, .ssse3);

/// kvalues_iq4nl of the low or the high nibbles of the 8 bytes at `o`.
inline fn nonLinear(blk: anytype, o: usize, high: bool) V8 {
    const nib = shr8(bytes8(blk, o), if (high) 4 else 0) & @as(U8x8, @splat(0x0f));
    if (comptime has_pshufb) {
        const table: @Vector(16, u8) = @bitCast(tab.kvalues_iq4nl);
        const idx: @Vector(16, u8) = std.simd.join(nib, @as(U8x8, @splat(0)));
        const v = asm ("pshufb %[idx], %[t]"
            : [t] "=x" (-> @Vector(16, u8)),
            : [_] "0" (table),
              [idx] "x" (idx),
        );
        return toF32(@as(@Vector(8, i8), @bitCast(std.simd.extract(v, 0, 8))));
    }
    var v: @Vector(8, i8) = undefined;
    inline for (0..8) |i| v[i] = tab.kvalues_iq4nl[nib[i]];
    return toF32(v);
}

/// Trit n of each of 8 bytes packed base 3 (ggml's `q = byte * 3^n` (mod 256), `(q * 3) >> 8`),
/// minus 1: −1, 0 or 1. `pow` holds 3^n per lane.
inline fn trits(q: U8x8, pow: U8x8) V8 {
    const t = (@as(@Vector(8, u16), q *% pow) * @as(@Vector(8, u16), @splat(3))) >> @splat(8);
    return toF32(@as(@Vector(8, i16), @intCast(t)) - @as(@Vector(8, i16), @splat(1)));
}

/// 8-weight groups that share one scale: one sum of codes·x per scale in `dotRow`.
fn groupsPerScale(comptime dt: DType) usize {
    return switch (dt) {
        .iq2_xs, .iq2_s, .iq1_m => 2,
        else => 4,
    };
}

/// The f32 multiplier of group j, in ggml's order of operations.
pub inline fn scale(comptime dt: DType, blk: anytype, j: usize) f32 {
    const ib = j / 4; // which 32 weights
    const hi = (j % 4) / 2; // which 16 of them
    return switch (dt) {
        .iq2_xxs => halfAt(blk, 0) * (0.5 + @as(f32, @floatFromInt(u32At(blk, 2 + 8 * ib + 4) >> 28))) * 0.25,
        .iq2_xs, .iq2_s => blk: {
            const sc = blk[(if (dt == .iq2_xs) 66 else 74) + ib];
            break :blk halfAt(blk, 0) * (0.5 + @as(f32, @floatFromInt(shr(sc, 4 * hi) & 0x0f))) * 0.25;
        },
        .iq3_xxs => halfAt(blk, 0) * (0.5 + @as(f32, @floatFromInt(u32At(blk, 66 + 4 * ib) >> 28))) * 0.5,
        .iq3_s => halfAt(blk, 0) * @as(f32, @floatFromInt(1 + 2 * @as(u32, shr(blk[106 + ib / 2], 4 * (ib % 2)) & 0x0f))),
        .iq1_s => halfAt(blk, 0) * @as(f32, @floatFromInt(2 * @as(u32, (u16At(blk, 34 + 2 * ib) >> 12) & 7) + 1)),
        .iq1_m => iq1mScale(blk) * @as(f32, @floatFromInt(2 * @as(u32, shr(u16At(blk, 48 + 2 * (ib / 2)), 6 * (ib % 2) + 3 * hi) & 7) + 1)),
        .iq4_nl => halfAt(blk, 0),
        .iq4_xs => blk: {
            const lo = shr(blk[4 + ib / 2], 4 * (ib % 2)) & 0x0f;
            const top: u8 = @truncate(shr(u16At(blk, 2), 2 * ib) & 3);
            break :blk halfAt(blk, 0) * @as(f32, @floatFromInt(@as(i32, lo | top << 4) - 32));
        },
        .tq1_0 => halfAt(blk, 52),
        .tq2_0 => halfAt(blk, 64),
        else => @compileError("not an i-quant type"),
    };
}

/// The exact unscaled values of weights 8j .. 8j+7 (j < blockElems / 8).
pub inline fn codes8(comptime dt: DType, blk: anytype, j: usize) V8 {
    const ib = j / 4;
    const l = j % 4;
    switch (dt) {
        .iq2_xxs => {
            const aux = u32At(blk, 2 + 8 * ib + 4);
            const g = tab.iq2xxs_grid[blk[2 + 8 * ib + l]];
            return withSigns(gridF32(g), tab.ksigns[shr(aux, 7 * l) & 127]);
        },
        .iq2_xs => {
            const q = u16At(blk, 2 + 2 * j);
            return withSigns(gridF32(tab.iq2xs_grid[q & 511]), tab.ksigns[q >> 9]);
        },
        .iq2_s => {
            const idx = @as(u16, blk[2 + j]) | (shr(@as(u16, blk[66 + ib]), 2 * l) & 3) << 8;
            return withSigns(gridF32(tab.iq2s_grid[idx]), blk[34 + j]);
        },
        .iq3_xxs => {
            const aux = u32At(blk, 66 + 4 * ib);
            const lo = tab.iq3xxs_grid[blk[2 + 8 * ib + 2 * l]];
            const hi = tab.iq3xxs_grid[blk[2 + 8 * ib + 2 * l + 1]];
            return withSigns(gridF32(@as(u64, lo) | @as(u64, hi) << 32), tab.ksigns[shr(aux, 7 * l) & 127]);
        },
        .iq3_s => {
            const qh = @as(u16, blk[66 + ib]);
            const lo = tab.iq3s_grid[@as(u16, blk[2 + 8 * ib + 2 * l]) | (shr(qh, 2 * l) & 1) << 8];
            const hi = tab.iq3s_grid[@as(u16, blk[2 + 8 * ib + 2 * l + 1]) | (shr(qh, 2 * l + 1) & 1) << 8];
            return withSigns(gridF32(@as(u64, lo) | @as(u64, hi) << 32), blk[74 + 4 * ib + l]);
        },
        .iq1_s, .iq1_m => {
            var idx: u16 = undefined;
            var minus: bool = undefined;
            if (dt == .iq1_s) {
                const qh = u16At(blk, 34 + 2 * ib);
                idx = @as(u16, blk[2 + j]) | (shr(qh, 3 * l) & 7) << 8;
                minus = qh & 0x8000 != 0;
            } else {
                const qh = shr(@as(u16, blk[32 + 2 * ib + l / 2]), 4 * (l % 2));
                idx = @as(u16, blk[j]) | (qh & 7) << 8;
                minus = qh & 8 != 0;
            }
            const g = toF32(@as(@Vector(8, i8), @bitCast(tab.iq1s_grid[idx])));
            return g + splat(if (minus) -0.125 else 0.125);
        },
        .iq4_nl => return nonLinear(blk, 2 + 8 * (j % 2), j >= 2),
        .iq4_xs => return nonLinear(blk, 8 + 16 * ib + 8 * (l % 2), l >= 2),
        .tq1_0 => {
            const pow3 = [5]u8{ 1, 3, 9, 27, 81 };
            if (j < 20) return trits(bytes8(blk, 8 * (j % 4)), @splat(pow3[j / 4]));
            if (j < 30) return trits(bytes8(blk, 32 + 8 * ((j - 20) % 2)), @splat(pow3[(j - 20) / 2]));
            // Weights 240.. : trit n of qh[0..4] for the first four lanes, trit n + 1 for the rest.
            const n = 2 * (j - 30);
            const q: U8x8 = .{ blk[48], blk[49], blk[50], blk[51], blk[48], blk[49], blk[50], blk[51] };
            const p: U8x8 = .{ pow3[n], pow3[n], pow3[n], pow3[n], pow3[n + 1], pow3[n + 1], pow3[n + 1], pow3[n + 1] };
            return trits(q, p);
        },
        .tq2_0 => {
            const q = shr8(bytes8(blk, 32 * (j / 16) + 8 * (j % 4)), 2 * ((j % 16) / 4)) & @as(U8x8, @splat(3));
            return toF32(@as(@Vector(8, i8), @bitCast(q)) - @as(@Vector(8, i8), @splat(1)));
        },
        else => @compileError("not an i-quant type"),
    }
}

/// Weights 8j .. 8j+7 of the block at `blk`, bit-exact to ggml.
pub inline fn dequant8(comptime dt: DType, blk: anytype, j: usize) V8 {
    return splat(scale(dt, blk, j)) * codes8(dt, blk, j);
}

inline fn loadX(p: [*]const f32) V8 {
    return @as(*align(1) const [8]f32, @ptrCast(p)).*;
}

/// Dot product of a row of `nb` blocks of dt with x, for the CPU decode: each scale multiplies
/// the sum of its groups' codes·x once (the same products as dequantize-then-dot, another
/// summation order).
pub fn dotRow(comptime dt: DType, wrow: [*]const u8, x: [*]const f32, nb: usize) f32 {
    const G = comptime dt.blockElems() / 8;
    const S = comptime groupsPerScale(dt);
    @setEvalBranchQuota(10_000);
    var acc: [2]V8 = .{ @splat(0), @splat(0) };
    for (0..nb) |b| {
        const blk = wrow + b * dt.blockBytes();
        const xb = x + b * dt.blockElems();
        inline for (0..G / S) |s| {
            var sum: V8 = @splat(0);
            inline for (0..S) |k| sum = @mulAdd(V8, codes8(dt, blk, S * s + k), loadX(xb + 8 * (S * s + k)), sum);
            acc[s % 2] = @mulAdd(V8, splat(scale(dt, blk, S * s)), sum, acc[s % 2]);
        }
    }
    return @reduce(.Add, acc[0] + acc[1]);
}
