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
const I16x16 = @Vector(16, i16);
const U8x32 = id.U8x32;

pub fn hasMin(comptime dt: DType) bool {
    return dt == .q2_k or dt == .q4_k or dt == .q5_k;
}

fn hasOffset(comptime dt: DType) bool {
    return dt == .q3_k or dt == .q6_k;
}

/// A super-block's scales as `int_dot.halves` vectors (h0: scales 0..7; h1: 8..15, the types
/// with a scale per 16), and its offsets, mins (i16 per 16 weights) and f32 factors.
pub const Scales = struct {
    h0: id.I16x16,
    h1: id.I16x16,
    off: I16x16,
    mn: I16x16,
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
inline fn twice(v: @Vector(8, u8)) I16x16 {
    const w: @Vector(16, u8) = @shuffle(u8, v, undefined, [16]i32{ 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7 });
    return w;
}

inline fn half8(v: @Vector(16, i8), comptime h: usize) @Vector(8, i8) {
    return @shuffle(i8, v, undefined, [8]i32{ 8 * h, 8 * h + 1, 8 * h + 2, 8 * h + 3, 8 * h + 4, 8 * h + 5, 8 * h + 6, 8 * h + 7 });
}

inline fn per16(sc: @Vector(16, i8), off: I16x16, mn: I16x16, d: f32, dmin: f32) Scales {
    return .{ .h0 = id.halves(half8(sc, 0)), .h1 = id.halves(half8(sc, 1)), .off = off, .mn = mn, .d = d, .dmin = dmin };
}

pub inline fn scales(comptime dt: DType, blk: [*]const u8) Scales {
    const zero: I16x16 = @splat(0);
    switch (dt) {
        .q4_k, .q5_k => {
            const sm = kq.scaleMinCodes(blk, 4);
            const h = id.halves(@bitCast(sm[0]));
            return .{ .h0 = h, .h1 = h, .off = zero, .mn = twice(sm[1]), .d = halfAt(blk, 0), .dmin = halfAt(blk, 2) };
        },
        .q2_k => {
            const sm: @Vector(16, u8) = blk[0..16].*;
            return per16(@bitCast(sm & @as(@Vector(16, u8), @splat(0x0f))), zero, sm >> @splat(4), halfAt(blk, 80), halfAt(blk, 82));
        },
        .q3_k => {
            const sc = kq.scale3Codes(blk, 96);
            return per16(sc, @as(I16x16, sc) * @as(I16x16, @splat(4)), zero, halfAt(blk, 108), 0);
        },
        .q6_k => {
            const sc: @Vector(16, i8) = @bitCast(blk[192..208].*);
            return per16(sc, @as(I16x16, sc) * @as(I16x16, @splat(32)), zero, halfAt(blk, 208), 0);
        },
        else => @compileError("not a K-quant type"),
    }
}

/// The pair scales of group g's 32 codes.
inline fn groupScale(comptime dt: DType, comptime isa: id.Isa, s: *const Scales, comptime g: usize) id.I16x16 {
    if (dt == .q4_k or dt == .q5_k) return id.scale1(isa, s.h0, g);
    return id.scale2(isa, s.h0, s.h1, g);
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

pub inline fn unpack(comptime dt: DType, comptime isa: id.Isa, blk: [*]const u8) Unpacked {
    @setEvalBranchQuota(100000);
    var u: Unpacked = undefined;
    u.s = scales(dt, blk);
    inline for (0..8) |g| {
        u.q[g] = codes(dt, blk, g);
        u.sc[g] = groupScale(dt, isa, &u.s, g);
    }
    return u;
}

inline fn actGroup(a: [*]const i8, comptime g: usize) id.I8x32 {
    return @as(*align(1) const [32]i8, @ptrCast(a + 32 * g)).*;
}

/// One row's integer sums of a super-block, lanes still to be added: iv = Σ sc·q·a − Σ off·bsum,
/// mm = Σ mn·bsum (the types with mins; undefined for the others).
pub const Sums = struct { iv: id.I32x8, mm: id.I32x8 };

inline fn withSides(comptime dt: DType, comptime isa: id.Isa, v: id.I32x8, s: *const Scales, bs: [*]const i16) Sums {
    const b: I16x16 = @as(*align(1) const [16]i16, @ptrCast(bs)).*;
    var r: Sums = .{ .iv = v, .mm = undefined };
    if (comptime hasOffset(dt)) r.iv -= id.pairProducts(isa, s.off, b);
    if (comptime hasMin(dt)) r.mm = id.pairProducts(isa, s.mn, b);
    return r;
}

/// The sums against activation codes a (256) and sums of 16 bs, from unpacked codes (prefill).
pub inline fn sums(comptime dt: DType, comptime isa: id.Isa, u: *const Unpacked, a: [*]const i8, bs: [*]const i16) Sums {
    @setEvalBranchQuota(100000);
    var v: id.I32x8 = @splat(0);
    inline for (0..8) |g| v += id.dotU(isa, u.q[g], actGroup(a, g), u.sc[g]);
    return withSides(dt, isa, v, &u.s, bs);
}

/// The same sums decoding the block group by group as it goes (decode: no unpacked copy, the
/// codes stay in registers); `s` is `scales(dt, blk)`. Exact integers: the same as `sums`.
pub inline fn sumsDirect(comptime dt: DType, comptime isa: id.Isa, blk: [*]const u8, s: *const Scales, a: [*]const i8, bs: [*]const i16) Sums {
    @setEvalBranchQuota(100000);
    var v: id.I32x8 = @splat(0);
    inline for (0..8) |g| v += id.dotU(isa, codes(dt, blk, g), actGroup(a, g), groupScale(dt, isa, s, g));
    return withSides(dt, isa, v, s, bs);
}

/// One row's contribution c (see the scheme above) from its sums, d and dmin, against
/// activation scale da.
pub inline fn contrib1(comptime dt: DType, s: Sums, d: f32, dmin: f32, da: f32) f32 {
    const c = (da * d) * @as(f32, @floatFromInt(@reduce(.Add, s.iv)));
    if (comptime !hasMin(dt)) return c;
    return c - (da * dmin) * @as(f32, @floatFromInt(@reduce(.Add, s.mm)));
}

pub const V4 = @Vector(4, f32);

/// Lane i: the sum of v[i]'s lanes (exact).
inline fn rowSums(comptime isa: id.Isa, v: *const [4]id.I32x8) @Vector(4, i32) {
    const f = id.fold4(isa, v);
    return @shuffle(i32, f, undefined, [4]i32{ 0, 1, 2, 3 }) + @shuffle(i32, f, undefined, [4]i32{ 4, 5, 6, 7 });
}

/// Four rows' contributions c (see the scheme above), lane i from s[i] and that row's d and
/// dmin, against activation scale da: the f32 steps of four rows in one vector.
pub inline fn contrib4(comptime dt: DType, comptime isa: id.Isa, s: *const [4]Sums, d: V4, dmin: V4, da: f32) V4 {
    var iv: [4]id.I32x8 = undefined;
    inline for (0..4) |i| iv[i] = s[i].iv;
    const c = (@as(V4, @splat(da)) * d) * @as(V4, @floatFromInt(rowSums(isa, &iv)));
    if (comptime !hasMin(dt)) return c;
    var mm: [4]id.I32x8 = undefined;
    inline for (0..4) |i| mm[i] = s[i].mm;
    return c - (@as(V4, @splat(da)) * dmin) * @as(V4, @floatFromInt(rowSums(isa, &mm)));
}
