//! out[T, rows] = x[T, cols] · wᵀ for GGUF legacy and K-quant weights and AirLLM's compression
//! formats with the activations quantized to int8 once per call (quant_act.zig) and integer dot
//! products per block (quant_int_legacy.zig, quant_int_k.zig: llama.cpp's arithmetic;
//! quant_int_bnb.zig). Rows are split over the
//! threads as for the float kernels (matmul_tasks.zig); all of them read the one quantized copy
//! of x.
//! - Decode (T = 1): nothing but registers between the weight bytes and the accumulators
//!   (legacy types 8 rows at a time against the same activation blocks, AirLLM's formats 4,
//!   K-quants one row: a single sequential stream).
//! - Prefill: each block of a row group is unpacked to codes once and multiplied by every token
//!   of the task's token range, accumulators in an L1 buffer: the weights leave memory once per
//!   token range and are decoded once per token range, not once per token.
//! Every (token, row) output takes the same operations in the same order whatever T is, so a
//! prefill equals the same tokens decoded one at a time bit for bit.
const std = @import("std");
const DType = @import("../dtype.zig").DType;
const memory = @import("memory.zig");
const act = @import("quant_act.zig");
const id = @import("int_dot.zig");
const il = @import("quant_int_legacy.zig");
const ik = @import("quant_int_k.zig");
const ib = @import("quant_int_bnb.zig");
const tasks = @import("matmul_tasks.zig");
const Args = tasks.Args;

const V8 = @Vector(8, f32);

/// Types with an integer kernel for rows of `cols` weights (AirLLM's formats: whole blocks, so
/// none spans two rows).
pub fn supported(dt: DType, cols: usize) bool {
    return switch (dt) {
        .q8_0, .q4_0, .q4_1, .q5_0, .q5_1, .q2_k, .q3_k, .q4_k, .q5_k, .q6_k => true,
        .nf4, .q8_block => cols % dt.blockElems() == 0,
        else => false,
    };
}

/// Tokens whose accumulators one prefill pass keeps (at most 256 · 8 rows · 4 bytes = 8 KB for
/// the legacy types, 4 rows of f32 for the K-quants).
const tok_pass = 256;

fn rowBytes(comptime dt: DType, a: *const Args) usize {
    return a.cols / dt.blockElems() * dt.blockBytes();
}

/// The first bytes of rows r .. r + n of a group of `count` ≤ n real rows; the missing ones
/// repeat the last real row (computed, never stored).
fn groupRows(comptime dt: DType, comptime n: usize, a: *const Args, r: usize, count: usize) [n][*]const u8 {
    const w: [*]const u8 = @ptrFromInt(a.w);
    var p: [n][*]const u8 = undefined;
    inline for (0..n) |i| p[i] = w + (r + @min(i, count - 1)) * rowBytes(dt, a);
    return p;
}

/// A prefill's token range in passes of at most tok_pass tokens (their accumulators stay in
/// L1), each over the range's row groups of n: group(a, r, count, t0, t1).
inline fn prefillPasses(comptime n: usize, comptime group: anytype, a: *const Args, r_lo: usize, r_hi: usize, t_lo: usize, t_hi: usize) void {
    var t0 = t_lo;
    while (t0 < t_hi) : (t0 += tok_pass) {
        var r = r_lo;
        while (r < r_hi) : (r += n) group(a, r, @min(n, r_hi - r), t0, @min(t_hi, t0 + tok_pass));
    }
}

