//! Integer dot products of ggml's K-quant super-blocks (256 weights; layouts in quant_k.zig)
//! with activations quantized in blocks of 256 with sums of 16 (quant_act.zig, scheme b256).
//! Every type becomes unsigned codes q (8 groups of 32, in the activations' order), an integer
//! scale per 16 or 32 weights, an integer offset per 16 (q3_k: 4·sc, q6_k: 32·sc, whose codes
//! are stored shifted up) and a min per 16 (q2_k, q4_k, q5_k). The scheme, which the scalar
//! reference in test/int-dot.test.ts follows operation for operation:
//!   isum = Σ_i sc(i)·q[i]·a[i] − Σ_k off[k]·bsum[k]          (exact, i32)
//!   summ = Σ_k mn[k]·bsum[k]                                  (exact, i32)
//!   c    = (d_a·d)·f32(isum) − (d_a·dmin)·f32(summ)           (the second term only with mins)
//!   acc  = acc + c    over the row's super-blocks in order; out = acc
//! ggml's own vec_dot_q*_K_q8_K computes the same integers (its f32 steps differ slightly).
const DType = @import("../dtype.zig").DType;
const lg = @import("quant_legacy.zig");
const kq = @import("quant_k.zig");
const id = @import("int_dot.zig");

const halfAt = lg.halfAt;
const load32 = kq.load32;
const I32x16 = @Vector(16, i32);
const U8x32 = id.U8x32;

pub fn hasMin(comptime dt: DType) bool {
    return dt == .q2_k or dt == .q4_k or dt == .q5_k;
}

fn hasOffset(comptime dt: DType) bool {
    return dt == .q3_k or dt == .q6_k;
}

/// A super-block's scales: per 32 weights in lanes 0..7 of `sc` (q4_k, q5_k) or per 16
/// (the others), and the offsets, mins and f32 factors.
pub const Scales = struct {
    sc: @Vector(16, i8),
    off: I32x16,
    mn: I32x16,
    d: f32,
    dmin: f32,
};

/// Codes and scales of a whole super-block, unpacked once for many tokens (prefill).
pub const Unpacked = struct {
    q: [8]U8x32,
    /// Pair scales of group g's 32 codes (int_dot.zig).
    sc: [8]id.I16x16,
    s: Scales,
};

inline fn splat8(v: u8) U8x32 {
    return @splat(v);
}

/// Per-16 values from per-32 ones: each repeated twice.
inline fn twice(v: @Vector(8, u8)) I32x16 {
    const w: @Vector(16, u8) = @shuffle(u8, v, undefined, [16]i32{ 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7 });
    return w;
}

pub inline fn scales(comptime dt: DType, blk: [*]const u8) Scales {
    const zero: I32x16 = @splat(0);
    switch (dt) {
        .q4_k, .q5_k => {
            const sm = kq.scaleMinCodes(blk, 4);
            const sc: @Vector(16, i8) = @bitCast(@shuffle(u8, sm[0], undefined, [16]i32{ 0, 1, 2, 3, 4, 5, 6, 7, 0, 0, 0, 0, 0, 0, 0, 0 }));
            return .{ .sc = sc, .off = zero, .mn = twice(sm[1]), .d = halfAt(blk, 0), .dmin = halfAt(blk, 2) };
        },
        .q2_k => {
            const sm: @Vector(16, u8) = blk[0..16].*;
            return .{ .sc = @bitCast(sm & @as(@Vector(16, u8), @splat(0x0f))), .off = zero, .mn = sm >> @splat(4), .d = halfAt(blk, 80), .dmin = halfAt(blk, 82) };
        },
        .q3_k => {
            const sc = kq.scale3Codes(blk, 96);
            return .{ .sc = sc, .off = @as(I32x16, sc) * @as(I32x16, @splat(4)), .mn = zero, .d = halfAt(blk, 108), .dmin = 0 };
        },
        .q6_k => {
            const sc: @Vector(16, i8) = @bitCast(blk[192..208].*);
            return .{ .sc = sc, .off = @as(I32x16, sc) * @as(I32x16, @splat(32)), .mn = zero, .d = halfAt(blk, 208), .dmin = 0 };
        },
        else => @compileError("not a K-quant type"),
    }
}

