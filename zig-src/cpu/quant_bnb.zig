//! AirLLM's compression formats — bitsandbytes' layouts, so a split matches what AirLLM writes:
//!   nf4:      4-bit NormalFloat, blocks of 64 weights: f32 absmax, then 32 bytes of codes into
//!             the 16-value NF4 table; weight 2k is the HIGH nibble of byte k, 2k+1 the low one
//!             (bitsandbytes' kQuantizeBlockwise packing). w = nf4_code[nib]·absmax.
//!   q8_block: blockwise 8-bit, blocks of 2048 weights: f32 absmax, then 2048 u8 codes into
//!             bitsandbytes' signed dynamic map (create_dynamic_map(signed=True), 256 values,
//!             code[0] = -1 as its CPU quantizer sets it). w = dyn_code[q]·absmax. The dynamic
//!             map, not linear int8: it is what AirLLM's quantize_blockwise stores, and its
//!             log-spaced codes keep small weights far more precisely than linear steps.
//! Blocks run over the flattened row-major tensor exactly like bitsandbytes' (a block may span
//! rows; the last block may be short: absmax + only its codes), so any shape compresses and the
//! blocks hold the same weights as AirLLM's. Block b starts at byte b·blockBytes.
//!
//! Decoding is `code·absmax` in f32, bit-exact to bitsandbytes' dequantize. The fused matmul
//! multiplies codes by x and scales each block's partial sum once: within f32 rounding of
//! dequantize-then-multiply. `weightAt`/`codeValue` take any indexable byte pointer, so the CUDA
//! kernels (zig-src/cuda/quant_bnb.zig) decode with this same code.
const std = @import("std");
const DType = @import("../dtype.zig").DType;
const pool = @import("thread_pool.zig");

const V8 = @Vector(8, f32);

/// bitsandbytes' NF4 values (functional.py get_4bit_type("nf4")).
pub const nf4_code = [16]f32{
    -1.0,                 -0.6961928009986877, -0.5250730514526367,  -0.39491748809814453,
    -0.28444138169288635, -0.18477343022823334, -0.09105003625154495, 0.0,
    0.07958029955625534,  0.16093020141124725, 0.24611230194568634,  0.33791524171829224,
    0.44070982933044434,  0.5626170039176941,  0.7229568362236023,   1.0,
};

