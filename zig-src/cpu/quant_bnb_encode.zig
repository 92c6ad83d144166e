//! The quantizer for AirLLM's compression formats (layouts in quant_bnb.zig): f32/f16/bf16
//! weights → nf4 or q8_block blocks, following bitsandbytes' CPU arithmetic so the codes and
//! absmax match what AirLLM writes.
const std = @import("std");
const DType = @import("../dtype.zig").DType;
const pool = @import("thread_pool.zig");
const bnb = @import("quant_bnb.zig");
const lin_code = bnb.lin_code;
const tensorBytes = bnb.tensorBytes;

/// Decision thresholds between neighbouring NF4 values (bitsandbytes' CPU quantizer bounds):
/// a scaled weight gets the number of thresholds strictly below it.
const nf4_bounds = [15]f32{
    -0.8480963706970215, -0.6106328964233398, -0.4599952697753906,  -0.33967941999435425,
    -0.23460739850997925, -0.13791173696517944, -0.045525018125772476, 0.03979014977812767,
    0.120255246758461,   0.2035212516784668,  0.2920137643814087,   0.3893125355243683,
    0.5016634464263916,  0.6427869200706482,  0.8614784479141235,
};


inline fn loadF32(src_dt: DType, src: usize, i: usize) f32 {
    return switch (src_dt) {
        .f32 => @as([*]const f32, @ptrFromInt(src))[i],
        .f16 => @as([*]const f16, @ptrFromInt(src))[i],
        // bf16 is the top half of an f32: widening is exact.
        .bf16 => @bitCast(@as(u32, @as([*]const u16, @ptrFromInt(src))[i]) << 16),
        else => unreachable,
    };
}

inline fn storeAbsmax(p: [*]u8, v: f32) void {
    const bits: u32 = @bitCast(v);
    inline for (0..4) |j| p[j] = @truncate(bits >> (8 * j));
}

fn nf4Index(x: f32) u8 {
    var q: u8 = 0;
    for (nf4_bounds) |b| q += @intFromBool(b < x);
    return q;
}

/// Largest code ≤ v (0 when none, or v is NaN), then the right neighbour when strictly closer:
/// the nearest code, ties to the lower one. The map is linear, so the first guess is computed
/// and at most a step corrected (f32 rounding of v·127); the 8bit split of bench/compression.ts
/// took 31.7 s with a binary search over the 256 codes, 11.4 s with this.
fn linIndex(v: f32) u8 {
    if (std.math.isNan(v)) return 0;
    var lo: usize = @intFromFloat(std.math.clamp(@floor(v * 127.0 + 128.0), 0, 255));
    while (lo < 255 and lin_code[lo + 1] <= v) lo += 1;
    while (lo > 0 and lin_code[lo] > v) lo -= 1;
    if (lo < 255 and @abs(v - lin_code[lo + 1]) < @abs(v - lin_code[lo])) lo += 1;
    return @intCast(lo);
}

/// Block b of n weights (absmax + codes) at dst + b·blockBytes, following bitsandbytes' CPU
/// arithmetic: nf4 full blocks scale by x·(1/max(absmax, 1e-38)), the short tail by
/// x/max(absmax, 1e-38) (stored clamped); 8-bit divides by the absmax.
fn quantBlock(comptime dt: DType, src_dt: DType, src: usize, n: usize, b: usize, dst: [*]u8) void {
    const B = comptime dt.blockElems();
    const first = b * B;
    const len = @min(B, n - first);
    const out = dst + b * dt.blockBytes();
    var amax: f32 = 0;
    for (0..len) |e| amax = @max(amax, @abs(loadF32(src_dt, src, first + e)));
    switch (dt) {
        .nf4 => {
            const tail = len < B;
            const am = @max(amax, 1e-38);
            const inv = 1.0 / am;
            storeAbsmax(out, if (tail) am else amax);
            var e: usize = 0;
            while (e < len) : (e += 2) {
                const s0 = if (tail) loadF32(src_dt, src, first + e) / am else loadF32(src_dt, src, first + e) * inv;
                // A short odd tail pads with a zero weight (code 7, NF4's exact 0), as bitsandbytes does.
                const s1 = if (e + 1 >= len) 0 else if (tail) loadF32(src_dt, src, first + e + 1) / am else loadF32(src_dt, src, first + e + 1) * inv;
                out[4 + e / 2] = nf4Index(std.math.clamp(s0, -1, 1)) << 4 | nf4Index(std.math.clamp(s1, -1, 1));
            }
        },
        .q8_block => {
            storeAbsmax(out, amax);
            for (0..len) |e| out[4 + e] = linIndex(loadF32(src_dt, src, first + e) / amax);
        },
        else => unreachable,
    }
}

const QuantArgs = struct { dt: DType, src_dt: DType, src: usize, n: usize, dst: [*]u8, bad: *std.atomic.Value(usize) };

fn quantRange(a: *const QuantArgs, lo: usize, hi: usize) void {
    const B = a.dt.blockElems();
    for (lo..hi) |b| {
        for (b * B..@min(a.n, b * B + B)) |i| {
            if (!std.math.isFinite(loadF32(a.src_dt, a.src, i))) {
                _ = a.bad.fetchMin(i, .monotonic);
                return;
            }
        }
        switch (a.dt) {
            inline .nf4, .q8_block => |dt| quantBlock(dt, a.src_dt, a.src, a.n, b, a.dst),
            else => unreachable,
        }
    }
}

/// Quantize n weights of src_dt (f32/f16/bf16) at src into dt at dst (tensorBytes(dt, n) bytes).
/// Returns null, or the index of the first NaN/Inf weight found (dst is then garbage).
pub fn quantize(dt: DType, src_dt: DType, src: usize, dst: [*]u8, n: usize) ?usize {
    var bad = std.atomic.Value(usize).init(std.math.maxInt(usize));
    const blocks = std.math.divCeil(usize, n, dt.blockElems()) catch unreachable;
    pool.forRange(blocks, @max(1, (1 << 14) / dt.blockElems()), 1, &QuantArgs{ .dt = dt, .src_dt = src_dt, .src = src, .n = n, .dst = dst, .bad = &bad }, quantRange);
    const i = bad.load(.monotonic);
    return if (i == std.math.maxInt(usize)) null else i;
}