/// The pair scales of group g's 32 codes.
inline fn groupScale(comptime dt: DType, s: *const Scales, comptime g: usize) id.I16x16 {
    if (dt == .q4_k or dt == .q5_k) return id.scale1(s.sc, g);
    return id.scale2(s.sc, g);
}

/// The unsigned codes of weights 32g .. 32g+31 (q2_k, q3_k, q6_k: half h = g / 4, slice g % 4).
pub inline fn codes(comptime dt: DType, blk: [*]const u8, comptime g: usize) U8x32 {
    const h = g / 4;
    const s = g % 4;
    return switch (dt) {
        .q4_k, .q5_k => kq.codes45(dt, blk, g),
        .q2_k => (load32(blk + 16 + 32 * h) >> @splat(2 * s)) & splat8(3),
        .q3_k => blk3: {
            // Stored as low − 4·(1 − hbit): shifted up by 4, low + 4·hbit.
            const low = (load32(blk + 32 + 32 * h) >> @splat(2 * s)) & splat8(3);
            const hbit = (load32(blk) >> @splat(4 * h + s)) & splat8(1);
            break :blk3 low | (hbit << @splat(2));
        },
        .q6_k => blk6: {
            const low = (load32(blk + 64 * h + 32 * (s % 2)) >> @splat(4 * (s / 2))) & splat8(0x0f);
            const high = (load32(blk + 128 + 32 * h) >> @splat(2 * s)) & splat8(3);
            break :blk6 low | (high << @splat(4));
        },
        else => @compileError("not a K-quant type"),
    };
}

pub inline fn unpack(comptime dt: DType, blk: [*]const u8) Unpacked {
    var u: Unpacked = undefined;
    u.s = scales(dt, blk);
    inline for (0..8) |g| {
        u.q[g] = codes(dt, blk, g);
        u.sc[g] = groupScale(dt, &u.s, g);
    }
    return u;
}

inline fn actGroup(a: [*]const i8, comptime g: usize) id.I8x32 {
    return @as(*align(1) const [32]i8, @ptrCast(a + 32 * g)).*;
}

/// The f32 contribution from the lanes v of Σ sc·q·a (see the scheme above).
inline fn finish(comptime dt: DType, v: id.I32x8, s: *const Scales, da: f32, bs: [*]const i16) f32 {
    var isum = @reduce(.Add, v);
    const b: I32x16 = @as(*align(1) const [16]i16, @ptrCast(bs)).*;
    if (comptime hasOffset(dt)) isum -= @reduce(.Add, s.off * b);
    const c = (da * s.d) * @as(f32, @floatFromInt(isum));
    if (comptime !hasMin(dt)) return c;
    const summ = @reduce(.Add, s.mn * b);
    return c - (da * s.dmin) * @as(f32, @floatFromInt(summ));
}

/// The super-block's contribution c (see the scheme above) against activation codes a (256),
/// scale da and sums of 16 bs, from its unpacked codes.
pub inline fn contrib(comptime dt: DType, comptime isa: id.Isa, u: *const Unpacked, a: [*]const i8, da: f32, bs: [*]const i16) f32 {
    var v: id.I32x8 = @splat(0);
    inline for (0..8) |g| v += id.dotU(isa, u.q[g], actGroup(a, g), u.sc[g]);
    return finish(dt, v, &u.s, da, bs);
}

/// The same contribution decoding the block group by group as it goes (decode: no unpacked
/// copy, the codes stay in registers). Exact integers, so the same value as `contrib`.
pub inline fn contribDirect(comptime dt: DType, comptime isa: id.Isa, blk: [*]const u8, a: [*]const i8, da: f32, bs: [*]const i16) f32 {
    const s = scales(dt, blk);
    var v: id.I32x8 = @splat(0);
    inline for (0..8) |g| v += id.dotU(isa, codes(dt, blk, g), actGroup(a, g), groupScale(dt, &s, g));
    return finish(dt, v, &s, da, bs);
}