const dyn_bits = [256]u32{
    0xbf800000, 0xbf7a999a, 0xbf770000, 0xbf736666, 0xbf6fcccd, 0xbf6c3333, 0xbf68999a, 0xbf650000,
    0xbf616666, 0xbf5dcccd, 0xbf5a3333, 0xbf56999a, 0xbf530000, 0xbf4f6666, 0xbf4bcccd, 0xbf483333,
    0xbf44999a, 0xbf410000, 0xbf3d6666, 0xbf39cccd, 0xbf363334, 0xbf32999a, 0xbf2f0000, 0xbf2b6666,
    0xbf27cccd, 0xbf243334, 0xbf20999a, 0xbf1d0000, 0xbf196666, 0xbf15cccd, 0xbf123334, 0xbf0e999a,
    0xbf0b0000, 0xbf076666, 0xbf03cccc, 0xbf003333, 0xbef93332, 0xbef20000, 0xbeeacccc, 0xbee3999a,
    0xbedc6666, 0xbed53333, 0xbece0000, 0xbec6cccc, 0xbebf999a, 0xbeb86666, 0xbeb13333, 0xbeaa0000,
    0xbea2cccc, 0xbe9b999a, 0xbe946666, 0xbe8d3334, 0xbe860000, 0xbe7d9999, 0xbe6f3333, 0xbe60cccd,
    0xbe526666, 0xbe440000, 0xbe35999a, 0xbe273333, 0xbe18cccd, 0xbe0a6666, 0xbdf80000, 0xbddb3334,
    0xbdc9eb85, 0xbdc428f7, 0xbdbe6667, 0xbdb8a3d7, 0xbdb2e148, 0xbdad1eb8, 0xbda75c2a, 0xbda1999a,
    0xbd9bd70a, 0xbd96147b, 0xbd9051eb, 0xbd8a8f5d, 0xbd84cccd, 0xbd7e147b, 0xbd728f5d, 0xbd670a3d,
    0xbd5b851f, 0xbd500000, 0xbd447ae1, 0xbd38f5c3, 0xbd2d70a3, 0xbd21eb85, 0xbd166667, 0xbd0ae148,
    0xbcfeb852, 0xbce7ae15, 0xbcd0a3d7, 0xbcb9999a, 0xbca28f5d, 0xbc8b851f, 0xbc68f5c3, 0xbc3ae148,
    0xbc1f3b64, 0xbc160418, 0xbc0ccccd, 0xbc039581, 0xbbf4bc6a, 0xbbe24dd3, 0xbbcfdf3b, 0xbbbd70a4,
    0xbbab020d, 0xbb989374, 0xbb8624dd, 0xbb676c8a, 0xbb428f5c, 0xbb1db22d, 0xbaf1a9fc, 0xbaa7ef9d,
    0xba7765ff, 0xba59e83e, 0xba3c6a80, 0xba1eecc1, 0xba016f01, 0xb9c7e283, 0xb98ce705, 0xb923d70b,
    0xb8ba1f4b, 0xb88aefb3, 0xb8378034, 0xb7b24206, 0xb70205ff, 0xb65a1a94, 0xb513a3b7, 0x00000000,
    0x3513a3b7, 0x365a1a94, 0x370205ff, 0x37b24206, 0x38378034, 0x388aefb3, 0x38ba1f4b, 0x3923d70b,
    0x398ce705, 0x39c7e283, 0x3a016f01, 0x3a1eecc1, 0x3a3c6a80, 0x3a59e83e, 0x3a7765ff, 0x3aa7ef9d,
    0x3af1a9fc, 0x3b1db22d, 0x3b428f5c, 0x3b676c8a, 0x3b8624dd, 0x3b989374, 0x3bab020d, 0x3bbd70a4,
    0x3bcfdf3b, 0x3be24dd3, 0x3bf4bc6a, 0x3c039581, 0x3c0ccccd, 0x3c160418, 0x3c1f3b64, 0x3c3ae148,
    0x3c68f5c3, 0x3c8b851f, 0x3ca28f5d, 0x3cb9999a, 0x3cd0a3d7, 0x3ce7ae15, 0x3cfeb852, 0x3d0ae148,
    0x3d166667, 0x3d21eb85, 0x3d2d70a3, 0x3d38f5c3, 0x3d447ae1, 0x3d500000, 0x3d5b851f, 0x3d670a3d,
    0x3d728f5d, 0x3d7e147b, 0x3d84cccd, 0x3d8a8f5d, 0x3d9051eb, 0x3d96147b, 0x3d9bd70a, 0x3da1999a,
    0x3da75c2a, 0x3dad1eb8, 0x3db2e148, 0x3db8a3d7, 0x3dbe6667, 0x3dc428f7, 0x3dc9eb85, 0x3ddb3334,
    0x3df80000, 0x3e0a6666, 0x3e18cccd, 0x3e273333, 0x3e35999a, 0x3e440000, 0x3e526666, 0x3e60cccd,
    0x3e6f3333, 0x3e7d9999, 0x3e860000, 0x3e8d3334, 0x3e946666, 0x3e9b999a, 0x3ea2cccc, 0x3eaa0000,
    0x3eb13333, 0x3eb86666, 0x3ebf999a, 0x3ec6cccc, 0x3ece0000, 0x3ed53333, 0x3edc6666, 0x3ee3999a,
    0x3eeacccc, 0x3ef20000, 0x3ef93332, 0x3f003333, 0x3f03cccc, 0x3f076666, 0x3f0b0000, 0x3f0e999a,
    0x3f123334, 0x3f15cccd, 0x3f196666, 0x3f1d0000, 0x3f20999a, 0x3f243334, 0x3f27cccd, 0x3f2b6666,
    0x3f2f0000, 0x3f32999a, 0x3f363334, 0x3f39cccd, 0x3f3d6666, 0x3f410000, 0x3f44999a, 0x3f483333,
    0x3f4bcccd, 0x3f4f6666, 0x3f530000, 0x3f56999a, 0x3f5a3333, 0x3f5dcccd, 0x3f616666, 0x3f650000,
    0x3f68999a, 0x3f6c3333, 0x3f6fcccd, 0x3f736666, 0x3f770000, 0x3f7a999a, 0x3f7e3333, 0x3f800000,
};
/// bitsandbytes' signed dynamic 8-bit map, as f32 bit patterns (exact).
pub const dyn_code: [256]f32 = @bitCast(dyn_bits);

