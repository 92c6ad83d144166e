//! out[T, rows] = x[T, cols] · wᵀ for GGUF legacy and K-quant weights, and AirLLM's compression
//! formats in rows of whole blocks, with the activations quantized to int8 once per call
//! (quant_act.zig) and integer dot products per block (quant_int_legacy.zig, quant_int_k.zig,
//! quant_int_bnb.zig): llama.cpp's arithmetic for the GGUF types. Rows are split over the
//! threads as for the float kernels (matmul_tasks.zig); all of them read the one quantized copy
//! of x.
//! - Decode (T = 1): 4 rows at a time against the same activation blocks, nothing but registers
//!   between the weight bytes and the accumulators.
//! - Prefill: each block of 4 rows is unpacked to codes once and multiplied by every token of
//!   the task's token range, accumulators in an L1 buffer: the weights leave memory once per
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

/// Types with an integer kernel for rows of `cols` weights (bitsandbytes blocks may span rows
/// otherwise: those keep the f32 kernel of quant_bnb.zig).
pub fn supported(dt: DType, cols: usize) bool {
    return switch (dt) {
        .q8_0, .q4_0, .q4_1, .q5_0, .q5_1, .q2_k, .q3_k, .q4_k, .q5_k, .q6_k => true,
        .nf4, .q8_block => cols % dt.blockElems() == 0,
        else => false,
    };
}

const rb = 4;
/// Tokens whose accumulators one prefill pass keeps (rb · 256 · 32 bytes = 32 KB).
const tok_pass = 256;

fn Family(comptime dt: DType, comptime isa: id.Isa) type {
    const bnb = dt.isBnb();
    const legacy = dt.blockElems() == 32;
    const B = dt.blockElems();
    return struct {
        pub const Acc = if (legacy or bnb) V8 else f32;
        const U = if (legacy) il.Unpacked(dt) else if (bnb) ib.Unpacked else ik.Unpacked;

        inline fn unpack(blk: [*]const u8) U {
            return if (legacy) il.unpack(dt, blk) else if (bnb) ib.unpack(dt, isa, blk) else ik.unpack(dt, blk);
        }

        /// acc[i] += the contribution of block b of token t for each unpacked row u[i].
        inline fn step(comptime n: usize, u: *const [n]U, acc: *[n]Acc, a: *const act.Acts, t: usize, b: usize) void {
            const nb = a.cols / B;
            const da = a.d[t * nb + b];
            if (bnb) {
                const q: *align(1) const [2]id.I8x32 = @ptrCast(a.qs + t * a.cols + 64 * b);
                const qa = q.*;
                inline for (0..n) |i| acc[i] = acc[i] + ib.contrib(dt, isa, &u[i], &qa, da);
                return;
            }
            if (legacy) {
                const q: id.I8x32 = @as(*align(1) const [32]i8, @ptrCast(a.qs + t * a.cols + 32 * b)).*;
                const sa = a.s[t * nb + b];
                const quad = if (comptime il.offset(dt) != 0) a.quads[t * nb + b] else undefined;
                const dav: V8 = @splat(da);
                inline for (0..n) |i| acc[i] = acc[i] + il.contrib(dt, isa, &u[i], q, quad, dav, sa);
            } else {
                const q = a.qs + t * a.cols + 256 * b;
                const bs = a.bsums + t * (a.cols / 16) + 16 * b;
                inline for (0..n) |i| acc[i] = acc[i] + ik.contrib(dt, isa, &u[i], q, da, bs);
            }
        }

        inline fn total(acc: Acc) f32 {
            return if (legacy) il.total(acc) else if (bnb) il.total(acc) / 127 else acc;
        }

        fn rowBytes(a: *const Args) usize {
            return a.cols / B * dt.blockBytes();
        }

        inline fn unpackRows(comptime n: usize, a: *const Args, r: usize, b: usize) [n]U {
            var u: [n]U = undefined;
            const w: [*]const u8 = @ptrFromInt(a.w);
            inline for (0..n) |i| u[i] = unpack(w + (r + i) * rowBytes(a) + b * dt.blockBytes());
            return u;
        }

        fn decodeGroup(comptime n: usize, a: *const Args, r: usize) void {
            const acts: *const act.Acts = @ptrCast(@alignCast(a.ctx.?));
            var acc: [n]Acc = @splat(std.mem.zeroes(Acc));
            for (0..a.cols / B) |b| {
                const u = unpackRows(n, a, r, b);
                step(n, &u, &acc, acts, 0, b);
            }
            inline for (0..n) |i| a.out[r + i] = total(acc[i]);
        }

        /// K-quants: one row at a time, each super-block decoded group by group straight from
        /// its bytes (quant_int_k.zig `contribDirect`): codes never leave the registers.
        fn decodeRowK(a: *const Args, r: usize) void {
            const acts: *const act.Acts = @ptrCast(@alignCast(a.ctx.?));
            const w: [*]const u8 = @as([*]const u8, @ptrFromInt(a.w)) + r * rowBytes(a);
            var acc: f32 = 0;
            for (0..a.cols / B) |b| acc = acc + ik.contribDirect(dt, isa, w + b * dt.blockBytes(), acts.qs + 256 * b, acts.d[b], acts.bsums + 16 * b);
            a.out[r] = acc;
        }

        pub fn decode(comptime _: DType, a: *const Args, lo: usize, hi: usize) void {
            if (!legacy and !bnb) {
                for (lo..hi) |r| decodeRowK(a, r);
                return;
            }
            var r = lo;
            while (r + rb <= hi) : (r += rb) decodeGroup(rb, a, r);
            switch (hi - r) {
                inline 1...rb - 1 => |n| decodeGroup(n, a, r),
                else => {},
            }
        }

        fn prefillGroup(comptime n: usize, a: *const Args, r: usize, t_lo: usize, t_hi: usize) void {
            const acts: *const act.Acts = @ptrCast(@alignCast(a.ctx.?));
            var acc: [tok_pass][n]Acc = undefined;
            for (acc[0 .. t_hi - t_lo]) |*row| row.* = @splat(std.mem.zeroes(Acc));
            for (0..a.cols / B) |b| {
                const u = unpackRows(n, a, r, b);
                for (t_lo..t_hi) |t| step(n, &u, &acc[t - t_lo], acts, t, b);
            }
            for (t_lo..t_hi) |t| {
                inline for (0..n) |i| a.out[t * a.ld + r + i] = total(acc[t - t_lo][i]);
            }
        }

        pub fn prefill(comptime _: DType, a: *const Args, r_lo: usize, r_hi: usize, t_lo: usize, t_hi: usize) void {
            var t0 = t_lo;
            while (t0 < t_hi) : (t0 += tok_pass) {
                const t1 = @min(t_hi, t0 + tok_pass);
                var r = r_lo;
                while (r + rb <= r_hi) : (r += rb) prefillGroup(rb, a, r, t0, t1);
                switch (r_hi - r) {
                    inline 1...rb - 1 => |n| prefillGroup(n, a, r, t0, t1),
                    else => {},
                }
            }
        }
    };
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
    switch (id.active) {
        inline else => |isa| switch (dt) {
            inline .q8_0, .q4_0, .q4_1, .q5_0, .q5_1, .q2_k, .q3_k, .q4_k, .q5_k, .q6_k, .nf4, .q8_block => |d| {
                const F = Family(d, isa);
                tasks.Kernel(d, F.decode, F.prefill).run(out, ld, x, w, rows, cols, T, rb, 1, &acts);
            },
            else => unreachable,
        },
    }
}
