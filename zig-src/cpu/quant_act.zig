//! The matmul input quantized to int8 once per call, llama.cpp's schemes, so GGUF results
//! stay comparable with its own:
//! - blocks of 32 for the legacy types (ggml `quantize_row_q8_0` / `q8_1`, its AVX2 path):
//!   amax = max|x|, d = amax/127 stored as f16, q = round-half-even(x·127/amax); the q8_1
//!   term s = f16(d·Σq) serves the types with a min (q4_1, q5_1).
//! - blocks of 256 with sums of 16 (ggml `quantize_row_q8_K`) for the K-quants: max = the
//!   first x of largest |x|, iscale = -127/max, q = min(127, round-half-even(iscale·x)),
//!   d = 1/iscale, bsums[k] = Σ q over weights 16k .. 16k+15.
//! - blocks of 64 for AirLLM's compression formats (quant_int_bnb.zig), one per weight block:
//!   as blocks of 32 but with d = amax/127 kept in f32, and the codes stored in the order the
//!   weight codes unpack in (`Order.odds_first` for NF4: codes 1, 3, .., 63, then 0, 2, .., 62).
//! Token rows are quantized in parallel; every output row and thread then reads them.
const std = @import("std");
const pool = @import("thread_pool.zig");

pub const Scheme = enum { b32, b64, b256 };
pub const Order = enum { natural, odds_first };

/// Quantized activations of T token rows of `cols` values each. Row t's codes are
/// qs[t·cols ..] (in `order`, b64), its block scales d[t·nb ..]; `s` (b32) holds the q8_1
/// sums per block, `bsums` (b256) the sums of 16. With an `offset` (b32), `offs` holds
/// offset·Σ of each block's codes: what weights stored as unsigned codes minus that offset
/// (q4_0: 8, q5_0: 16) subtract, so they skip the sign handling.
pub const Acts = struct {
    scheme: Scheme,
    cols: usize,
    offset: i32,
    order: Order,
    qs: [*]i8,
    d: [*]f32,
    s: [*]f32,
    bsums: [*]i16,
    offs: [*]i32,

    pub fn blockElems(scheme: Scheme) usize {
        return switch (scheme) {
            .b32 => 32,
            .b64 => 64,
            .b256 => 256,
        };
    }

    /// Bytes of the q8_1 sums (b32) or sums of 16 (b256) of T rows.
    fn sideBytes(scheme: Scheme, T: usize, cols: usize) usize {
        return switch (scheme) {
            .b32 => T * (cols / 32) * 4,
            .b64 => 0,
            .b256 => T * (cols / 16) * 2,
        };
    }

    /// Bytes of scratch for T rows (all arrays 64-byte aligned within it).
    pub fn bytes(scheme: Scheme, T: usize, cols: usize) usize {
        const nb = T * (cols / blockElems(scheme));
        const offs = if (scheme == .b32) nb * 4 else 0;
        return al(T * cols) + al(nb * 4) + al(sideBytes(scheme, T, cols)) + al(offs);
    }

    pub fn init(scheme: Scheme, offset: i32, order: Order, T: usize, cols: usize, mem: [*]align(64) u8) Acts {
        const nb = T * (cols / blockElems(scheme));
        const d_off = al(T * cols);
        const s_off = d_off + al(nb * 4);
        const side = sideBytes(scheme, T, cols);
        return .{
            .scheme = scheme,
            .cols = cols,
            .offset = offset,
            .order = order,
            .qs = @ptrCast(mem),
            .d = @ptrCast(@alignCast(mem + d_off)),
            .s = @ptrCast(@alignCast(mem + s_off)),
            .bsums = @ptrCast(@alignCast(mem + s_off)),
            .offs = @ptrCast(@alignCast(mem + s_off + al(side))),
        };
    }
};

fn al(n: usize) usize {
    return std.mem.alignForward(usize, n, 64);
}

const V8 = @Vector(8, f32);

/// Round half to even for |v| < 2^22 (ggml `nearest_int`, and vcvtps2dq in its default mode):
/// adding 1.5·2^23 leaves no fraction bits, so the f32 addition itself rounds.
inline fn roundEven(v: anytype) @TypeOf(v) {
    const magic: @TypeOf(v) = if (@typeInfo(@TypeOf(v)) == .vector) @splat(12582912.0) else 12582912.0;
    return (v + magic) - magic;
}

