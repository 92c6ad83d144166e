//! Integer dot products of 32 weight codes with 32 int8 activations: the primitive of the
//! quantized-activation matmul (quant_int_*.zig). Lane j of every result is the sum over the
//! quad 4j .. 4j+3, times the i16 scale of that quad's pair lanes where one is given:
//! - avx2: vpmaddubsw (u8 × i8 → i16 pair sums) then vpmaddwd by the scales (→ i32 quad sums),
//!   llama.cpp's sequence; signed codes go through vpsignb / |w| first.
//! - portable: the same products widened to i32 and summed in the same quads, plain @Vector
//!   code for any target.
//! Both are exact integer arithmetic within the bounds below (no i16 saturation), so they give
//! identical results; `active` picks one when the library loads, and tests can force either.
//!
//! Bounds that keep vpmaddubsw exact (|pair| ≤ 32767): activations in [-127, 127], unsigned
//! codes ≤ 127, signed codes in [-128, 127] (2·128·127 = 32512).
const std = @import("std");
const builtin = @import("builtin");

pub const I8x32 = @Vector(32, i8);
pub const U8x32 = @Vector(32, u8);
pub const I16x16 = @Vector(16, i16);
pub const I32x8 = @Vector(8, i32);

pub const Isa = enum(u32) { portable = 0, avx2 = 1 };

pub const has_avx2 = builtin.cpu.arch == .x86_64 and std.Target.x86.featureSetHas(builtin.cpu.features, .avx2);

/// The path the matmul takes: the fastest one this build can run (the library is built for
/// x86-64-v3 by default, so AVX2 is there wherever it loads).
pub var active: Isa = if (has_avx2) .avx2 else .portable;

/// Forces a path (tests); false when this build cannot run it.
pub fn force(isa: Isa) bool {
    if (isa == .avx2 and !has_avx2) return false;
    active = isa;
    return true;
}

extern fn @"llvm.x86.avx2.pmadd.ub.sw"(U8x32, I8x32) I16x16;
extern fn @"llvm.x86.avx2.pmadd.wd"(I16x16, I16x16) I32x8;
extern fn @"llvm.x86.avx2.psign.b"(I8x32, I8x32) I8x32;
extern fn @"llvm.x86.avx2.pshuf.b"(U8x32, U8x32) U8x32;

const ones: I16x16 = @splat(1);

/// Quad sums of a 32-lane i32 vector: lane j = p[4j] + p[4j+1] + p[4j+2] + p[4j+3].
const quad_masks = blk: {
    var a: [4][8]i32 = undefined;
    for (0..4) |k| for (0..8) |j| {
        a[k][j] = 4 * j + k;
    };
    break :blk a;
};

inline fn quads(p: @Vector(32, i32)) I32x8 {
    const m = quad_masks;
    const a: I32x8 = @shuffle(i32, p, undefined, m[0]);
    const b: I32x8 = @shuffle(i32, p, undefined, m[1]);
    const c: I32x8 = @shuffle(i32, p, undefined, m[2]);
    const d: I32x8 = @shuffle(i32, p, undefined, m[3]);
    return (a + b) + (c + d);
}

/// The quad scale of lane j of a 16-lane pair-scale vector (pairs 2j and 2j+1 share it).
inline fn quadScales(sc: I16x16) I32x8 {
    return @shuffle(i16, sc, undefined, [8]i32{ 0, 2, 4, 6, 8, 10, 12, 14 });
}

/// Lane j: sc[2j]·Σ_{k<4} w[4j+k]·a[4j+k], unsigned codes w; sc holds one scale per pair of
/// i16 lanes (both lanes of a pair equal).
pub inline fn dotU(comptime isa: Isa, w: U8x32, a: I8x32, sc: I16x16) I32x8 {
    if (comptime isa == .avx2) return @"llvm.x86.avx2.pmadd.wd"(@"llvm.x86.avx2.pmadd.ub.sw"(w, a), sc);
    const p = @as(@Vector(32, i32), w) * @as(@Vector(32, i32), a);
    return quads(p) * quadScales(sc);
}