/// The legacy types, eight rows per group (quant_int_legacy.zig); a last group of fewer rows
/// repeats its last row in the missing lanes and stores only the real ones.
fn Legacy(comptime dt: DType, comptime isa: id.Isa) type {
    const n = il.rows;
    return struct {
        const row_align = n;

        inline fn advance(p: *const [n][*]const u8, b: usize) [n][*]const u8 {
            var q: [n][*]const u8 = undefined;
            inline for (0..n) |i| q[i] = p[i] + b * dt.blockBytes();
            return q;
        }

        inline fn store(a: *const Args, acc: V8, t: usize, r: usize, count: usize) void {
            inline for (0..n) |l| {
                if (il.lane_rows[l] < count) a.out[t * a.ld + r + il.lane_rows[l]] = acc[l];
            }
        }

        fn decodeGroup(a: *const Args, r: usize, count: usize) void {
            @setEvalBranchQuota(100000);
            const acts: *const act.Acts = @ptrCast(@alignCast(a.ctx.?));
            const base = groupRows(dt, n, a, r, count);
            var acc: V8 = @splat(0);
            const nb = a.cols / 32;
            var b: usize = 0;
            // Blocks in twos: the two contributions are independent chains the core overlaps
            // (one alone is longer than its out-of-order window covers), added in order.
            while (b + 2 <= nb) : (b += 2) {
                const g0 = il.group(dt, &advance(&base, b));
                const g1 = il.group(dt, &advance(&base, b + 1));
                const c0 = il.contrib(dt, isa, &g0, acts, 0, b);
                const c1 = il.contrib(dt, isa, &g1, acts, 0, b + 1);
                acc = (acc + c0) + c1;
            }
            if (b < nb) {
                const g = il.group(dt, &advance(&base, b));
                acc = acc + il.contrib(dt, isa, &g, acts, 0, b);
            }
            store(a, acc, 0, r, count);
        }

        pub fn decode(comptime _: DType, a: *const Args, lo: usize, hi: usize) void {
            var r = lo;
            while (r < hi) : (r += n) decodeGroup(a, r, @min(n, hi - r));
        }

        fn prefillGroup(a: *const Args, r: usize, count: usize, t_lo: usize, t_hi: usize) void {
            @setEvalBranchQuota(100000);
            const acts: *const act.Acts = @ptrCast(@alignCast(a.ctx.?));
            const base = groupRows(dt, n, a, r, count);
            var acc: [tok_pass]V8 = undefined;
            @memset(acc[0 .. t_hi - t_lo], @as(V8, @splat(0)));
            for (0..a.cols / 32) |b| {
                const g = il.group(dt, &advance(&base, b));
                for (t_lo..t_hi) |t| acc[t - t_lo] = acc[t - t_lo] + il.contrib(dt, isa, &g, acts, t, b);
            }
            for (t_lo..t_hi) |t| store(a, acc[t - t_lo], t, r, count);
        }

        pub fn prefill(comptime _: DType, a: *const Args, r_lo: usize, r_hi: usize, t_lo: usize, t_hi: usize) void {
            prefillPasses(n, prefillGroup, a, r_lo, r_hi, t_lo, t_hi);
        }
    };
}

