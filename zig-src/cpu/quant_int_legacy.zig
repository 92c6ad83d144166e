//! Integer dot products of ggml's legacy blocks (32 weights; layouts in quant_legacy.zig) with
//! activations quantized in blocks of 32 (quant_act.zig, scheme b32). The scheme, which the
//! scalar reference in test/int-dot.test.ts follows operation for operation:
//!   sumi[j] = Σ_{k<4} q[4j+k]·a[4j+k]                     (exact, i32, lanes j < 8)
//!   c[j]    = (d_w·d_a)·f32(sumi[j])   (+ m_w·s_a in lane 0 for q4_1 / q5_1)
//!   acc[j]  = acc[j] + c[j]            over the row's blocks in order
//!   out     = ((acc0+acc4) + (acc2+acc6)) + ((acc1+acc5) + (acc3+acc7))
//! Separate multiplies and adds (no FMA), so every f32 step is reproducible anywhere. Codes:
//! q8_0 signed as stored, q4_0 nib − 8 and q5_0 (nib | bit4) − 16 signed, q4_1 / q5_1
//! unsigned with the min term.
const DType = @import("../dtype.zig").DType;
const lg = @import("quant_legacy.zig");
const id = @import("int_dot.zig");

const V8 = @Vector(8, f32);
const halfAt = lg.halfAt;

/// A block's codes (in the activations' order), its f32 scale in every lane and its min.
pub fn Unpacked(comptime dt: DType) type {
    return struct {
        q: if (dt == .q8_0) id.I8x32 else id.U8x32,
        d: V8,
        m: f32,
    };
}

/// The f16 at blk[o] widened in all 8 lanes: vpbroadcastw + vcvtph2ps, no scalar round trip.
inline fn halfV8(blk: [*]const u8, o: usize) V8 {
    const h: f16 = @bitCast(@as(*align(1) const u16, @ptrCast(blk + o)).*);
    return @floatCast(@as(@Vector(8, f16), @splat(h)));
}

/// What q4_0 / q5_0 subtract from their unsigned codes. They are multiplied unsigned (no sign
/// handling) and offset·Σa per quad (quant_act.zig `quads`) is subtracted: the same integers.
pub fn offset(comptime dt: DType) i32 {
    return switch (dt) {
        .q4_0 => 8,
        .q5_0 => 16,
        else => 0,
    };
}

pub fn hasMin(comptime dt: DType) bool {
    return dt == .q4_1 or dt == .q5_1;
}

inline fn load16(p: [*]const u8) @Vector(16, u8) {
    return @as(*align(1) const [16]u8, @ptrCast(p)).*;
}

const dup_mask = blk: {
    var m: [32]i32 = undefined;
    for (0..32) |i| m[i] = i % 16;
    break :blk m;
};

/// Weights i < 16 from the low nibbles of 16 bytes, i ≥ 16 from the high ones: the 16 bytes
/// in both halves (vbroadcasti128), the upper half shifted by 4 (vpsrlvq), one mask.
inline fn nibbles(p: [*]const u8) id.U8x32 {
    const b = load16(p);
    const both: @Vector(4, u64) = @bitCast(@shuffle(u8, b, undefined, dup_mask));
    const shifted: id.U8x32 = @bitCast(both >> @Vector(4, u6){ 0, 0, 4, 4 });
    return shifted & @as(id.U8x32, @splat(0x0f));
}

const spread_mask = blk: {
    var m: [32]i32 = undefined;
    for (0..32) |i| m[i] = i / 8;
    break :blk m;
};
const bit: id.U8x32 = blk: {
    var m: [32]u8 = undefined;
    for (0..32) |i| m[i] = 1 << (i % 8);
    break :blk m;
};

/// Bit i of the little-endian u32 at p, moved to bit 4 of byte i.
inline fn fifthBits(p: [*]const u8) id.U8x32 {
    const qh: @Vector(4, u8) = @as(*align(1) const [4]u8, @ptrCast(p)).*;
    const spread = @shuffle(u8, qh, undefined, spread_mask);
    const set = (spread & bit) != @as(id.U8x32, @splat(0));
    return @select(u8, set, @as(id.U8x32, @splat(0x10)), @as(id.U8x32, @splat(0)));
}

pub inline fn unpack(comptime dt: DType, blk: [*]const u8) Unpacked(dt) {
    return switch (dt) {
        .q8_0 => .{ .q = @as(*align(1) const [32]i8, @ptrCast(blk + 2)).*, .d = halfV8(blk, 0), .m = 0 },
        .q4_0 => .{ .q = nibbles(blk + 2), .d = halfV8(blk, 0), .m = 0 },
        .q4_1 => .{ .q = nibbles(blk + 4), .d = halfV8(blk, 0), .m = halfAt(blk, 2) },
        .q5_0 => .{ .q = nibbles(blk + 6) | fifthBits(blk + 2), .d = halfV8(blk, 0), .m = 0 },
        .q5_1 => .{ .q = nibbles(blk + 8) | fifthBits(blk + 4), .d = halfV8(blk, 0), .m = halfAt(blk, 2) },
        else => @compileError("not a legacy quant type"),
    };
}

/// The block's contribution c (see the scheme above) against activation codes a, their
/// offset quad sums `quad` (q4_0, q5_0), scale da and q8_1 sum sa.
pub inline fn contrib(comptime dt: DType, comptime isa: id.Isa, u: *const Unpacked(dt), a: id.I8x32, quad: id.I32x8, da: V8, sa: f32) V8 {
    const sumi = if (comptime dt == .q8_0) id.dotS(isa, u.q, a) else if (comptime offset(dt) != 0) id.dotU(isa, u.q, a, @splat(1)) - quad else id.dotU(isa, u.q, a, @splat(1));
    var c = (u.d * da) * @as(V8, @floatFromInt(sumi));
    if (comptime hasMin(dt)) c += V8{ u.m * sa, 0, 0, 0, 0, 0, 0, 0 };
    return c;
}

/// The fixed reduction order of the 8 accumulator lanes.
pub inline fn total(acc: V8) f32 {
    const h: @Vector(4, f32) = @shuffle(f32, acc, undefined, [4]i32{ 0, 1, 2, 3 }) + @shuffle(f32, acc, undefined, [4]i32{ 4, 5, 6, 7 });
    const q: @Vector(2, f32) = @shuffle(f32, h, undefined, [2]i32{ 0, 1 }) + @shuffle(f32, h, undefined, [2]i32{ 2, 3 });
    return q[0] + q[1];
}