/// The f32 absmax stored little-endian at blk[o] (read bytewise: blocks are only 4-byte aligned
/// relative to the tensor, and safetensors puts U8 tensors at any offset).
pub inline fn absmaxAt(p: anytype, o: usize) f32 {
    const bits = @as(u32, p[o]) | @as(u32, p[o + 1]) << 8 | @as(u32, p[o + 2]) << 16 | @as(u32, p[o + 3]) << 24;
    return @bitCast(bits);
}

/// The table value of weight `o` of a block whose codes start at p[codes].
pub inline fn codeValue(comptime dt: DType, p: anytype, codes: usize, o: usize) f32 {
    return switch (dt) {
        .nf4 => blk: {
            const byte = p[codes + o / 2];
            break :blk nf4_code[if (o % 2 == 0) byte >> 4 else byte & 15];
        },
        .q8_block => dyn_code[p[codes + o]],
        else => @compileError("not a bitsandbytes type"),
    };
}

/// Weight i (flat row-major index) of the tensor at p.
pub inline fn weightAt(comptime dt: DType, p: anytype, i: usize) f32 {
    const base = i / dt.blockElems() * dt.blockBytes();
    return codeValue(dt, p, base + 4, i % dt.blockElems()) * absmaxAt(p, base);
}

/// Bytes of a tensor of n weights (full blocks, plus a short last block).
pub fn tensorBytes(dt: DType, n: usize) usize {
    const B = dt.blockElems();
    const rem = n % B;
    const tail = if (rem == 0) 0 else 4 + (if (dt == .nf4) (rem + 1) / 2 else rem);
    return n / B * dt.blockBytes() + tail;
}

inline fn bytePtr(addr: usize) [*]const u8 {
    return @ptrFromInt(addr);
}

// ---- 8-weight decoders (AVX2: vpermps / vgatherdps; portable fallback elsewhere) ----

const builtin = @import("builtin");
const I8 = @Vector(8, i32);
const U8v = @Vector(8, u32);
const has_avx2 = builtin.cpu.arch == .x86_64 and std.Target.x86.featureSetHas(builtin.cpu.features, .avx2);

extern fn @"llvm.x86.avx2.permps"(V8, I8) V8;

const nf4_lo: V8 = nf4_code[0..8].*;
const nf4_hi: V8 = nf4_code[8..16].*;

/// NF4 table values of the 8 weights whose codes are the 4 bytes at p (natural weight order:
/// byte k holds weight 2k high, 2k+1 low). The 4 bytes are broadcast to 8 lanes and each lane
/// shifts its nibble into place: bits 0-2 index vpermps (it ignores the rest) on both table
/// halves, bit 3 (shifted to the sign bit) picks the half.
inline fn nf4x8(p: [*]const u8) V8 {
    const w = std.mem.readInt(u32, p[0..4], .little);
    if (comptime !has_avx2) {
        var v: V8 = undefined;
        inline for (0..4) |k| {
            const byte: u8 = @truncate(w >> (8 * k));
            v[2 * k] = nf4_code[byte >> 4];
            v[2 * k + 1] = nf4_code[byte & 15];
        }
        return v;
    }
    const b: U8v = @splat(w);
    const idx: I8 = @bitCast(b >> @Vector(8, u5){ 4, 0, 12, 8, 20, 16, 28, 24 });
    const sel: I8 = @bitCast(b << @Vector(8, u5){ 24, 28, 16, 20, 8, 12, 0, 4 });
    const lo = @"llvm.x86.avx2.permps"(nf4_lo, idx);
    const hi = @"llvm.x86.avx2.permps"(nf4_hi, idx);
    return @select(f32, sel < @as(I8, @splat(0)), hi, lo);
}

// ---- NF4 decode matvec: 32 weights per step via byte-plane vpshufb (AVX2) ----
const U8x32 = @Vector(32, u8);
extern fn @"llvm.x86.avx2.pshuf.b"(U8x32, U8x32) U8x32;

