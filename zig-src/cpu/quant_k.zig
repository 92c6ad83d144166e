//! Decoding of ggml's K-quant super-blocks, 256 weights per block (ggml-quants.c
//! `dequantize_row_q2_K` .. `dequantize_row_q6_K`; gguf-py `gguf.quants`). Byte layouts:
//!   q2_k (84):  scales u8[16] (lo nibble scale, hi nibble min), qs u8[64] (2 bits), d, dmin
//!   q3_k (110): hmask u8[32], qs u8[64] (2 bits), scales 12 bytes (16 × 6 bits), d
//!   q4_k (144): d, dmin, scales 12 bytes (8 × 6-bit scale + 8 × 6-bit min), qs u8[128]
//!   q5_k (176): d, dmin, scales 12 bytes, qh u8[32], qs u8[128]
//!   q6_k (210): ql u8[128], qh u8[64], scales i8[16], d
//! Within a half (128 weights) of q2/q3/q6, weight 32s + l takes bits 2s.. of byte l of that
//! half's 32-byte slice; q4/q5 take the low nibble for the first 32 of each 64, the high nibble
//! for the next 32. Scales go per 16 weights (q2, q3, q6) or per 32 (q4, q5), always multiplied
//! by d first (`dl = d·sc`), then `dl·q - ml`, in ggml's order: bit-exact in f32.
//!
//! `dequant8(dt, blk, j)` decodes weights 8j .. 8j+7 (j < 32) from any byte pointer (host or
//! CUDA global), so the CPU and CUDA backends share these layouts.
const DType = @import("../dtype.zig").DType;
const lg = @import("quant_legacy.zig");

const V8 = lg.V8;
const U8x8 = @Vector(8, u8);
const halfAt = lg.halfAt;
const bytes8 = lg.bytes8;
const shr8 = lg.shr8;
const toF32 = lg.toF32;
const splat = lg.splat;

/// 6-bit scale and min of 32-weight group g (< 8) of q4_k/q5_k (ggml `get_scale_min_k4`).
inline fn scaleMin(blk: anytype, base: usize, g: usize) [2]f32 {
    if (g < 4) return .{ @floatFromInt(blk[base + g] & 63), @floatFromInt(blk[base + g + 4] & 63) };
    const sc = (blk[base + g + 4] & 0x0f) | ((blk[base + g - 4] >> 6) << 4);
    const m = (blk[base + g + 4] >> 4) | ((blk[base + g] >> 6) << 4);
    return .{ @floatFromInt(sc), @floatFromInt(m) };
}

/// Signed 6-bit scale of 16-weight group g (< 16) of q3_k, packed at byte `base`.
inline fn scale3(blk: anytype, base: usize, g: usize) f32 {
    const lo = if (g < 8) blk[base + g] & 0x0f else blk[base + g - 8] >> 4;
    const hi = (blk[base + 8 + g % 4] >> @intCast(2 * (g / 4))) & 3;
    return @floatFromInt(@as(i32, lo | hi << 4) - 32);
}

/// Weights 8j .. 8j+7 of the super-block at `blk` (j < 32).
pub inline fn dequant8(comptime dt: DType, blk: anytype, j: usize) V8 {
    const h = j / 16; // which 128-weight half
    const s = (j % 16) / 4; // which 32-weight slice of the half
    const l0 = (j % 4) * 8; // first byte of the slice used
    const three: U8x8 = @splat(3);
    switch (dt) {
        .q2_k => {
            const sc = blk[j / 2];
            const dl = halfAt(blk, 80) * @as(f32, @floatFromInt(sc & 0x0f));
            const ml = halfAt(blk, 82) * @as(f32, @floatFromInt(sc >> 4));
            const q = shr8(bytes8(blk, 16 + h * 32 + l0), 2 * s) & three;
            return splat(dl) * toF32(q) - splat(ml);
        },
        .q3_k => {
            const dl = halfAt(blk, 108) * scale3(blk, 96, j / 2);
            const low = shr8(bytes8(blk, 32 + h * 32 + l0), 2 * s) & three;
            const hbit = shr8(bytes8(blk, l0), j / 4) & @as(U8x8, @splat(1));
            // A clear hmask bit means "subtract 4" (ggml: `(hm[l] & m) ? 0 : 4`).
            const q = @as(@Vector(8, i8), @bitCast(low)) - @as(@Vector(8, i8), @bitCast((hbit ^ @as(U8x8, @splat(1))) << @splat(2)));
            return splat(dl) * toF32(q);
        },
        .q4_k, .q5_k => {
            const g = j / 4;
            const qs: usize = if (dt == .q4_k) 16 else 48;
            const sm = scaleMin(blk, 4, g);
            const dl = halfAt(blk, 0) * sm[0];
            const ml = halfAt(blk, 2) * sm[1];
            var q = shr8(bytes8(blk, qs + (g / 2) * 32 + l0), (g % 2) * 4) & @as(U8x8, @splat(0x0f));
            if (dt == .q5_k) q |= (shr8(bytes8(blk, 16 + l0), g) & @as(U8x8, @splat(1))) << @splat(4);
            return splat(dl) * toF32(q) - splat(ml);
        },
        .q6_k => {
            const sc: i8 = @bitCast(blk[192 + j / 2]);
            const dl = halfAt(blk, 208) * @as(f32, @floatFromInt(sc));
            const low = shr8(bytes8(blk, h * 64 + (s % 2) * 32 + l0), (s / 2) * 4) & @as(U8x8, @splat(0x0f));
            const high = shr8(bytes8(blk, 128 + h * 32 + l0), 2 * s) & three;
            const q = @as(@Vector(8, i8), @bitCast(low | high << @splat(4))) - @as(@Vector(8, i8), @splat(32));
            return splat(dl) * toF32(q);
        },
        else => @compileError("not a K-quant type"),
    }
}

/// Weights 8j .. 8j+7 of a block of any quantized dt (j < blockElems / 8): the one entry point
/// the CPU ops and the CUDA kernels decode through.
pub inline fn dequant8Any(comptime dt: DType, blk: anytype, j: usize) V8 {
    return if (comptime dt.blockElems() == 32) lg.dequant8(dt, blk, j) else dequant8(dt, blk, j);
}