/// Lane j: Σ_{k<4} w[4j+k]·a[4j+k], signed codes w.
pub inline fn dotS(comptime isa: Isa, w: I8x32, a: I8x32) I32x8 {
    if (comptime isa == .avx2) {
        // |w| · (a with w's sign): the products keep their signs, the left operand is unsigned.
        return @"llvm.x86.avx2.pmadd.wd"(@"llvm.x86.avx2.pmadd.ub.sw"(@abs(w), @"llvm.x86.avx2.psign.b"(a, w)), ones);
    }
    const p = @as(@Vector(32, i32), w) * @as(@Vector(32, i32), a);
    return quads(p);
}

/// dotS with |w| given: where w comes from a table lookup, |w| is one more lookup, which
/// leaves the pipes vpabsb shares with the multiplies.
pub inline fn dotSAbs(comptime isa: Isa, w: I8x32, w_abs: U8x32, a: I8x32) I32x8 {
    if (comptime isa == .avx2) return @"llvm.x86.avx2.pmadd.wd"(@"llvm.x86.avx2.pmadd.ub.sw"(w_abs, @"llvm.x86.avx2.psign.b"(a, w)), ones);
    return dotS(isa, w, a);
}

/// Lane i: table[idx[i]], indices 0..15 (the codes of a non-linear 4-bit type): avx2 with one
/// vpshufb on the table held in both 128-bit halves, portable one element at a time.
pub inline fn lookup16(comptime isa: Isa, comptime table: [16]i8, idx: U8x32) I8x32 {
    if (comptime isa == .avx2) {
        const both: U8x32 = @bitCast(table ++ table);
        return @bitCast(@"llvm.x86.avx2.pshuf.b"(both, idx));
    }
    const ix: [32]u8 = idx;
    var r: [32]i8 = undefined;
    for (&r, ix) |*v, i| v.* = table[i & 15];
    return r;
}

/// Scale s[g] for all 32 codes of group g (the K-quants with a scale per 32 weights).
pub inline fn scale1(s: @Vector(16, i8), comptime g: usize) I16x16 {
    return @shuffle(i8, s, undefined, @as(@Vector(16, i32), @splat(g)));
}

/// Scale s[2g] for codes 0..15 of group g, s[2g+1] for 16..31 (the K-quants with a scale per
/// 16 weights): a byte shuffle of the block's 16 scales and one widening (vpshufb, vpmovsxbw).
pub inline fn scale2(s: @Vector(16, i8), comptime g: usize) I16x16 {
    const m = comptime blk: {
        var a: [16]i32 = undefined;
        for (0..16) |i| a[i] = 2 * g + i / 8;
        break :blk a;
    };
    return @shuffle(i8, s, undefined, m);
}

test "the AVX2 and portable paths agree on extreme codes" {
    if (!has_avx2) return error.SkipZigTest;
    var prng = std.Random.DefaultPrng.init(3);
    const rnd = prng.random();
    for (0..200) |_| {
        var w: I8x32 = undefined;
        var u: U8x32 = undefined;
        var a: I8x32 = undefined;
        for (0..32) |i| {
            w[i] = rnd.int(i8);
            u[i] = rnd.uintAtMost(u8, 127);
            a[i] = @intCast(rnd.intRangeAtMost(i16, -127, 127));
        }
        var s16: @Vector(16, i8) = undefined;
        for (0..16) |i| s16[i] = rnd.int(i8);
        const sc = scale2(s16, 3);
        try std.testing.expectEqual(dotS(.portable, w, a), dotS(.avx2, w, a));
        try std.testing.expectEqual(dotU(.portable, u, a, sc), dotU(.avx2, u, a, sc));
        const idx = u & @as(U8x32, @splat(15));
        const table: [16]i8 = .{ -127, -88, -67, -50, -36, -23, -12, 0, 10, 20, 31, 43, 56, 71, 92, 127 };
        try std.testing.expectEqual(lookup16(.portable, table, idx), lookup16(.avx2, table, idx));
        const w_abs: U8x32 = @bitCast(@abs(w));
        try std.testing.expectEqual(dotS(.portable, w, a), dotSAbs(.avx2, w, w_abs, a));
    }
}
