//! Reading f32 / f16 / bf16 elements as f32 vectors. Every op that takes a weight goes through
//! these so the conversion rules live in one place: f16 widens exactly (vcvtph2ps with F16C),
//! bf16 is the top half of an f32 (bits << 16), both exact.
const std = @import("std");
const DType = @import("../dtype.zig").DType;

pub const lanes = 8;
pub const V = @Vector(lanes, f32);

pub fn Elem(comptime dt: DType) type {
    return switch (dt) {
        .f32 => f32,
        .f16 => f16,
        .bf16 => u16,
        else => @compileError("quantized weights are decoded in quant_ops.zig"),
    };
}

/// Eight elements starting at p[i], widened to f32. p needs only element alignment.
pub inline fn load8(comptime dt: DType, p: [*]const Elem(dt), i: usize) V {
    const raw: @Vector(lanes, Elem(dt)) = @as(*align(1) const [lanes]Elem(dt), @ptrCast(p + i)).*;
    return switch (dt) {
        .f32 => raw,
        .f16 => @floatCast(raw),
        .bf16 => @bitCast(@as(@Vector(lanes, u32), raw) << @splat(16)),
        else => unreachable, // Elem(dt) already refused quantized types
    };
}

pub inline fn load1(comptime dt: DType, p: [*]const Elem(dt), i: usize) f32 {
    return switch (dt) {
        .f32 => p[i],
        .f16 => @floatCast(p[i]),
        .bf16 => @bitCast(@as(u32, p[i]) << 16),
        else => unreachable,
    };
}

pub inline fn loadF32(p: [*]const f32, i: usize) V {
    return @as(*align(1) const [lanes]f32, @ptrCast(p + i)).*;
}

pub inline fn storeF32(p: [*]f32, i: usize, v: V) void {
    @as(*align(1) [lanes]f32, @ptrCast(p + i)).* = v;
}

/// Pointer to typed elements at a raw address.
pub inline fn at(comptime dt: DType, addr: usize) [*]const Elem(dt) {
    return @ptrFromInt(addr);
}

/// dst[i] = f32(src[i]) for i < n.
pub fn toF32(comptime dt: DType, dst: [*]f32, src: [*]const Elem(dt), n: usize) void {
    var i: usize = 0;
    while (i + lanes <= n) : (i += lanes) storeF32(dst, i, load8(dt, src, i));
    while (i < n) : (i += 1) dst[i] = load1(dt, src, i);
}

test "f16 and bf16 widen exactly" {
    const h = [_]f16{ 1.0, -2.5, 65504.0, 6.1035156e-05, 5.9604645e-08, -0.0, 0.333251953125, 1024.5, 3.0 };
    var out: [h.len]f32 = undefined;
    toF32(.f16, &out, &h, h.len);
    for (h, out) |a, b| try std.testing.expectEqual(@as(f32, @floatCast(a)), b);

    const f = [_]f32{ 1.0, -3.140625, 1.0e30, -1.0e-30, 0.0, 65536.0, 0.5, 7.0, -9.0 };
    var b16: [f.len]u16 = undefined;
    for (f, &b16) |x, *y| y.* = @intCast(@as(u32, @bitCast(x)) >> 16);
    toF32(.bf16, &out, &b16, f.len);
    for (f, out) |x, y| try std.testing.expectEqual(@as(f32, @bitCast(@as(u32, @bitCast(x)) & 0xffff0000)), y);
}
