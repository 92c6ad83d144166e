//! Integer dot products of 32 weight codes with 32 int8 activations: the primitive of the
//! quantized-activation matmul (quant_int_*.zig). Lane j of every result is the sum over the
//! quad 4j .. 4j+3, times the i16 scale of that quad's pair lanes where one is given:
//! - avx2: vpmaddubsw (u8 × i8 → i16 pair sums) then vpmaddwd by the scales (→ i32 quad sums),
//!   llama.cpp's sequence; signed codes go through vpsignb / |w| first.
//! - avxvnni / avx512vnni: vpdpbusd (u8 × i8, four products summed straight into i32) where the
//!   quads have no scale, VEX- or EVEX-encoded by inline assembly (the library is compiled for
//!   x86-64-v3, whose features do not include VNNI; the CPU is checked on first use, and the path
//!   taken only if its primitives agree with the AVX2 ones on a fixed set of codes); the scaled
//!   K-quant products keep the AVX2 sequence.
//! - portable: the same products widened to i32 and summed in the same quads, plain @Vector
//!   code for any target.
//! All are exact integer arithmetic within the bounds below (no i16 saturation), so they give
//! identical results; `active` is the fastest the CPU runs, and tests can force any of them.
//! The VNNI paths have not run here: the development machine's CPU (AMD Zen 1) has no VNNI.
//!
//! Bounds that keep vpmaddubsw exact (|pair| ≤ 32767): activations in [-127, 127], unsigned
//! codes ≤ 127, signed codes in [-128, 127] (2·128·127 = 32512).
const std = @import("std");
const builtin = @import("builtin");

pub const I8x32 = @Vector(32, i8);
pub const U8x32 = @Vector(32, u8);
pub const I16x16 = @Vector(16, i16);
pub const I32x8 = @Vector(8, i32);

pub const Isa = enum(u32) {
    portable = 0,
    avx2 = 1,
    avxvnni = 2,
    avx512vnni = 3,

    /// Every path but the portable one has AVX2 (the VNNI ones are supersets).
    pub fn simd(isa: Isa) bool {
        return isa != .portable;
    }
};

pub const has_avx2 = builtin.cpu.arch == .x86_64 and std.Target.x86.featureSetHas(builtin.cpu.features, .avx2);

/// The path the matmul takes: the fastest this CPU runs, found on first use (`current`).
var active: ?Isa = null;

pub fn current() Isa {
    if (active == null) active = fastest();
    return active.?;
}

/// Whether this build on this CPU can run `isa`.
pub fn runs(isa: Isa) bool {
    return switch (isa) {
        .portable => true,
        .avx2 => has_avx2,
        .avxvnni => has_avx2 and cpu.avxVnni(),
        .avx512vnni => has_avx2 and cpu.avx512Vnni(),
    };
}

fn fastest() Isa {
    inline for (.{ Isa.avxvnni, Isa.avx512vnni }) |isa| {
        if (runs(isa) and agrees(isa)) return isa;
    }
    return if (has_avx2) .avx2 else .portable;
}

/// A check when a VNNI path is first chosen: its primitives on extreme and mixed codes against
/// the AVX2 ones (the paths no CI machine here can run are never taken on faith).
fn agrees(comptime isa: Isa) bool {
    var w: I8x32 = undefined;
    var u: U8x32 = undefined;
    var a: I8x32 = undefined;
    for (0..32) |i| {
        w[i] = @bitCast(@as(u8, @truncate(i * 37 + 128)));
        u[i] = @truncate((i * 53) % 64);
        a[i] = @intCast(@as(i32, @intCast((i * 91) % 255)) - 127);
    }
    const w_abs: U8x32 = @bitCast(@abs(w));
    return @reduce(.And, dotS(isa, w, a) == dotS(.avx2, w, a)) and
        @reduce(.And, dotU2(isa, u, a, u, w) == dotU2(.avx2, u, a, u, w)) and
        @reduce(.And, dotSAbs(isa, w, w_abs, a) == dotSAbs(.avx2, w, w_abs, a));
}

/// Forces a path (tests); false when this build or CPU cannot run it.
pub fn force(isa: Isa) bool {
    if (!runs(isa)) return false;
    active = isa;
    return true;
}

