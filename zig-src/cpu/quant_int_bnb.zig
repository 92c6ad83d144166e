//! Integer dot products of AirLLM's compression formats (layouts in quant_bnb.zig: blocks of 64
//! weights after an f32 absmax) with activations quantized in blocks of 64 (quant_act.zig,
//! scheme b64), one activation block per weight block. Only for rows of whole blocks
//! (cols % 64 == 0), where no block spans two rows. Both formats become signed int8 codes c
//! with w ≈ absmax·c/127:
//!   q8_block: c = q − 128, exactly its linear map (q − 128)/127: an exact integer dot.
//!   nf4:      c = nf4_i8[nibble] = round(127·nf4_code[nibble]), a 16-entry lookup (vpshufb):
//!             off the stored value by at most absmax/254 per weight. The stored codes and
//!             absmax are unchanged; only the arithmetic is int8.
//! The scheme, which the scalar reference in test/int-dot-reference.ts follows operation for
//! operation, for weight block b against activation block b (codes a, f32 scale d_a), both in
//! the activations' stored order:
//!   sumi[j] = Σ_{k<4} c[4j+k]·a[4j+k] + Σ_{k<4} c[32+4j+k]·a[32+4j+k]   (exact, i32, lanes j < 8)
//!   acc[j]  = acc[j] + (absmax·d_a)·f32(sumi[j])
//!   out     = total(acc) / 127   (total: ((acc0+acc4) + (acc2+acc6)) + ((acc1+acc5) + (acc3+acc7)))
//! Separate multiplies and adds (no FMA), as for the GGUF types. NF4's 32 bytes hold the even
//! weights in their high nibbles and the odd ones in the low nibbles: its activations are
//! stored odds first (quant_act.zig `Order.odds_first`), so its codes are the low nibbles of
//! the 32 bytes then their high nibbles: one load, a shift and a mask, no shuffle.
const DType = @import("../dtype.zig").DType;
const bnb = @import("quant_bnb.zig");
const act = @import("quant_act.zig");
const id = @import("int_dot.zig");

const V8 = @Vector(8, f32);

/// NF4's values as int8 codes over 127: round(127·nf4_code[i]) (no value is a tie).
pub const nf4_i8: [16]i8 = blk: {
    var t: [16]i8 = undefined;
    for (0..16) |i| t[i] = @intFromFloat(@round(127.0 * bnb.nf4_code[i]));
    break :blk t;
};

/// |nf4_i8|: vpmaddubsw's unsigned operand, looked up like the codes (int_dot.zig `dotSAbs`).
const nf4_abs: [16]i8 = blk: {
    var t: [16]i8 = undefined;
    for (0..16) |i| t[i] = @intCast(@abs(nf4_i8[i]));
    break :blk t;
};

/// The order a format's codes unpack in, which its activations are stored in.
pub fn order(comptime dt: DType) act.Order {
    return if (dt == .nf4) .odds_first else .natural;
}

/// A block's 64 codes (in the activations' order) in two vectors of 32, their magnitudes
/// (NF4 only) and the block's absmax.
pub const Unpacked = struct { q: [2]id.I8x32, abs: [2]id.U8x32, s: f32 };

inline fn load32(p: [*]const u8) id.U8x32 {
    return @as(*align(1) const [32]u8, @ptrCast(p)).*;
}

pub inline fn unpack(comptime dt: DType, comptime isa: id.Isa, blk: [*]const u8) Unpacked {
    var u: Unpacked = .{ .q = undefined, .abs = undefined, .s = bnb.absmaxAt(blk, 0) };
    switch (dt) {
        .q8_block => inline for (0..2) |h| {
            u.q[h] = @bitCast(load32(blk + 4 + 32 * h) ^ @as(id.U8x32, @splat(0x80)));
        },
        .nf4 => {
            const bytes = load32(blk + 4);
            const nib = [2]id.U8x32{ bytes & @as(id.U8x32, @splat(0x0f)), bytes >> @splat(4) };
            inline for (0..2) |h| {
                u.q[h] = id.lookup16(isa, nf4_i8, nib[h]);
                u.abs[h] = @bitCast(id.lookup16(isa, nf4_abs, nib[h]));
            }
        },
        else => @compileError("not a bitsandbytes type"),
    }
    return u;
}

/// The block's contribution against the activation block's codes a (two halves) and scale da.
pub inline fn contrib(comptime dt: DType, comptime isa: id.Isa, u: *const Unpacked, a: *const [2]id.I8x32, da: f32) V8 {
    var sumi: id.I32x8 = @splat(0);
    inline for (0..2) |h| sumi += if (dt == .nf4) id.dotSAbs(isa, u.q[h], u.abs[h], a[h]) else id.dotS(isa, u.q[h], a[h]);
    return @as(V8, @splat(u.s * da)) * @as(V8, @floatFromInt(sumi));
}

/// The output from the 8 accumulator lanes: the fixed reduction order above, then / 127.
pub inline fn total(acc: V8) f32 {
    const h: @Vector(4, f32) = @shuffle(f32, acc, undefined, [4]i32{ 0, 1, 2, 3 }) + @shuffle(f32, acc, undefined, [4]i32{ 4, 5, 6, 7 });
    const q: @Vector(2, f32) = @shuffle(f32, h, undefined, [2]i32{ 0, 1 }) + @shuffle(f32, h, undefined, [2]i32{ 2, 3 });
    return (q[0] + q[1]) / 127;
}