fn quantizeRow32(x: [*]const f32, a: *const Acts, t: usize) void {
    const nb = a.cols / 32;
    for (0..nb) |b| {
        const xb = x + 32 * b;
        var v: [4]V8 = undefined;
        inline for (0..4) |i| v[i] = @as(*align(1) const [8]f32, @ptrCast(xb + 8 * i)).*;
        const amax = @reduce(.Max, @max(@max(@abs(v[0]), @abs(v[1])), @max(@abs(v[2]), @abs(v[3]))));
        const d = amax / 127.0;
        const id: f32 = if (amax != 0) 127.0 / amax else 0;
        var sum: i32 = 0;
        const q = a.qs + t * a.cols + 32 * b;
        var r: [4]@Vector(8, i32) = undefined;
        inline for (0..4) |i| {
            r[i] = @intFromFloat(roundEven(v[i] * @as(V8, @splat(id))));
            sum += @reduce(.Add, r[i]);
            @as(*align(1) [8]i8, @ptrCast(q + 8 * i)).* = @as(@Vector(8, i8), @intCast(r[i]));
        }
        if (a.offset != 0) a.offs[t * nb + b] = a.offset * sum;
        a.d[t * nb + b] = @as(f16, @floatCast(d));
        a.s[t * nb + b] = @as(f16, @floatCast(d * @as(f32, @floatFromInt(sum))));
    }
}

/// Codes 1, 3, .., 63 then 0, 2, .., 62 of a block of 64.
const odds_first: [64]i32 = blk: {
    var m: [64]i32 = undefined;
    for (0..32) |i| {
        m[i] = 2 * i + 1;
        m[32 + i] = 2 * i;
    }
    break :blk m;
};

fn quantizeRow64(x: [*]const f32, a: *const Acts, t: usize) void {
    const nb = a.cols / 64;
    for (0..nb) |b| {
        var v: [8]V8 = undefined;
        inline for (0..8) |i| v[i] = @as(*align(1) const [8]f32, @ptrCast(x + 64 * b + 8 * i)).*;
        var m = @abs(v[0]);
        inline for (1..8) |i| m = @max(m, @abs(v[i]));
        const amax = @reduce(.Max, m);
        const id: f32 = if (amax != 0) 127.0 / amax else 0;
        var r: [8]@Vector(8, i32) = undefined;
        inline for (0..8) |i| r[i] = @intFromFloat(roundEven(v[i] * @as(V8, @splat(id))));
        const codes: @Vector(64, i32) = @bitCast(r);
        const stored = if (a.order == .odds_first) @shuffle(i32, codes, undefined, odds_first) else codes;
        @as(*align(1) [64]i8, @ptrCast(a.qs + t * a.cols + 64 * b)).* = @as(@Vector(64, i8), @intCast(stored));
        a.d[t * nb + b] = amax / 127.0;
    }
}

fn quantizeRow256(x: [*]const f32, a: *const Acts, t: usize) void {
    const nb = a.cols / 256;
    for (0..nb) |b| {
        const xb = x + 256 * b;
        const q = a.qs + t * a.cols + 256 * b;
        const bs = a.bsums + t * (a.cols / 16) + 16 * b;
        // The first value of largest magnitude, sign included (ggml's strict `>` scan).
        var amax: f32 = 0;
        var max: f32 = 0;
        for (0..256) |j| {
            const ax = @abs(xb[j]);
            if (ax > amax) {
                amax = ax;
                max = xb[j];
            }
        }
        if (amax == 0) {
            a.d[t * nb + b] = 0;
            @memset(q[0..256], 0);
            @memset(bs[0..16], 0);
            continue;
        }
        const iscale = -127.0 / max;
        for (0..16) |k| {
            var sum: i16 = 0;
            inline for (0..2) |h| {
                const v: V8 = @as(*align(1) const [8]f32, @ptrCast(xb + 16 * k + 8 * h)).*;
                const r: @Vector(8, i32) = @min(@as(@Vector(8, i32), @intFromFloat(roundEven(v * @as(V8, @splat(iscale))))), @as(@Vector(8, i32), @splat(127)));
                sum += @intCast(@reduce(.Add, r));
                @as(*align(1) [8]i8, @ptrCast(q + 16 * k + 8 * h)).* = @as(@Vector(8, i8), @intCast(r));
            }
            bs[k] = sum;
        }
        a.d[t * nb + b] = 1.0 / iscale;
    }
}

const Job = struct { x: [*]const f32, acts: *const Acts };

fn quantizeRows(j: *const Job, lo: usize, hi: usize) void {
    for (lo..hi) |t| {
        const x = j.x + t * j.acts.cols;
        switch (j.acts.scheme) {
            .b32 => quantizeRow32(x, j.acts, t),
            .b64 => quantizeRow64(x, j.acts, t),
            .b256 => quantizeRow256(x, j.acts, t),
        }
    }
}

/// Quantizes x[T, cols] into `a` (cols a whole number of the scheme's blocks).
pub fn quantize(a: *const Acts, x: [*]const f32, T: usize) void {
    pool.forRange(T, @max(1, (1 << 14) / @max(a.cols, 1)), 1, &Job{ .x = x, .acts = a }, quantizeRows);
}