/// CPUID and XGETBV: the VNNI features, and the OS saving the registers they use.
const cpu = struct {
    const Regs = struct { a: u32, b: u32, c: u32, d: u32 };

    fn cpuid(leaf: u32, sub: u32) Regs {
        var a: u32 = undefined;
        var b: u32 = undefined;
        var c: u32 = undefined;
        var d: u32 = undefined;
        asm volatile ("cpuid"
            : [a] "={eax}" (a),
              [b] "={ebx}" (b),
              [c] "={ecx}" (c),
              [d] "={edx}" (d),
            : [leaf] "{eax}" (leaf),
              [sub] "{ecx}" (sub),
        );
        return .{ .a = a, .b = b, .c = c, .d = d };
    }

    /// XCR0: which register states the OS saves (bits 1–2: xmm/ymm, 5–7: opmask/zmm).
    fn xcr0() u32 {
        if (cpuid(1, 0).c & (1 << 27) == 0) return 0; // no OSXSAVE: XGETBV would fault
        return asm volatile ("xgetbv"
            : [a] "={eax}" (-> u32),
            : [c] "{ecx}" (@as(u32, 0)),
            : "edx"
        );
    }

    fn leaf7() bool {
        if (comptime builtin.cpu.arch != .x86_64) return false;
        return cpuid(0, 0).a >= 7;
    }

    fn avxVnni() bool {
        if (!leaf7()) return false;
        return cpuid(7, 1).a & (1 << 4) != 0 and xcr0() & 0x6 == 0x6;
    }

    /// AVX512-VNNI on 256-bit registers needs AVX512VL as well, and the zmm/opmask state saved.
    fn avx512Vnni() bool {
        if (!leaf7()) return false;
        const r = cpuid(7, 0);
        const has_vnni = r.c & (1 << 11) != 0;
        const f_vl = r.b & (1 << 16) != 0 and r.b & (1 << 31) != 0;
        return has_vnni and f_vl and xcr0() & 0xe6 == 0xe6;
    }
};

/// acc + Σ_{k<4} u[4j+k]·s[4j+k] in lane j (vpdpbusd), exact.
inline fn dpbusd(comptime isa: Isa, acc: I32x8, u: U8x32, s: I8x32) I32x8 {
    return switch (isa) {
        .avxvnni => asm ("{vex} vpdpbusd %[s], %[u], %[acc]"
            : [acc] "=x" (-> I32x8),
            : [u] "x" (u),
              [s] "x" (s),
              [acc0] "0" (acc),
        ),
        .avx512vnni => asm ("{evex} vpdpbusd %[s], %[u], %[acc]"
            : [acc] "=v" (-> I32x8),
            : [u] "v" (u),
              [s] "v" (s),
              [acc0] "0" (acc),
        ),
        else => @compileError("not a VNNI path"),
    };
}

inline fn vnni(comptime isa: Isa) bool {
    return isa == .avxvnni or isa == .avx512vnni;
}

const zero8: I32x8 = @splat(0);

extern fn @"llvm.x86.avx2.pmadd.ub.sw"(U8x32, I8x32) I16x16;
extern fn @"llvm.x86.avx2.pmadd.wd"(I16x16, I16x16) I32x8;
extern fn @"llvm.x86.avx2.psign.b"(I8x32, I8x32) I8x32;
extern fn @"llvm.x86.avx2.pshuf.b"(U8x32, U8x32) U8x32;
extern fn @"llvm.x86.avx2.phadd.d"(I32x8, I32x8) I32x8;

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
    if (comptime isa.simd()) return @"llvm.x86.avx2.pmadd.wd"(@"llvm.x86.avx2.pmadd.ub.sw"(w, a), sc);
    const p = @as(@Vector(32, i32), w) * @as(@Vector(32, i32), a);
    return quads(p) * quadScales(sc);
}

/// Lane j: Σ_{k<4} w[4j+k]·a[4j+k], signed codes w.
pub inline fn dotS(comptime isa: Isa, w: I8x32, a: I8x32) I32x8 {
    // |w| · (a with w's sign): the products keep their signs, the left operand is unsigned.
    if (comptime vnni(isa)) return dpbusd(isa, zero8, @abs(w), @"llvm.x86.avx2.psign.b"(a, w));
    if (comptime isa.simd()) return @"llvm.x86.avx2.pmadd.wd"(@"llvm.x86.avx2.pmadd.ub.sw"(@abs(w), @"llvm.x86.avx2.psign.b"(a, w)), ones);
    const p = @as(@Vector(32, i32), w) * @as(@Vector(32, i32), a);
    return quads(p);
}

