//! CPU ops on GGUF block-quantized weights (layouts in quant_legacy.zig, quant_k.zig and
//! quant_iq.zig):
//! dequantization (bit-exact to ggml), embedding rows, and matmul that reads the blocks itself.
//! - Decode (T = 1): each weight row is decoded 8 weights at a time straight into FMAs against
//!   x; nothing but registers holds decoded weights, so the op streams the quantized bytes.
//! - Prefill (T > 1): a task decodes `rb` rows × one k-chunk into a 64 KB stack buffer (it stays
//!   in L1/L2) and multiplies it by a block of tokens; each weight is decoded once per token
//!   block instead of once per token.
const std = @import("std");
const DType = @import("../dtype.zig").DType;
const pool = @import("thread_pool.zig");
const lg = @import("quant_legacy.zig");
const kq = @import("quant_k.zig");
const iq = @import("quant_iq.zig");
const bnb = @import("quant_bnb.zig");
const cv = @import("convert.zig");

const V8 = lg.V8;

const dequant8 = kq.dequant8Any;

/// True when rows of `cols` weights are whole blocks of dt.
pub fn validCols(dt: DType, cols: usize) bool {
    // bitsandbytes blocks run over the flattened tensor: any row length works.
    return dt.isBnb() or cols % dt.blockElems() == 0;
}

inline fn bytePtr(addr: usize) [*]const u8 {
    return @ptrFromInt(addr);
}

inline fn storeV8(p: [*]f32, v: V8) void {
    @as(*align(1) [8]f32, @ptrCast(p)).* = v;
}

inline fn loadV8(p: [*]const f32) V8 {
    return @as(*align(1) const [8]f32, @ptrCast(p)).*;
}

/// dst[0 .. nblocks·B] = the weights of `nblocks` consecutive blocks at src.
fn dequantBlocks(comptime dt: DType, src: [*]const u8, dst: [*]f32, nblocks: usize) void {
    const B = comptime dt.blockElems();
    const BB = comptime dt.blockBytes();
    // 32 groups of 8 unrolled, each with small inline loops: past the default quota.
    @setEvalBranchQuota(10_000);
    for (0..nblocks) |b| {
        const blk = src + b * BB;
        inline for (0..B / 8) |j| storeV8(dst + b * B + 8 * j, dequant8(dt, blk, j));
    }
}

/// dst[0..n] = the first n weights at src, on the calling thread (float or GGUF types; n whole
/// blocks): for ops that decode rows inside their own pool tasks. False for bitsandbytes types.
pub fn decodeRow(dt: DType, src: usize, dst: [*]f32, n: usize) bool {
    switch (dt) {
        inline .f32, .f16, .bf16 => |d| cv.toF32(d, dst, cv.at(d, src), n),
        inline else => |d| if (comptime d.isGguf()) {
            if (n % d.blockElems() != 0) return false;
            dequantBlocks(d, bytePtr(src), dst, n / d.blockElems());
        } else return false,
    }
    return true;
}

const DequantArgs = struct { dt: DType, src: usize, dst: [*]f32 };

fn dequantRange(a: *const DequantArgs, lo: usize, hi: usize) void {
    switch (a.dt) {
        inline else => |dt| if (comptime dt.isGguf()) {
            dequantBlocks(dt, bytePtr(a.src) + lo * dt.blockBytes(), a.dst + lo * dt.blockElems(), hi - lo);
        } else unreachable,
    }
}

/// dst[0..n] = the n weights stored at src. False when n is not a whole number of blocks.
pub fn dequantize(dt: DType, src: usize, dst: [*]f32, n: usize) bool {
    if (dt.isBnb()) {
        bnb.dequantize(dt, src, dst, n);
        return true;
    }
    if (!validCols(dt, n)) return false;
    pool.forRange(n / dt.blockElems(), (1 << 14) / dt.blockElems(), 1, &DequantArgs{ .dt = dt, .src = src, .dst = dst }, dequantRange);
    return true;
}

const EmbedArgs = struct { out: [*]f32, table: usize, dt: DType, cols: usize, ids: [*]const i32 };

fn embedRows(a: *const EmbedArgs, lo: usize, hi: usize) void {
    switch (a.dt) {
        inline else => |dt| if (comptime dt.isGguf()) {
            const nb = a.cols / dt.blockElems();
            for (lo..hi) |t| {
                const id: usize = @intCast(a.ids[t]);
                dequantBlocks(dt, bytePtr(a.table) + id * nb * dt.blockBytes(), a.out + t * a.cols, nb);
            }
        } else unreachable,
    }
}

pub const Error = error{ BadShape, BadIndex, OutOfMemory };

/// out[t, :] = dequantized table[ids[t], :]. Writes nothing on error.
pub fn embedding(out: [*]f32, table: usize, dt: DType, n_rows: usize, cols: usize, ids: [*]const i32, n_ids: usize) Error!void {
    if (!validCols(dt, cols)) return error.BadShape;
    for (ids[0..n_ids]) |id| if (id < 0 or id >= n_rows) return error.BadIndex;
    if (cols == 0) return;
    if (dt.isBnb()) return bnb.embedding(out, table, dt, cols, ids, n_ids);
    pool.forRange(n_ids, @max(1, (1 << 15) / cols), 1, &EmbedArgs{ .out = out, .table = table, .dt = dt, .cols = cols, .ids = ids }, embedRows);
}

const tasks = @import("matmul_tasks.zig");
const int_matmul = @import("quant_int_matmul.zig");
const Args = tasks.Args;

