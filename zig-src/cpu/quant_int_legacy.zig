//! Integer dot products of ggml's legacy blocks (32 weights; layouts in quant_legacy.zig) with
//! activations quantized in blocks of 32 (quant_act.zig, scheme b32), eight weight rows at a
//! time. The scheme, which the scalar reference in test/int-dot-reference.ts follows operation
//! for operation:
//!   sumi = Σ_{i<32} q[i]·a[i]                         (exact, i32)
//!   c    = (d_w·d_a)·f32(sumi)   (+ m_w·s_a for q4_1 / q5_1)
//!   acc  = acc + c    over the row's blocks in order; out = acc
//! Separate multiplies and adds (no FMA), so every f32 step is reproducible anywhere. Codes:
//! q8_0 signed as stored, q4_0 nib − 8 and q5_0 (nib | bit4) − 16 signed, q4_1 / q5_1
//! unsigned with the min term.
//!
//! Why eight rows: a block's integer work is two vpmaddubsw and a vpmaddwd, but its f32 work
//! (convert, scale, accumulate) is as large again when each row does it alone. Rows go in pairs,
//! row i's 16 code bytes in the low 128-bit half of a vector and row i+1's in the high half, so
//! one vpmaddubsw against activations broadcast to both halves serves two rows; four pairs'
//! sums are then folded (vphaddd, int_dot.zig `fold4`) into one vector holding the eight rows'
//! block sums, and one convert, two multiplies and one add finish the block for all eight (lane
//! order `lane_rows`). The result per (row, block) is the same exact integer whatever the order.
const DType = @import("../dtype.zig").DType;
const id = @import("int_dot.zig");
const act = @import("quant_act.zig");

const V8 = @Vector(8, f32);
const I32x8 = id.I32x8;
const U8x16 = @Vector(16, u8);

/// Rows per group, and the row each lane of a group's result vector holds.
pub const rows = 8;
pub const lane_rows = [rows]usize{ 0, 2, 4, 6, 1, 3, 5, 7 };

/// What q4_0 / q5_0 subtract from their unsigned codes. They are multiplied unsigned (no sign
/// handling) and offset·Σa of the block (quant_act.zig `offs`) is subtracted: the same integers.
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

/// Byte offset of the 16 (nibbles) or 32 (q8_0) code bytes in a block.
fn codeOffset(comptime dt: DType) usize {
    return switch (dt) {
        .q8_0, .q4_0 => 2,
        .q4_1 => 4,
        .q5_0 => 6,
        .q5_1 => 8,
        else => @compileError("not a legacy quant type"),
    };
}

/// Byte offset of q5's 32 fifth bits.
fn highBitsOffset(comptime dt: DType) usize {
    return if (dt == .q5_0) 2 else 4;
}

/// Two rows' codes of one block: weights 0..15 (lo) and 16..31 (hi), row i in the low 128-bit
/// half and row i+1 in the high one.
pub fn Pair(comptime dt: DType) type {
    const C = if (dt == .q8_0) id.I8x32 else id.U8x32;
    return struct { lo: C, hi: C };
}

inline fn load16(p: [*]const u8) U8x16 {
    return @as(*align(1) const [16]u8, @ptrCast(p)).*;
}

const join_mask = blk: {
    var m: [32]i32 = undefined;
    for (0..16) |i| {
        m[i] = i;
        m[16 + i] = ~@as(i32, i);
    }
    break :blk m;
};

/// a in the low half, b in the high one (vinserti128).
inline fn join(a: U8x16, b: U8x16) id.U8x32 {
    return @shuffle(u8, a, b, join_mask);
}

const bit: id.U8x32 = blk: {
    var m: [32]u8 = undefined;
    for (0..32) |i| m[i] = 1 << (i % 8);
    break :blk m;
};

/// Byte k of each half: 0x10 where bit k (lo) or bit 16 + k (hi) of that row's u32 is set.
inline fn fifthBits(bi: [*]const u8, bj: [*]const u8, comptime high: bool) id.U8x32 {
    const src: @Vector(8, u8) = @as(*align(1) const [4]u8, @ptrCast(bi)).* ++ @as(*align(1) const [4]u8, @ptrCast(bj)).*;
    const m = comptime blk: {
        var a: [32]i32 = undefined;
        const base: i32 = if (high) 2 else 0;
        for (0..32) |i| a[i] = base + (if (i < 16) 0 else 4) + @as(i32, @intCast((i % 16) / 8));
        break :blk a;
    };
    const spread = @shuffle(u8, src, undefined, m);
    return @select(u8, (spread & bit) != @as(id.U8x32, @splat(0)), @as(id.U8x32, @splat(0x10)), @as(id.U8x32, @splat(0)));
}