/// Lane j: Σ_{k<4} (w0·a0 + w1·a1)[4j+k], unsigned codes ≤ 63: the two vpmaddubsw results are
/// added as i16 (|4·63·127| ≤ 32767, still exact) before one vpmaddwd.
pub inline fn dotU2(comptime isa: Isa, w0: U8x32, a0: I8x32, w1: U8x32, a1: I8x32) I32x8 {
    if (comptime vnni(isa)) return dpbusd(isa, dpbusd(isa, zero8, w0, a0), w1, a1);
    if (comptime isa.simd()) return @"llvm.x86.avx2.pmadd.wd"(@"llvm.x86.avx2.pmadd.ub.sw"(w0, a0) + @"llvm.x86.avx2.pmadd.ub.sw"(w1, a1), ones);
    const p = @as(@Vector(32, i32), w0) * @as(@Vector(32, i32), a0) + @as(@Vector(32, i32), w1) * @as(@Vector(32, i32), a1);
    return quads(p);
}

/// dotS with |w| given: where w comes from a table lookup, |w| is one more lookup, which
/// leaves the pipes vpabsb shares with the multiplies.
pub inline fn dotSAbs(comptime isa: Isa, w: I8x32, w_abs: U8x32, a: I8x32) I32x8 {
    if (comptime vnni(isa)) return dpbusd(isa, zero8, w_abs, @"llvm.x86.avx2.psign.b"(a, w));
    if (comptime isa.simd()) return @"llvm.x86.avx2.pmadd.wd"(@"llvm.x86.avx2.pmadd.ub.sw"(w_abs, @"llvm.x86.avx2.psign.b"(a, w)), ones);
    return dotS(isa, w, a);
}

/// Lane i: table[idx[i]], indices 0..15 (the codes of a non-linear 4-bit type): avx2 with one
/// vpshufb on the table held in both 128-bit halves, portable one element at a time.
pub inline fn lookup16(comptime isa: Isa, comptime table: [16]i8, idx: U8x32) I8x32 {
    if (comptime isa.simd()) {
        const both: U8x32 = @bitCast(table ++ table);
        return @bitCast(@"llvm.x86.avx2.pshuf.b"(both, idx));
    }
    const ix: [32]u8 = idx;
    var r: [32]i8 = undefined;
    for (&r, ix) |*v, i| v.* = table[i & 15];
    return r;
}

/// Adjacent lane sums of a and b within each 128-bit half (vphaddd):
/// [a0+a1, a2+a3, b0+b1, b2+b3 | a4+a5, a6+a7, b4+b5, b6+b7].
pub inline fn pairSums(comptime isa: Isa, a: I32x8, b: I32x8) I32x8 {
    if (comptime isa.simd()) return @"llvm.x86.avx2.phadd.d"(a, b);
    const even = [8]i32{ 0, 2, ~@as(i32, 0), ~@as(i32, 2), 4, 6, ~@as(i32, 4), ~@as(i32, 6) };
    const odd = [8]i32{ 1, 3, ~@as(i32, 1), ~@as(i32, 3), 5, 7, ~@as(i32, 5), ~@as(i32, 7) };
    return @shuffle(i32, a, b, even) + @shuffle(i32, a, b, odd);
}

/// Four vectors' lane sums, folded: lane i of each half holds half i of v[i] summed, so
/// out[i] + out[4 + i] = Σ v[i] (three vphaddd).
pub inline fn fold4(comptime isa: Isa, v: *const [4]I32x8) I32x8 {
    return pairSums(isa, pairSums(isa, v[0], v[1]), pairSums(isa, v[2], v[3]));
}

/// Lane j: a[2j]·b[2j] + a[2j+1]·b[2j+1] in i32 (vpmaddwd), exact for any i16 inputs.
pub inline fn pairProducts(comptime isa: Isa, a: I16x16, b: I16x16) I32x8 {
    if (comptime isa.simd()) return @"llvm.x86.avx2.pmadd.wd"(a, b);
    const p = @as(@Vector(16, i32), a) * @as(@Vector(16, i32), b);
    const even: I32x8 = @shuffle(i32, p, undefined, [8]i32{ 0, 2, 4, 6, 8, 10, 12, 14 });
    const odd: I32x8 = @shuffle(i32, p, undefined, [8]i32{ 1, 3, 5, 7, 9, 11, 13, 15 });
    return even + odd;
}

