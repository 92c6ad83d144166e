//! Building blocks shared by the CUDA kernels: thread indices, pointer types, weight element
//! decoding, warp and block reductions, and the PTX instructions Zig has no builtin for
//! (there is no libdevice on nvptx64: exp and sin/cos come from the `.approx` instructions).
const DType = @import("../dtype.zig").DType;

/// Device pointers. Kernel parameters are raw CUdeviceptr values; on every CUDA GPU a generic
/// address of global memory is the global address itself, so `.global` loads are valid on them.
pub fn Ptr(comptime T: type) type {
    return [*]addrspace(.global) T;
}
pub fn ConstPtr(comptime T: type) type {
    return [*]addrspace(.global) const T;
}

pub inline fn threadIdx() u32 {
    return @workItemId(0);
}
pub inline fn blockIdx(comptime dim: u32) u32 {
    return @workGroupId(dim);
}
pub inline fn blockDim() u32 {
    return @workGroupSize(0);
}

/// Element type a weight of `dt` is stored as: 16-bit formats stay raw bits until `toF32`.
pub fn Elem(comptime dt: DType) type {
    return switch (dt) {
        .f32 => f32,
        .f16, .bf16 => u16,
        else => @compileError("quantized weights are decoded by the quant_* kernels"),
    };
}

pub inline fn toF32(comptime dt: DType, v: Elem(dt)) f32 {
    return switch (dt) {
        .f32 => v,
        .f16 => @as(f16, @bitCast(v)),
        // bf16 is the top half of an f32: widening is a shift, exactly.
        .bf16 => @bitCast(@as(u32, v) << 16),
        else => unreachable, // Elem(dt) already refused quantized types
    };
}

/// Elements of `dt` in one 16-byte load (the widest single load a thread can issue).
pub fn vecWidth(comptime dt: DType) comptime_int {
    return 16 / @sizeOf(Elem(dt));
}

/// `n` stored elements of `dt` widened to f32 (exactly).
pub inline fn widen(comptime dt: DType, comptime n: comptime_int, raw: @Vector(n, Elem(dt))) @Vector(n, f32) {
    return switch (dt) {
        .f32 => raw,
        .f16 => @floatCast(@as(@Vector(n, f16), @bitCast(raw))),
        .bf16 => @bitCast(@as(@Vector(n, u32), raw) << @splat(16)),
        else => unreachable,
    };
}

/// `n` elements of `dt` at `p` in one load (aligned to the whole vector: at most 16 bytes), as stored.
pub inline fn loadRaw(comptime dt: DType, comptime n: comptime_int, p: ConstPtr(Elem(dt))) @Vector(n, Elem(dt)) {
    return @as(*addrspace(.global) align(n * @sizeOf(Elem(dt))) const @Vector(n, Elem(dt)), @ptrCast(@alignCast(p))).*;
}

/// `n` elements of `dt` at `p` in one load, widened to f32.
pub inline fn loadElems(comptime dt: DType, comptime n: comptime_int, p: ConstPtr(Elem(dt))) @Vector(n, f32) {
    return widen(dt, n, loadRaw(dt, n, p));
}

/// One 16-byte load of weights at `p` (16-byte aligned), widened to f32.
pub inline fn loadWeights16(comptime dt: DType, p: ConstPtr(Elem(dt))) @Vector(vecWidth(dt), f32) {
    return loadElems(dt, vecWidth(dt), p);
}

/// Two f32 rounded to nearest even as f16 or bf16, packed in one word, `lo` in the low half
/// (the lower address). Out-of-range values become ±inf, as an IEEE conversion does.
pub inline fn pack2(comptime dt: DType, lo: f32, hi: f32) u32 {
    const insn = switch (dt) {
        .f16 => "cvt.rn.f16x2.f32",
        .bf16 => "cvt.rn.bf16x2.f32",
        else => @compileError("pack2 rounds to a 16-bit float type"),
    };
    // cvt.*x2 puts its first source in the upper half.
    return asm (insn ++ " %[r], %[hi], %[lo];"
        : [r] "=r" (-> u32),
        : [hi] "f" (hi),
          [lo] "f" (lo),
    );
}