/// The codes of block pointers bi (row i) and bj (row i+1).
pub inline fn pair(comptime dt: DType, bi: [*]const u8, bj: [*]const u8) Pair(dt) {
    const qs = codeOffset(dt);
    if (dt == .q8_0) return .{ .lo = @bitCast(join(load16(bi + qs), load16(bj + qs))), .hi = @bitCast(join(load16(bi + qs + 16), load16(bj + qs + 16))) };
    const v = join(load16(bi + qs), load16(bj + qs));
    var p: Pair(dt) = .{ .lo = v & @as(id.U8x32, @splat(0x0f)), .hi = v >> @splat(4) };
    if (dt == .q5_0 or dt == .q5_1) {
        const hb = highBitsOffset(dt);
        p.lo |= fifthBits(bi + hb, bj + hb, false);
        p.hi |= fifthBits(bi + hb, bj + hb, true);
    }
    return p;
}

/// A token's activation codes of one block, weights 0..15 and 16..31 each in both halves.
pub const Acts32 = struct { lo: id.I8x32, hi: id.I8x32 };

pub inline fn acts32(q: [*]const i8) Acts32 {
    const lo: @Vector(16, i8) = @as(*align(1) const [16]i8, @ptrCast(q)).*;
    const hi: @Vector(16, i8) = @as(*align(1) const [16]i8, @ptrCast(q + 16)).*;
    return .{ .lo = @bitCast(join(@bitCast(lo), @bitCast(lo))), .hi = @bitCast(join(@bitCast(hi), @bitCast(hi))) };
}

/// Lanes 0..3: row i's quad sums, 4..7: row i+1's (each still to be added up).
inline fn pairSum(comptime dt: DType, comptime isa: id.Isa, p: *const Pair(dt), a: Acts32) I32x8 {
    if (dt == .q8_0) return id.dotS(isa, p.lo, a.lo) + id.dotS(isa, p.hi, a.hi);
    return id.dotU2(isa, p.lo, a.lo, p.hi, a.hi);
}

/// The eight rows' codes, scales and mins of one block, unpacked once for many tokens.
pub fn Group(comptime dt: DType) type {
    return struct {
        p: [4]Pair(dt),
        d: V8,
        m: V8,
    };
}

/// The f16 at byte o of each row's block, in lane order.
inline fn halves(blk: *const [rows][*]const u8, o: usize) V8 {
    var h: @Vector(rows, f16) = undefined;
    inline for (0..rows) |l| h[l] = @bitCast(@as(*align(1) const u16, @ptrCast(blk[lane_rows[l]] + o)).*);
    return @floatCast(h);
}

/// Unpacks block pointers blk[0..8] (row order).
pub inline fn group(comptime dt: DType, blk: *const [rows][*]const u8) Group(dt) {
    var g: Group(dt) = undefined;
    inline for (0..4) |i| g.p[i] = pair(dt, blk[2 * i], blk[2 * i + 1]);
    g.d = halves(blk, 0);
    g.m = if (comptime hasMin(dt)) halves(blk, 2) else undefined;
    return g;
}

/// The block's contribution c (see the scheme above) for the eight rows, against block b of
/// token t's activations.
pub inline fn contrib(comptime dt: DType, comptime isa: id.Isa, g: *const Group(dt), a: *const act.Acts, t: usize, b: usize) V8 {
    const nb = a.cols / 32;
    const q = acts32(a.qs + t * a.cols + 32 * b);
    var m: [4]I32x8 = undefined;
    inline for (0..4) |i| m[i] = pairSum(dt, isa, &g.p[i], q);
    // Pair i's lanes 0..3 are row 2i's quads, 4..7 row 2i+1's: the fold leaves row 2i in lane i
    // and row 2i+1 in lane 4 + i (`lane_rows`).
    var sumi = id.fold4(isa, &m);
    if (comptime offset(dt) != 0) sumi -= @as(I32x8, @splat(a.offs[t * nb + b]));
    var c = (g.d * @as(V8, @splat(a.d[t * nb + b]))) * @as(V8, @floatFromInt(sumi));
    if (comptime hasMin(dt)) c = c + g.m * @as(V8, @splat(a.s[t * nb + b]));
    return c;
}