/// Eight i8 values widened to i16 and repeated in both 128-bit halves (lanes i and 8 + i), the
/// source of the in-lane scale broadcasts below; computed once per super-block.
pub inline fn halves(s: @Vector(8, i8)) I16x16 {
    const w: @Vector(8, i16) = s;
    return @shuffle(i16, w, undefined, [16]i32{ 0, 1, 2, 3, 4, 5, 6, 7, 0, 1, 2, 3, 4, 5, 6, 7 });
}

/// i16 lane lo of `h` in the low half, lane hi in the high half (`halves` layout): one vpshufb.
inline fn pick(comptime isa: Isa, h: I16x16, comptime lo: usize, comptime hi: usize) I16x16 {
    if (comptime isa.simd()) {
        const m = comptime blk: {
            @setEvalBranchQuota(10000);
            var a: [32]u8 = undefined;
            for (0..32) |i| a[i] = @intCast(2 * (if (i < 16) lo else hi) + i % 2);
            break :blk a;
        };
        return @bitCast(@"llvm.x86.avx2.pshuf.b"(@bitCast(h), m));
    }
    const m = comptime blk: {
        @setEvalBranchQuota(10000);
        var a: [16]i32 = undefined;
        for (0..16) |i| a[i] = if (i < 8) lo else 8 + hi;
        break :blk a;
    };
    return @shuffle(i16, h, undefined, m);
}

/// Scale g for all 32 codes of group g (the K-quants with a scale per 32 weights), from
/// `halves` of the block's 8 scales.
pub inline fn scale1(comptime isa: Isa, h: I16x16, comptime g: usize) I16x16 {
    return pick(isa, h, g, g);
}

/// Scale 2g for codes 0..15 of group g, 2g+1 for 16..31 (the K-quants with a scale per 16
/// weights), from `halves` of scales 0..7 (h0) and 8..15 (h1).
pub inline fn scale2(comptime isa: Isa, h0: I16x16, h1: I16x16, comptime g: usize) I16x16 {
    return if (g < 4) pick(isa, h0, 2 * g, 2 * g + 1) else pick(isa, h1, 2 * g - 8, 2 * g - 7);
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
        var s8: [2]@Vector(8, i8) = undefined;
        for (0..2) |h| for (0..8) |i| {
            s8[h][i] = rnd.int(i8);
        };
        const h0 = halves(s8[0]);
        const h1 = halves(s8[1]);
        inline for (.{ 1, 6 }) |g| {
            const sc = scale2(.portable, h0, h1, g);
            try std.testing.expectEqual(sc, scale2(.avx2, h0, h1, g));
            try std.testing.expectEqual(scale1(.portable, h0, g), scale1(.avx2, h0, g));
            try std.testing.expectEqual(@as(i16, s8[g / 4][(2 * g) % 8]), sc[0]);
            try std.testing.expectEqual(@as(i16, s8[g / 4][(2 * g + 1) % 8]), sc[15]);
            try std.testing.expectEqual(dotU(.portable, u, a, sc), dotU(.avx2, u, a, sc));
        }
        var small = u;
        for (0..32) |i| small[i] = u[i] & 63;
        var sw: I16x16 = undefined;
        for (0..16) |i| sw[i] = rnd.int(i16);
        try std.testing.expectEqual(dotS(.portable, w, a), dotS(.avx2, w, a));
        try std.testing.expectEqual(dotU2(.portable, small, a, small, w), dotU2(.avx2, small, a, small, w));
        try std.testing.expectEqual(pairProducts(.portable, sw, h0), pairProducts(.avx2, sw, h0));
        const q = [4]I32x8{ dotS(.portable, w, a), dotU2(.portable, small, a, small, w), dotS(.portable, a, w), pairProducts(.portable, sw, h0) };
        const f = fold4(.portable, &q);
        try std.testing.expectEqual(f, fold4(.avx2, &q));
        inline for (0..4) |i| try std.testing.expectEqual(@reduce(.Add, q[i]), f[i] + f[4 + i]);
        const idx = u & @as(U8x32, @splat(15));
        const table: [16]i8 = .{ -127, -88, -67, -50, -36, -23, -12, 0, 10, 20, 31, 43, 56, 71, 92, 127 };
        try std.testing.expectEqual(lookup16(.portable, table, idx), lookup16(.avx2, table, idx));
        const w_abs: U8x32 = @bitCast(@abs(w));
        try std.testing.expectEqual(dotS(.portable, w, a), dotSAbs(.avx2, w, w_abs, a));
    }
}