/// Byte j of each NF4 f32 value, as a 16-byte vpshufb table in both 128-bit lanes.
const nf4_planes: [4]U8x32 = blk: {
    const bits: [32]u32 = @as([16]u32, @bitCast(nf4_code)) ** 2;
    var t: [4]U8x32 = undefined;
    for (0..4) |j| t[j] = @truncate(@as(@Vector(32, u32), bits) >> @splat(8 * j));
    break :blk t;
};
/// @shuffle mask of vpunpck{l,h}{bw,wd} on n-element 256-bit vectors (per 128-bit lane).
fn unpackMask(comptime n: usize, comptime hi: bool) @Vector(n, i32) {
    var m: [n]i32 = undefined;
    for (0..n) |i| {
        const s: i32 = @intCast(i / (n / 2) * (n / 2) + (if (hi) n / 4 else 0) + i % (n / 2) / 2);
        m[i] = if (i % 2 == 0) s else ~s;
    }
    return m;
}
const cat16: @Vector(32, i32) = std.simd.iota(i32, 32) & @as(@Vector(32, i32), @splat(15));
const lane0: @Vector(32, bool) = std.simd.iota(u8, 32) < @as(U8x32, @splat(16));
/// NF4 table values of the 32 weights whose codes are the 16 bytes at p, as 4 vectors of 8 in
/// the order [0,2,4,6,1,3,5,7] within each group of 8 (x is permuted to match: `perm8`). Exact:
/// the f32 table values are reassembled bytewise (unpack bytes→words→dwords) from 4 vpshufb
/// lookups: lane 0 of the index holds the high nibbles (even weights), lane 1 the low ones.
inline fn nf4x32(p: [*]const u8) [4]V8 {
    const c: @Vector(16, u8) = p[0..16].*;
    const cc: U8x32 = @shuffle(u8, c, undefined, cat16);
    const idx = @select(u8, lane0, cc >> @splat(4), cc & @as(U8x32, @splat(15)));
    var b: [4]U8x32 = undefined;
    inline for (0..4) |j| b[j] = @"llvm.x86.avx2.pshuf.b"(nf4_planes[j], idx);
    var wd: [4]@Vector(16, u16) = undefined; // bytes 0-1 lo/hi half, bytes 2-3 lo/hi half
    inline for (0..4) |i| wd[i] = @bitCast(@shuffle(u8, b[i & 2], b[(i & 2) + 1], unpackMask(32, i % 2 == 1)));
    var f: [4]V8 = undefined;
    inline for (0..4) |i| f[i] = @bitCast(@shuffle(u16, wd[i / 2], wd[2 + i / 2], unpackMask(16, i % 2 == 1)));
    return f;
}
/// dst[0..n] = x[0..n] with each group of 8 in nf4x32's lane order (n a multiple of 8).
fn perm8(x: [*]const f32, dst: [*]f32, n: usize) void {
    var j: usize = 0;
    while (j < n) : (j += 8) storeV8(dst + j, @shuffle(f32, loadV8(x + j), undefined, @Vector(8, i32){ 0, 2, 4, 6, 1, 3, 5, 7 }));
}
/// Σ over nblk whole NF4 blocks from block blk0 of codes·xp (xp permuted by perm8), each
/// block's vector of partial sums scaled once by its absmax.
fn dotNf4Blocks(w: [*]const u8, blk0: usize, nblk: usize, xp: [*]const f32) f32 {
    var acc: V8 = @splat(0);
    for (0..nblk) |b| {
        const p = w + (blk0 + b) * 36;
        const xb = xp + b * 64;
        const c0 = nf4x32(p + 4);
        const c1 = nf4x32(p + 20);
        var v: [4]V8 = undefined;
        inline for (0..4) |j| v[j] = @mulAdd(V8, c1[j], loadV8(xb + 32 + 8 * j), c0[j] * loadV8(xb + 8 * j));
        acc = @mulAdd(V8, (v[0] + v[1]) + (v[2] + v[3]), @splat(absmaxAt(p, 0)), acc);
    }
    return @reduce(.Add, acc);
}

/// Dynamic-map values of the 8 codes at p: scalar loads from the L1-resident table (on Zen 3
/// this measured faster than vgatherdps: 5.2 vs 3.6 GB/s on a [4096, 4096] matvec).
inline fn q8x8(p: [*]const u8) V8 {
    const b: @Vector(8, u8) = p[0..8].*;
    var v: V8 = undefined;
    inline for (0..8) |j| v[j] = dyn_code[b[j]];
    return v;
}

/// Table values of weights o .. o+8 of a block whose codes start at p[codes] (o even for nf4).
inline fn codes8(comptime dt: DType, p: [*]const u8, codes: usize, o: usize) V8 {
    return switch (dt) {
        .nf4 => nf4x8(p + codes + o / 2),
        .q8_block => q8x8(p + codes + o),
        else => @compileError("not a bitsandbytes type"),
    };
}