/// `n` consecutive f32 at `p` (16-byte aligned) as one vector; n = 4 or 8 (one or two loads).
pub inline fn loadF32(comptime n: comptime_int, p: ConstPtr(f32)) @Vector(n, f32) {
    return @as(*addrspace(.global) align(16) const @Vector(n, f32), @ptrCast(@alignCast(p))).*;
}

pub inline fn isAligned16(p: anytype) bool {
    return @intFromPtr(p) % 16 == 0;
}

pub inline fn isAligned(p: anytype, comptime bytes: usize) bool {
    return @intFromPtr(p) % bytes == 0;
}

/// Block-wide barrier that is also a compiler memory barrier for shared memory.
pub inline fn syncThreads() void {
    asm volatile ("bar.sync 0;" ::: "memory");
}

/// Butterfly shuffle across the full warp. Volatile so the optimizer never moves it into a
/// branch: every lane of the warp must execute it together.
pub inline fn shflXor(v: f32, lane_mask: u32) f32 {
    return asm volatile ("shfl.sync.bfly.b32 %[r], %[v], %[m], 0x1f, 0xffffffff;"
        : [r] "=f" (-> f32),
        : [v] "f" (v),
          [m] "r" (lane_mask),
    );
}

/// Lane `src`'s value of `v`, to every lane of the full warp (volatile, as shflXor).
pub inline fn shflIdx(v: f32, src: u32) f32 {
    return asm volatile ("shfl.sync.idx.b32 %[r], %[v], %[s], 0x1f, 0xffffffff;"
        : [r] "=f" (-> f32),
        : [v] "f" (v),
          [s] "r" (src),
    );
}

pub inline fn shflIdxU32(v: u32, src: u32) u32 {
    return @bitCast(shflIdx(@bitCast(v), src));
}

/// Sum over the 32 lanes; every lane gets the result.
pub inline fn warpSum(v: f32) f32 {
    var x = v;
    inline for (.{ 16, 8, 4, 2, 1 }) |m| x += shflXor(x, m);
    return x;
}

pub inline fn warpMax(v: f32) f32 {
    var x = v;
    inline for (.{ 16, 8, 4, 2, 1 }) |m| x = @max(x, shflXor(x, m));
    return x;
}

pub const Reduce = enum { sum, max };

/// Reduction over the whole block (blockDim a multiple of 32, at most 1024); every thread gets
/// the result. `scratch` is the caller kernel's own shared array; it is free again on return.
pub inline fn blockReduce(comptime op: Reduce, v: f32, scratch: *addrspace(.shared) [32]f32) f32 {
    const lane = threadIdx() & 31;
    const warp = threadIdx() >> 5;
    const identity: f32 = if (op == .sum) 0 else -inf;
    var x = if (op == .sum) warpSum(v) else warpMax(v);
    if (lane == 0) scratch[warp] = x;
    syncThreads();
    // Every warp reduces the per-warp partials itself: no second broadcast step.
    x = if (lane < blockDim() >> 5) scratch[lane] else identity;
    x = if (op == .sum) warpSum(x) else warpMax(x);
    syncThreads(); // scratch may be rewritten by the caller's next reduction
    return x;
}

pub const inf = @import("std").math.inf(f32);
pub const log2e: f32 = 1.4426950408889634;

/// 2^x, relative error ~2^-22; 2^-inf = +0, which the online softmax relies on.
pub inline fn exp2(x: f32) f32 {
    return asm ("ex2.approx.ftz.f32 %[r], %[x];"
        : [r] "=f" (-> f32),
        : [x] "f" (x),
    );
}

pub inline fn exp(x: f32) f32 {
    return exp2(x * log2e);
}

/// sin and cos of an f32 angle of any size (RoPE angles reach 1e5 rad at long context): reduce
/// to [-pi, pi] in f64, exactly enough that only the `.approx` error (~1e-6 absolute) remains.
pub inline fn sinCos(angle: f32) [2]f32 {
    const two_pi: f64 = 6.283185307179586;
    const a: f64 = angle;
    const k = @floor(a / two_pi + 0.5);
    const r: f32 = @floatCast(a - k * two_pi);
    const s = asm ("sin.approx.f32 %[r], %[x];"
        : [r] "=f" (-> f32),
        : [x] "f" (r),
    );
    const c = asm ("cos.approx.f32 %[r], %[x];"
        : [r] "=f" (-> f32),
        : [x] "f" (r),
    );
    return .{ s, c };
}
