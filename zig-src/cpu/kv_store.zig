//! Stores f32 key and value rows into the paged KV cache (kv_pages.zig), converted to the cache's
//! element type with round-to-nearest-even: f16 by the hardware conversion (vcvtps2ph, which
//! keeps NaN a NaN and sends overflow to ±inf), bf16 by rounding the top half of the f32 bits.
const std = @import("std");
const DType = @import("../dtype.zig").DType;
const pool = @import("thread_pool.zig");
const cv = @import("convert.zig");
const pages = @import("kv_pages.zig");
const V = cv.V;
const lanes = cv.lanes;
const U32v = @Vector(lanes, u32);

/// bf16 of each lane, rounded to nearest even. A NaN keeps its sign and top payload bits and gets
/// the quiet bit, so one whose payload sits only in the low half stays a NaN instead of
/// rounding into ±inf.
inline fn bf16x8(x: V) @Vector(lanes, u16) {
    const b: U32v = @bitCast(x);
    const rounded = (b + @as(U32v, @splat(0x7fff)) + ((b >> @splat(16)) & @as(U32v, @splat(1)))) >> @splat(16);
    const quiet = (b >> @splat(16)) | @as(U32v, @splat(0x40));
    return @truncate(@select(u32, x != x, quiet, rounded));
}

inline fn bf16x1(x: f32) u16 {
    const v: V = @splat(x);
    return bf16x8(v)[0];
}

/// dst[0..n] = src[0..n] in dt.
fn convertRow(comptime dt: DType, dst: [*]cv.Elem(dt), src: [*]const f32, n: usize) void {
    switch (dt) {
        .f32 => @memcpy(dst[0..n], src[0..n]),
        .f16, .bf16 => {
            var i: usize = 0;
            while (i + lanes <= n) : (i += lanes) {
                const x = cv.loadF32(src, i);
                const y: @Vector(lanes, cv.Elem(dt)) = if (dt == .f16) @floatCast(x) else bf16x8(x);
                @as(*align(1) [lanes]cv.Elem(dt), @ptrCast(dst + i)).* = y;
            }
            while (i < n) : (i += 1) dst[i] = if (dt == .f16) @floatCast(src[i]) else bf16x1(src[i]);
        },
        else => unreachable,
    }
}

const Args = struct { kv: pages.Paged, k: [*]const f32, v: [*]const f32, pos0: usize, width: usize };

fn storeRows(a: *const Args, lo: usize, hi: usize) void {
    switch (a.kv.dtype) {
        inline .f32, .f16, .bf16 => |dt| {
            const E = cv.Elem(dt);
            var rows = pages.Cursor.init(a.kv, a.width * @sizeOf(E), a.pos0 + lo);
            for (lo..hi) |t| {
                const off = rows.next();
                convertRow(dt, @ptrFromInt(a.kv.k + off), a.k + t * a.width, a.width);
                convertRow(dt, @ptrFromInt(a.kv.v + off), a.v + t * a.width, a.width);
            }
        },
        else => unreachable, // `store` refuses other types
    }
}

pub const Error = error{ BadShape, BadIndex };

/// Rows t < T of k and v (f32, `width` floats each) become positions pos0 + t of the cache.
pub fn store(kv: pages.Paged, k: [*]const f32, v: [*]const f32, pos0: usize, T: usize, width: usize) Error!void {
    if (kv.page_size == 0 or kv.dtype.isQuant()) return error.BadShape;
    if (T == 0 or width == 0) return;
    if (!pages.pagesValid(kv, pos0, pos0 + T)) return error.BadIndex;
    // Memory bound: threads pay from a few hundred KB of rows on.
    pool.forRange(T, @max(1, (1 << 16) / width), 1, &Args{ .kv = kv, .k = k, .v = v, .pos0 = pos0, .width = width }, storeRows);
}

test "bf16 rounds to nearest even and keeps NaN" {
    const cases = [_][2]u32{
        .{ 0x3f808000, 0x3f80 }, // tie, even stays
        .{ 0x3f818000, 0x3f82 }, // tie, odd rounds up
        .{ 0x3f808001, 0x3f81 }, // above the tie
        .{ 0x7f7fffff, 0x7f80 }, // largest finite rounds to inf
        .{ 0x7f800001, 0x7fc0 }, // NaN with a low payload only
        .{ 0xffc00000, 0xffc0 },
    };
    for (cases) |c| try std.testing.expectEqual(@as(u16, @intCast(c[1])), bf16x1(@bitCast(c[0])));
}