inline fn loadV8(p: [*]const f32) V8 {
    return @as(*align(1) const V8, @ptrCast(p)).*;
}

inline fn storeV8(p: [*]f32, v: V8) void {
    @as(*align(1) V8, @ptrCast(p)).* = v;
}

/// dst[0..n] = weights first .. first+n.
fn dequantFlat(comptime dt: DType, w: [*]const u8, first: usize, n: usize, dst: [*]f32) void {
    const B = comptime dt.blockElems();
    var i = first;
    var k: usize = 0;
    while (k < n) {
        const base = i / B * dt.blockBytes();
        const o = i % B;
        const len = @min(B - o, n - k);
        const s = absmaxAt(w, base);
        var e: usize = 0;
        if (dt == .q8_block or o % 2 == 0) {
            const sv: V8 = @splat(s);
            while (e + 8 <= len) : (e += 8) storeV8(dst + k + e, codes8(dt, w, base + 4, o + e) * sv);
        }
        while (e < len) : (e += 1) dst[k + e] = codeValue(dt, w, base + 4, o + e) * s;
        i += len;
        k += len;
    }
}

/// Σ weights first .. first+n times x[0..n]: codes·x per block segment, each segment's vector of
/// partial sums scaled once by its absmax into a running vector, reduced once at the end.
fn dotFlat(comptime dt: DType, w: [*]const u8, first: usize, n: usize, x: [*]const f32) f32 {
    const B = comptime dt.blockElems();
    var acc: V8 = @splat(0);
    var tail: f32 = 0;
    var i = first;
    var k: usize = 0;
    while (k < n) {
        const base = i / B * dt.blockBytes();
        const o = i % B;
        const len = @min(B - o, n - k);
        const codes = base + 4;
        var v0: V8 = @splat(0);
        var v1: V8 = @splat(0);
        var e: usize = 0;
        if (dt == .q8_block or o % 2 == 0) {
            while (e + 16 <= len) : (e += 16) {
                v0 = @mulAdd(V8, codes8(dt, w, codes, o + e), loadV8(x + k + e), v0);
                v1 = @mulAdd(V8, codes8(dt, w, codes, o + e + 8), loadV8(x + k + e + 8), v1);
            }
            if (e + 8 <= len) {
                v0 = @mulAdd(V8, codes8(dt, w, codes, o + e), loadV8(x + k + e), v0);
                e += 8;
            }
        }
        var s: f32 = 0;
        while (e < len) : (e += 1) s += codeValue(dt, w, codes, o + e) * x[k + e];
        const am = absmaxAt(w, base);
        acc = @mulAdd(V8, v0 + v1, @splat(am), acc);
        tail += s * am;
        i += len;
        k += len;
    }
    return @reduce(.Add, acc) + tail;
}

const FlatArgs = struct { dt: DType, src: usize, dst: [*]f32 };

fn dequantRange(a: *const FlatArgs, lo: usize, hi: usize) void {
    switch (a.dt) {
        inline .nf4, .q8_block => |dt| dequantFlat(dt, bytePtr(a.src), lo, hi - lo, a.dst + lo),
        else => unreachable,
    }
}

/// dst[0..n] = the n weights stored at src.
pub fn dequantize(dt: DType, src: usize, dst: [*]f32, n: usize) void {
    pool.forRange(n, 1 << 14, dt.blockElems(), &FlatArgs{ .dt = dt, .src = src, .dst = dst }, dequantRange);
}

const EmbedArgs = struct { out: [*]f32, table: usize, dt: DType, cols: usize, ids: [*]const i32 };

fn embedRows(a: *const EmbedArgs, lo: usize, hi: usize) void {
    switch (a.dt) {
        inline .nf4, .q8_block => |dt| for (lo..hi) |t| {
            const id: usize = @intCast(a.ids[t]);
            dequantFlat(dt, bytePtr(a.table), id * a.cols, a.cols, a.out + t * a.cols);
        },
        else => unreachable,
    }
}

/// out[t, :] = table[ids[t], :] (ids already checked against the table's rows).
pub fn embedding(out: [*]f32, table: usize, dt: DType, cols: usize, ids: [*]const i32, n_ids: usize) void {
    pool.forRange(n_ids, @max(1, (1 << 15) / cols), 1, &EmbedArgs{ .out = out, .table = table, .dt = dt, .cols = cols, .ids = ids }, embedRows);
}

