//! AirLLM's compression formats, in bitsandbytes' layouts:
//!   nf4:      4-bit NormalFloat, blocks of 64 weights: f32 absmax, then 32 bytes of codes into
//!             the 16-value NF4 table; weight 2k is the HIGH nibble of byte k, 2k+1 the low one
//!             (bitsandbytes' kQuantizeBlockwise packing). w = nf4_code[nib]·absmax.
//!   q8_block: blockwise 8-bit, blocks of 64 weights: f32 absmax, then 64 u8 codes into a linear
//!             map, lin_code[q] = (q − 128) / 127 (so q = 128 + round(127·w/absmax), symmetric
//!             int8 stored with an offset). w = lin_code[q]·absmax — what bitsandbytes'
//!             quantize_blockwise(code=that map, blocksize=64) stores and dequantizes.
//!             Not AirLLM's own 8-bit (the signed dynamic map over blocks of 2048): measured with
//!             bitsandbytes and transformers on stories260K, that one's next-token KL is 2.07e-3
//!             against 3.3e-4 for this one, at 1.06 instead of 1.00 byte per weight
//!             (bench/RESULTS.md, Compression).
//! Blocks run over the flattened row-major tensor exactly like bitsandbytes' (a block may span
//! rows; the last block may be short: absmax + only its codes), so any shape compresses.
//! Block b starts at byte b·blockBytes.
//!
//! Decoding is `code·absmax` in f32, bit-exact to bitsandbytes' dequantize. The fused matmul
//! here multiplies codes by x and scales each block's partial sum once: within f32 rounding of
//! dequantize-then-multiply. It is the exact-activation path, and the only one where blocks
//! span rows; rows of whole blocks take the int8 path by default (quant_int_bnb.zig). `weightAt`/`codeValue` take any indexable byte pointer, so the CUDA
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

/// The 8-bit linear map: lin_code[q] = (q − 128) / 127 in f32, correctly rounded (q = 0 gives
/// −128/127, which the quantizer never picks: scaled weights lie in [−1, 1]).
pub const lin_code: [256]f32 = blk: {
    var t: [256]f32 = undefined;
    for (0..256) |q| t[q] = (@as(f32, @floatFromInt(q)) - 128.0) / 127.0;
    break :blk t;
};

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
        .q8_block => lin_code[p[codes + o]],
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

/// Linear-map values of the 8 codes at p: (q − 128) / 127 computed in f32 (the division is
/// correctly rounded, so each lane equals lin_code[q] exactly).
inline fn q8x8(p: [*]const u8) V8 {
    const b: @Vector(8, u8) = p[0..8].*;
    const q: V8 = @floatFromInt(@as(@Vector(8, i32), b));
    return (q - @as(V8, @splat(128))) / @as(V8, @splat(127));
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

const MatArgs = struct { out: [*]f32, ld: usize, x: [*]const f32, w: usize, rows: usize, cols: usize, T: usize, row_chunk: usize };

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
                            const o = &a.out[t * a.ld + r + i];
                            const s = dot(&buf[i], xr, kn);
                            o.* = if (k0 == 0) s else o.* + s;
                        }
                    }
                }
            }
        }
    }.run;
}

/// out[T, rows] = x[T, cols] · wᵀ with w in a bitsandbytes layout, [rows, cols]; output row t
/// at out + t·ld.
pub fn matmul(out: [*]f32, ld: usize, x: [*]const f32, w: usize, dt: DType, rows: usize, cols: usize, T: usize) void {
    if (rows == 0 or T == 0) return;
    if (cols == 0) {
        for (0..T) |t| @memset(out[t * ld ..][0..rows], 0);
        return;
    }
    const want = pool.taskCount(rows * cols * T, 1 << 17, 4);
    const row_chunk = std.mem.alignForward(usize, std.math.divCeil(usize, rows, want) catch unreachable, prefill_rb);
    const a = MatArgs{ .out = out, .ld = ld, .x = x, .w = w, .rows = rows, .cols = cols, .T = T, .row_chunk = row_chunk };
    const n_tasks = std.math.divCeil(usize, rows, row_chunk) catch unreachable;
    switch (dt) {
        inline .nf4, .q8_block => |d| pool.run(n_tasks, &a, matTask(d)),
        else => unreachable,
    }
}
