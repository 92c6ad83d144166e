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
const iq = @import("quant_iq.zig");

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
    if (comptime dt.isIq()) return iq.dequant8(dt, blk, j);
    return if (comptime dt.blockElems() == 32) lg.dequant8(dt, blk, j) else dequant8(dt, blk, j);
}

// ---------------------------------------------------------------------------------------------
// CPU decode (T = 1) dot products. Instead of dequantizing each weight (w = d·sc·q − dmin·m)
// and multiplying it by x, each group sums its codes against x and, for types with mins, sums
// x itself; a group then contributes d·sc·Σ(q·x) − dmin·m·Σx. The scales are unpacked once per
// super-block and the codes are unpacked 32 bytes at a time. Mathematically the same dot
// product in a different summation order (not bit-exact with dequantize-then-dot; the
// dequantize and embedding ops keep `dequant8`, which is).

const U8x32 = @Vector(32, u8);
const I8x32 = @Vector(32, i8);

pub inline fn load32(p: [*]const u8) U8x32 {
    return @as(*align(1) const [32]u8, @ptrCast(p)).*;
}

inline fn loadX(p: [*]const f32) V8 {
    return @as(*align(1) const [8]f32, @ptrCast(p)).*;
}

/// Lanes 8c .. 8c+7 of a 32-lane byte vector, as f32.
inline fn part(v: anytype, comptime c: usize) V8 {
    const E = @typeInfo(@TypeOf(v)).vector.child;
    const m = comptime blk: {
        var a: [8]i32 = undefined;
        for (0..8) |i| a[i] = 8 * c + i;
        break :blk a;
    };
    const p: @Vector(8, E) = @shuffle(E, v, undefined, m);
    return @floatFromInt(p);
}

/// Σ q[16h + i]·x[i] for i < 16: half h of a 32-code slice.
inline fn dot16(q: anytype, comptime h: usize, x: [*]const f32) V8 {
    const a = part(q, 2 * h) * loadX(x);
    return @mulAdd(V8, part(q, 2 * h + 1), loadX(x + 8), a);
}

/// Σ q[i]·x[i] for i < 32, as 8 lanes.
inline fn dot32(q: anytype, x: [*]const f32) V8 {
    const a = @mulAdd(V8, part(q, 1), loadX(x + 8), part(q, 0) * loadX(x));
    const b = @mulAdd(V8, part(q, 3), loadX(x + 24), part(q, 2) * loadX(x + 16));
    return a + b;
}

inline fn sum16(x: [*]const f32) V8 {
    return loadX(x) + loadX(x + 8);
}

inline fn sum32(x: [*]const f32) V8 {
    return (loadX(x) + loadX(x + 8)) + (loadX(x + 16) + loadX(x + 24));
}

pub inline fn le32(blk: [*]const u8, o: usize) u32 {
    return @as(*align(1) const u32, @ptrCast(blk + o)).*;
}

inline fn u32sToU8x8(a: u32, b: u32) U8x8 {
    const v: [2]u32 = .{ a, b };
    return @bitCast(v);
}

/// Scales and mins (as f32, unscaled) of the 8 groups of a q4_k/q5_k super-block, the 12
/// packed bytes at `base` (ggml's kmask unpacking; same values as `scaleMin`).
inline fn scaleMins(blk: [*]const u8, base: usize) [2]V8 {
    const c = scaleMinCodes(blk, base);
    return .{ toF32(c[0]), toF32(c[1]) };
}

/// The same 6-bit scales and mins as integers (the quantized-activation kernels).
pub inline fn scaleMinCodes(blk: [*]const u8, base: usize) [2]U8x8 {
    const w0 = le32(blk, base);
    const w1 = le32(blk, base + 4);
    const w2 = le32(blk, base + 8);
    const sc = u32sToU8x8(w0 & 0x3f3f3f3f, (w2 & 0x0f0f0f0f) | (((w0 >> 6) & 0x03030303) << 4));
    const m = u32sToU8x8(w1 & 0x3f3f3f3f, ((w2 >> 4) & 0x0f0f0f0f) | (((w1 >> 6) & 0x03030303) << 4));
    return .{ sc, m };
}

/// The 16 signed 6-bit scales of a q3_k super-block (bytes at `base`), as f32; same values as
/// `scale3`.
inline fn scales3(blk: [*]const u8, base: usize) [2]V8 {
    const q = scale3Codes(blk, base);
    return .{ part(q, 0), part(q, 1) };
}

/// The same 16 scales as integers (the quantized-activation kernels).
pub inline fn scale3Codes(blk: [*]const u8, base: usize) @Vector(16, i8) {
    const a0 = le32(blk, base);
    const a1 = le32(blk, base + 4);
    const t = le32(blk, base + 8);
    const k1: u32 = 0x03030303;
    const k2: u32 = 0x0f0f0f0f;
    const v: [4]u32 = .{
        (a0 & k2) | ((t & k1) << 4),
        (a1 & k2) | (((t >> 2) & k1) << 4),
        ((a0 >> 4) & k2) | (((t >> 4) & k1) << 4),
        ((a1 >> 4) & k2) | (((t >> 6) & k1) << 4),
    };
    return @as(@Vector(16, i8), @bitCast(v)) - @as(@Vector(16, i8), @splat(32));
}