const MatArgs = struct { out: [*]f32, x: [*]const f32, w: usize, rows: usize, cols: usize, T: usize, row_chunk: usize };

/// Rows decoded together in prefill, and weights per row in one k-chunk (64 KB of f32 in all).
const prefill_rb = 4;
const k_chunk = 4096;
const nf4_chunk = 8192; // columns of x permuted at once for the NF4 decode path (32 KB)

fn dot(a: [*]const f32, b: [*]const f32, n: usize) f32 {
    var v0: V8 = @splat(0);
    var v1: V8 = @splat(0);
    var e: usize = 0;
    while (e + 16 <= n) : (e += 16) {
        v0 = @mulAdd(V8, loadV8(a + e), loadV8(b + e), v0);
        v1 = @mulAdd(V8, loadV8(a + e + 8), loadV8(b + e + 8), v1);
    }
    if (e + 8 <= n) {
        v0 = @mulAdd(V8, loadV8(a + e), loadV8(b + e), v0);
        e += 8;
    }
    var s = @reduce(.Add, v0 + v1);
    while (e < n) : (e += 1) s += a[e] * b[e];
    return s;
}

fn matTask(comptime dt: DType) fn (*const MatArgs, usize) void {
    return struct {
        fn run(a: *const MatArgs, task: usize) void {
            const w = bytePtr(a.w);
            const r_lo = task * a.row_chunk;
            const r_hi = @min(a.rows, r_lo + a.row_chunk);
            // Decode: codes go straight into FMAs, no decoded row is ever stored.
            if (a.T == 1 and dt == .nf4 and has_avx2 and a.cols % 64 == 0) {
                // Whole blocks per row: x permuted once per chunk into nf4x32's lane order.
                var xp: [nf4_chunk]f32 align(32) = undefined;
                var k0: usize = 0;
                while (k0 < a.cols) : (k0 += nf4_chunk) {
                    const kn = @min(nf4_chunk, a.cols - k0);
                    perm8(a.x + k0, &xp, kn);
                    for (r_lo..r_hi) |r| {
                        const s = dotNf4Blocks(w, (r * a.cols + k0) / 64, kn / 64, &xp);
                        a.out[r] = if (k0 == 0) s else a.out[r] + s;
                    }
                }
                return;
            }
            if (a.T == 1) {
                for (r_lo..r_hi) |r| a.out[r] = dotFlat(dt, w, r * a.cols, a.cols, a.x);
                return;
            }
            // Prefill: decode a 4-row × 4096 tile once, use it for every token.
            var buf: [prefill_rb][k_chunk]f32 align(32) = undefined;
            var r = r_lo;
            while (r < r_hi) : (r += prefill_rb) {
                const nr = @min(prefill_rb, r_hi - r);
                var k0: usize = 0;
                while (k0 < a.cols) : (k0 += k_chunk) {
                    const kn = @min(k_chunk, a.cols - k0);
                    for (0..nr) |i| dequantFlat(dt, w, (r + i) * a.cols + k0, kn, &buf[i]);
                    for (0..a.T) |t| {
                        const xr = a.x + t * a.cols + k0;
                        for (0..nr) |i| {
                            const o = &a.out[t * a.rows + r + i];
                            const s = dot(&buf[i], xr, kn);
                            o.* = if (k0 == 0) s else o.* + s;
                        }
                    }
                }
            }
        }
    }.run;
}

/// out[T, rows] = x[T, cols] · wᵀ with w in a bitsandbytes layout, [rows, cols].
pub fn matmul(out: [*]f32, x: [*]const f32, w: usize, dt: DType, rows: usize, cols: usize, T: usize) void {
    if (rows == 0 or T == 0) return;
    if (cols == 0) return @memset(out[0 .. rows * T], 0);
    const want = pool.taskCount(rows * cols * T, 1 << 17, 4);
    const row_chunk = std.mem.alignForward(usize, std.math.divCeil(usize, rows, want) catch unreachable, prefill_rb);
    const a = MatArgs{ .out = out, .x = x, .w = w, .rows = rows, .cols = cols, .T = T, .row_chunk = row_chunk };
    const n_tasks = std.math.divCeil(usize, rows, row_chunk) catch unreachable;
    switch (dt) {
        inline .nf4, .q8_block => |d| pool.run(n_tasks, &a, matTask(d)),
        else => unreachable,
    }
}