/// The K-quants: decode a row at a time straight from the bytes (codes never leave the
/// registers); prefill in groups of four rows (their f32 steps in one vector, quant_int_k.zig
/// `contrib4`), each super-block unpacked once and multiplied by every token of the range. A last
/// group of fewer rows repeats its last row, as the legacy one does.
fn KQuant(comptime dt: DType, comptime isa: id.Isa) type {
    const n = 4;
    const V4 = ik.V4;
    return struct {
        const row_align = n;

        inline fn store(a: *const Args, acc: V4, t: usize, r: usize, count: usize) void {
            inline for (0..n) |i| {
                if (i < count) a.out[t * a.ld + r + i] = acc[i];
            }
        }

        /// A row at a time: one sequential stream of weight bytes, which the hardware
        /// prefetcher follows best (four rows interleaved measured a third slower cold).
        fn decodeRow(a: *const Args, r: usize) void {
            const acts: *const act.Acts = @ptrCast(@alignCast(a.ctx.?));
            const w: [*]const u8 = @as([*]const u8, @ptrFromInt(a.w)) + r * rowBytes(dt, a);
            const nb = a.cols / 256;
            var acc: f32 = 0;
            var b: usize = 0;
            // Super-blocks in twos, as the legacy decode: independent chains, added in order.
            while (b + 2 <= nb) : (b += 2) {
                const c0 = superBlock(acts, w, b);
                const c1 = superBlock(acts, w, b + 1);
                acc = (acc + c0) + c1;
            }
            if (b < nb) acc = acc + superBlock(acts, w, b);
            a.out[r] = acc;
        }

        inline fn superBlock(acts: *const act.Acts, w: [*]const u8, b: usize) f32 {
            const blk = w + b * dt.blockBytes();
            const sc = ik.scales(dt, blk);
            return ik.contrib1(dt, ik.sumsDirect(dt, isa, blk, &sc, acts.qs + 256 * b, acts.bsums + 16 * b), sc.d, sc.dmin, acts.d[b]);
        }

        pub fn decode(comptime _: DType, a: *const Args, lo: usize, hi: usize) void {
            for (lo..hi) |r| decodeRow(a, r);
        }

        fn prefillGroup(a: *const Args, r: usize, count: usize, t_lo: usize, t_hi: usize) void {
            const acts: *const act.Acts = @ptrCast(@alignCast(a.ctx.?));
            const base = groupRows(dt, n, a, r, count);
            const nb = a.cols / 256;
            var acc: [tok_pass]V4 = undefined;
            @memset(acc[0 .. t_hi - t_lo], @as(V4, @splat(0)));
            for (0..nb) |b| {
                var u: [n]ik.Unpacked = undefined;
                var d: V4 = undefined;
                var dmin: V4 = undefined;
                inline for (0..n) |i| {
                    u[i] = ik.unpack(dt, isa, base[i] + b * dt.blockBytes());
                    d[i] = u[i].s.d;
                    dmin[i] = u[i].s.dmin;
                }
                for (t_lo..t_hi) |t| {
                    const q = acts.qs + t * a.cols + 256 * b;
                    const bs = acts.bsums + t * (a.cols / 16) + 16 * b;
                    var s: [n]ik.Sums = undefined;
                    inline for (0..n) |i| s[i] = ik.sums(dt, isa, &u[i], q, bs);
                    acc[t - t_lo] = acc[t - t_lo] + ik.contrib4(dt, isa, &s, d, dmin, acts.d[t * nb + b]);
                }
            }
            for (t_lo..t_hi) |t| store(a, acc[t - t_lo], t, r, count);
        }

        pub fn prefill(comptime _: DType, a: *const Args, r_lo: usize, r_hi: usize, t_lo: usize, t_hi: usize) void {
            prefillPasses(n, prefillGroup, a, r_lo, r_hi, t_lo, t_hi);
        }
    };
}

/// AirLLM's formats, four rows per group against the same activation blocks (quant_int_bnb.zig);
/// a last group of fewer rows repeats its last row, as the others do.
fn Bnb(comptime dt: DType, comptime isa: id.Isa) type {
    const n = 4;
    return struct {
        const row_align = n;

        inline fn unpackRows(base: *const [n][*]const u8, b: usize) [n]ib.Unpacked {
            var u: [n]ib.Unpacked = undefined;
            inline for (0..n) |i| u[i] = ib.unpack(dt, isa, base[i] + b * dt.blockBytes());
            return u;
        }

        inline fn step(u: *const [n]ib.Unpacked, acc: *[n]V8, a: *const act.Acts, t: usize, b: usize) void {
            const q: *align(1) const [2]id.I8x32 = @ptrCast(a.qs + t * a.cols + 64 * b);
            const qa = q.*;
            const da = a.d[t * (a.cols / 64) + b];
            inline for (0..n) |i| acc[i] = acc[i] + ib.contrib(dt, isa, &u[i], &qa, da);
        }

        inline fn store(a: *const Args, acc: *const [n]V8, t: usize, r: usize, count: usize) void {
            inline for (0..n) |i| {
                if (i < count) a.out[t * a.ld + r + i] = ib.total(acc[i]);
            }
        }

        fn decodeGroup(a: *const Args, r: usize, count: usize) void {
            const acts: *const act.Acts = @ptrCast(@alignCast(a.ctx.?));
            const base = groupRows(dt, n, a, r, count);
            var acc: [n]V8 = @splat(@splat(0));
            for (0..a.cols / 64) |b| step(&unpackRows(&base, b), &acc, acts, 0, b);
            store(a, &acc, 0, r, count);
        }

        pub fn decode(comptime _: DType, a: *const Args, lo: usize, hi: usize) void {
            var r = lo;
            while (r < hi) : (r += n) decodeGroup(a, r, @min(n, hi - r));
        }

        fn prefillGroup(a: *const Args, r: usize, count: usize, t_lo: usize, t_hi: usize) void {
            const acts: *const act.Acts = @ptrCast(@alignCast(a.ctx.?));
            const base = groupRows(dt, n, a, r, count);
            var acc: [tok_pass][n]V8 = undefined;
            for (acc[0 .. t_hi - t_lo]) |*row| row.* = @splat(@splat(0));
            for (0..a.cols / 64) |b| {
                const u = unpackRows(&base, b);
                for (t_lo..t_hi) |t| step(&u, &acc[t - t_lo], acts, t, b);
            }
            for (t_lo..t_hi) |t| store(a, &acc[t - t_lo], t, r, count);
        }

        pub fn prefill(comptime _: DType, a: *const Args, r_lo: usize, r_hi: usize, t_lo: usize, t_hi: usize) void {
            prefillPasses(n, prefillGroup, a, r_lo, r_hi, t_lo, t_hi);
        }
    };
}