/// Dot product of one quantized weight row with x (cols weights), f32 accumulation.
inline fn dotRow(comptime dt: DType, wrow: [*]const u8, x: [*]const f32, nb: usize) f32 {
    const B = comptime dt.blockElems();
    // K-quants and i-quants: per-group scales applied to sums of code·x (their `dotRow`s).
    if (comptime dt.isIq()) return iq.dotRow(dt, wrow, x, nb);
    if (comptime B == 256) return kq.dotRow(dt, wrow, x, nb);
    var acc: [2]V8 = .{ @splat(0), @splat(0) };
    for (0..nb) |b| {
        const blk = wrow + b * dt.blockBytes();
        const xb = x + b * B;
        inline for (0..B / 8) |j| acc[j % 2] = @mulAdd(V8, dequant8(dt, blk, j), loadV8(xb + 8 * j), acc[j % 2]);
    }
    return @reduce(.Add, acc[0] + acc[1]);
}

fn decodeRows(comptime dt: DType, a: *const Args, lo: usize, hi: usize) void {
    const nb = a.cols / dt.blockElems();
    const rb = nb * dt.blockBytes();
    for (lo..hi) |r| a.out[r] = dotRow(dt, bytePtr(a.w) + r * rb, a.x, nb);
}

/// Rows decoded together in prefill, and f32 weights per row in one k-chunk (64 KB in all).
const prefill_rb = 4;
const prefill_tb = 4;
const k_chunk = 4096;

/// acc[t][r] += x[t0+t, k0 .. k0+kn] · buf[r, 0 .. kn] for a tb × rb tile (kn a multiple of 32).
inline fn tile(comptime tb: usize, comptime rb: usize, a: *const Args, buf: *const [prefill_rb][k_chunk]f32, t0: usize, r0: usize, k0: usize, kn: usize, first: bool) void {
    var acc: [tb][rb]V8 = undefined;
    inline for (0..tb) |t| inline for (0..rb) |r| {
        acc[t][r] = @splat(0);
    };
    var k: usize = 0;
    while (k < kn) : (k += 8) {
        var wv: [rb]V8 = undefined;
        inline for (0..rb) |r| wv[r] = loadV8(@ptrCast(&buf[r][k]));
        inline for (0..tb) |t| {
            const xv = loadV8(a.x + (t0 + t) * a.cols + k0 + k);
            inline for (0..rb) |r| acc[t][r] = @mulAdd(V8, xv, wv[r], acc[t][r]);
        }
    }
    inline for (0..tb) |t| inline for (0..rb) |r| {
        const o = &a.out[(t0 + t) * a.ld + r0 + r];
        const s = @reduce(.Add, acc[t][r]);
        o.* = if (first) s else o.* + s;
    };
}

fn tokenTiles(comptime rb: usize, a: *const Args, buf: *const [prefill_rb][k_chunk]f32, t_lo: usize, t_hi: usize, r0: usize, k0: usize, kn: usize) void {
    const first = k0 == 0;
    var t = t_lo;
    while (t + prefill_tb <= t_hi) : (t += prefill_tb) tile(prefill_tb, rb, a, buf, t, r0, k0, kn, first);
    switch (t_hi - t) {
        inline 1...prefill_tb - 1 => |tb| tile(tb, rb, a, buf, t, r0, k0, kn, first),
        else => {},
    }
}

fn prefillBlock(comptime dt: DType, a: *const Args, r_lo: usize, r_hi: usize, t_lo: usize, t_hi: usize) void {
    const B = comptime dt.blockElems();
    const row_bytes = a.cols / B * dt.blockBytes();
    var buf: [prefill_rb][k_chunk]f32 align(32) = undefined;
    var r = r_lo;
    while (r < r_hi) {
        const n_rows = @min(prefill_rb, r_hi - r);
        var k0: usize = 0;
        while (k0 < a.cols) : (k0 += k_chunk) {
            const kn = @min(k_chunk, a.cols - k0);
            for (0..n_rows) |i| {
                dequantBlocks(dt, bytePtr(a.w) + (r + i) * row_bytes + k0 / B * dt.blockBytes(), &buf[i], kn / B);
            }
            switch (n_rows) {
                inline 1...prefill_rb => |rb| tokenTiles(rb, a, &buf, t_lo, t_hi, r, k0, kn),
                else => unreachable,
            }
        }
        r += n_rows;
    }
}


/// out[T, rows] = x[T, cols] · wᵀ, w quantized [rows, cols], output row t at out + t·ld.
/// `exact`: multiply by x as given (f32). Otherwise the types with an integer kernel quantize
/// x to int8 first (quant_int_matmul.zig: llama.cpp's scheme for GGUF types; nf4 / q8_block
/// in rows of whole blocks); the others ignore the flag.
/// error.BadShape when cols is not a whole number of blocks.
pub fn matmul(out: [*]f32, ld: usize, x: [*]const f32, w: usize, dt: DType, rows: usize, cols: usize, T: usize, exact: bool) Error!void {
    if (!validCols(dt, cols)) return error.BadShape;
    if (rows == 0 or T == 0) return;
    if (cols == 0) {
        for (0..T) |t| @memset(out[t * ld ..][0..rows], 0);
        return;
    }
    if (!exact and int_matmul.supported(dt, cols)) return int_matmul.matmul(out, ld, x, w, dt, rows, cols, T);
    if (dt.isBnb()) return bnb.matmul(out, ld, x, w, dt, rows, cols, T);
    switch (dt) {
        inline else => |d| if (comptime d.isGguf()) tasks.Kernel(d, decodeRows, prefillBlock).run(out, ld, x, w, rows, cols, T, prefill_rb, prefill_tb, null) else unreachable,
    }
}