/// Accumulators of one row: acc[0], acc[1] the scaled code sums, accm the min terms.
const Acc = struct {
    acc: [2]V8 = .{ @splat(0), @splat(0) },
    accm: V8 = @splat(0),

    inline fn add(self: *Acc, comptime k: usize, dl: f32, s: V8) void {
        self.acc[k % 2] = @mulAdd(V8, splat(dl), s, self.acc[k % 2]);
    }

    inline fn sub(self: *Acc, ml: f32, sx: V8) void {
        self.accm = @mulAdd(V8, splat(ml), sx, self.accm);
    }

    inline fn total(self: *const Acc) f32 {
        return @reduce(.Add, (self.acc[0] + self.acc[1]) - self.accm);
    }
};

/// The 32 codes of group g (< 8) of a q4_k / q5_k super-block, in weight order.
pub inline fn codes45(comptime dt: DType, blk: [*]const u8, comptime g: usize) U8x32 {
    const qs: usize = if (dt == .q4_k) 16 else 48;
    const v = load32(blk + qs + 32 * (g / 2));
    var q = if (g % 2 == 0) v & @as(U8x32, @splat(0x0f)) else v >> @splat(4);
    if (dt == .q5_k) q |= ((load32(blk + 16) >> @splat(g)) & @as(U8x32, @splat(1))) << @splat(4);
    return q;
}

inline fn dotBlock(comptime dt: DType, blk: [*]const u8, x: [*]const f32, a: *Acc) void {
    const three: U8x32 = @splat(3);
    const nib: U8x32 = @splat(0x0f);
    switch (dt) {
        .q4_k, .q5_k => {
            const d = halfAt(blk, 0);
            const dmin = halfAt(blk, 2);
            const sm = scaleMins(blk, 4);
            const dl: [8]f32 = splat(d) * sm[0];
            const ml: [8]f32 = splat(dmin) * sm[1];
            inline for (0..8) |g| {
                const q = codes45(dt, blk, g);
                const xg = x + 32 * g;
                a.add(g, dl[g], dot32(q, xg));
                a.sub(ml[g], sum32(xg));
            }
        },
        .q2_k => {
            const d = halfAt(blk, 80);
            const dmin = halfAt(blk, 82);
            inline for (0..2) |h| {
                const v = load32(blk + 16 + 32 * h);
                inline for (0..4) |s| {
                    const q = (v >> @splat(2 * s)) & three;
                    inline for (0..2) |k| {
                        const g = 8 * h + 2 * s + k;
                        const sc = blk[g];
                        const xg = x + 16 * g;
                        a.add(g, d * @as(f32, @floatFromInt(sc & 0x0f)), dot16(q, k, xg));
                        a.sub(dmin * @as(f32, @floatFromInt(sc >> 4)), sum16(xg));
                    }
                }
            }
        },
        .q3_k => {
            const d = halfAt(blk, 108);
            const sc3 = scales3(blk, 96);
            const dl: [16]f32 = @bitCast([2]V8{ splat(d) * sc3[0], splat(d) * sc3[1] });
            const hm = load32(blk);
            inline for (0..2) |h| {
                const v = load32(blk + 32 + 32 * h);
                inline for (0..4) |s| {
                    const low = (v >> @splat(2 * s)) & three;
                    const hbit = (hm >> @splat(4 * h + s)) & @as(U8x32, @splat(1));
                    const q = @as(I8x32, @bitCast(low)) - @as(I8x32, @bitCast((hbit ^ @as(U8x32, @splat(1))) << @splat(2)));
                    inline for (0..2) |k| {
                        const g = 8 * h + 2 * s + k;
                        a.add(g, dl[g], dot16(q, k, x + 16 * g));
                    }
                }
            }
        },
        .q6_k => {
            const d = halfAt(blk, 208);
            inline for (0..2) |h| {
                const hv = load32(blk + 128 + 32 * h);
                inline for (0..4) |s| {
                    const low = (load32(blk + 64 * h + 32 * (s % 2)) >> @splat(4 * (s / 2))) & nib;
                    const high = (hv >> @splat(2 * s)) & three;
                    const q = @as(I8x32, @bitCast(low | high << @splat(4))) - @as(I8x32, @splat(32));
                    inline for (0..2) |k| {
                        const g = 8 * h + 2 * s + k;
                        const sc: i8 = @bitCast(blk[192 + g]);
                        a.add(g, d * @as(f32, @floatFromInt(sc)), dot16(q, k, x + 16 * g));
                    }
                }
            }
        },
        else => @compileError("not a K-quant type"),
    }
}

/// Dot product of a row of `nb` super-blocks of dt with x (nb·256 floats), for the CPU decode.
pub fn dotRow(comptime dt: DType, wrow: [*]const u8, x: [*]const f32, nb: usize) f32 {
    var a: Acc = .{};
    for (0..nb) |b| dotBlock(dt, wrow + b * dt.blockBytes(), x + 256 * b, &a);
    return a.total();
}