/// The K-quants' products all carry scales, which vpdpbusd does not apply: on the VNNI paths
/// they take the AVX2 code (one instantiation fewer each, the same code).
fn familyIsa(comptime dt: DType, comptime isa: id.Isa) id.Isa {
    const k = !dt.isBnb() and dt.blockElems() == 256;
    return if (k and isa.simd()) .avx2 else isa;
}

fn Family(comptime dt: DType, comptime isa: id.Isa) type {
    if (dt.isBnb()) return Bnb(dt, isa);
    return if (dt.blockElems() == 32) Legacy(dt, isa) else KQuant(dt, isa);
}

pub const Error = error{OutOfMemory};

/// Scratch for one decode call's activations, enough for rows of 28672 (a 70B FFN).
const stack_bytes = 40 * 1024;

/// out[T, rows] = x[T, cols] · wᵀ, w of a type `supported` for cols, cols whole blocks, out
/// row t at out + t·ld. error.OutOfMemory when the quantized copy of x cannot be allocated.
pub fn matmul(out: [*]f32, ld: usize, x: [*]const f32, w: usize, dt: DType, rows: usize, cols: usize, T: usize) Error!void {
    const scheme: act.Scheme = switch (dt.blockElems()) {
        32 => .b32,
        64 => .b64,
        else => .b256,
    };
    const bytes = act.Acts.bytes(scheme, T, cols);
    var stack: [stack_bytes]u8 align(64) = undefined;
    const heap = bytes > stack_bytes;
    const mem: [*]align(64) u8 = if (heap) @ptrCast(@alignCast(memory.alloc(bytes) orelse return error.OutOfMemory)) else &stack;
    defer if (heap) memory.free(mem);
    const off: i32 = switch (dt) {
        inline .q4_0, .q5_0 => |d| il.offset(d),
        else => 0,
    };
    const order: act.Order = switch (dt) {
        inline .nf4, .q8_block => |d| ib.order(d),
        else => .natural,
    };
    const acts = act.Acts.init(scheme, off, order, T, cols, mem);
    act.quantize(&acts, x, T);
    switch (id.current()) {
        inline else => |isa| switch (dt) {
            inline .q8_0, .q4_0, .q4_1, .q5_0, .q5_1, .q2_k, .q3_k, .q4_k, .q5_k, .q6_k, .nf4, .q8_block => |d| {
                const F = Family(d, familyIsa(d, isa));
                tasks.Kernel(d, F.decode, F.prefill).run(out, ld, x, w, rows, cols, T, F.row_align, 1, &acts);
            },
            else => unreachable,
        },
    }
}
