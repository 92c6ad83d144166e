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

pub const Unpacked = struct {
    q: [8]U8x32,
    /// Pair scales of group g's 32 codes (int_dot.zig).
    sc: [8]id.I16x16,
    off: I32x16,
    mn: I32x16,
    d: f32,
    dmin: f32,
};

inline fn splat8(v: u8) U8x32 {
    return @splat(v);
}

/// Per-16 values from per-32 ones: each repeated twice.
inline fn twice(v: @Vector(8, u8)) I32x16 {
    const w: @Vector(16, u8) = @shuffle(u8, v, undefined, [16]i32{ 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7 });
    return w;
}

pub inline fn unpack(comptime dt: DType, blk: [*]const u8) Unpacked {
    var u: Unpacked = undefined;
    u.off = @splat(0);
    u.mn = @splat(0);
    u.dmin = 0;
    switch (dt) {
        .q4_k, .q5_k => {
            u.d = halfAt(blk, 0);
            u.dmin = halfAt(blk, 2);
            const sm = kq.scaleMinCodes(blk, 4);
            u.mn = twice(sm[1]);
            inline for (0..8) |g| {
                u.q[g] = kq.codes45(dt, blk, g);
                u.sc[g] = id.scale1(sm[0][g]);
            }
        },
        .q2_k => {
            u.d = halfAt(blk, 80);
            u.dmin = halfAt(blk, 82);
            const sc: @Vector(16, u8) = blk[0..16].*;
            u.mn = sc >> @splat(4);
            inline for (0..2) |h| {
                const v = load32(blk + 16 + 32 * h);
                inline for (0..4) |s| {
                    const g = 4 * h + s;
                    u.q[g] = (v >> @splat(2 * s)) & splat8(3);
                    u.sc[g] = id.scale2(blk[2 * g] & 0x0f, blk[2 * g + 1] & 0x0f);
                }
            }
        },
        .q3_k => {
            u.d = halfAt(blk, 108);
            const sc = kq.scale3Codes(blk, 96);
            u.off = @as(I32x16, sc) * @as(I32x16, @splat(4));
            const hm = load32(blk);
            inline for (0..2) |h| {
                const v = load32(blk + 32 + 32 * h);
                inline for (0..4) |s| {
                    const g = 4 * h + s;
                    // Stored as low − 4·(1 − hbit): shifted up by 4, low + 4·hbit.
                    const low = (v >> @splat(2 * s)) & splat8(3);
                    const hbit = (hm >> @splat(4 * h + s)) & splat8(1);
                    u.q[g] = low | (hbit << @splat(2));
                    u.sc[g] = id.scale2(sc[2 * g], sc[2 * g + 1]);
                }
            }
        },
        .q6_k => {
            u.d = halfAt(blk, 208);
            const sc: @Vector(16, i8) = @bitCast(blk[192..208].*);
            u.off = @as(I32x16, sc) * @as(I32x16, @splat(32));
            inline for (0..2) |h| {
                const hv = load32(blk + 128 + 32 * h);
                inline for (0..4) |s| {
                    const g = 4 * h + s;
                    const low = (load32(blk + 64 * h + 32 * (s % 2)) >> @splat(4 * (s / 2))) & splat8(0x0f);
                    const high = (hv >> @splat(2 * s)) & splat8(3);
                    u.q[g] = low | (high << @splat(4));
                    u.sc[g] = id.scale2(sc[2 * g], sc[2 * g + 1]);
                }
            }
        },
        else => @compileError("not a K-quant type"),
    }
    return u;
}

/// The super-block's contribution c (see the scheme above) against activation codes a (256),
/// scale da and sums of 16 bs.
pub inline fn contrib(comptime dt: DType, comptime isa: id.Isa, u: *const Unpacked, a: [*]const i8, da: f32, bs: [*]const i16) f32 {
    var v: id.I32x8 = @splat(0);
    inline for (0..8) |g| v += id.dotU(isa, u.q[g], @as(*align(1) const [32]i8, @ptrCast(a + 32 * g)).*, u.sc[g]);
    var isum = @reduce(.Add, v);
    const b: I32x16 = @as(*align(1) const [16]i16, @ptrCast(bs)).*;
    if (comptime hasOffset(dt)) isum -= @reduce(.Add, u.off * b);
    const c = (da * u.d) * @as(f32, @floatFromInt(isum));
    if (comptime !hasMin(dt)) return c;
    const summ = @reduce(.Add, u.mn * b);
    return c - (da * u.dmin) * @as(f32, @floatFromInt(summ));
}
