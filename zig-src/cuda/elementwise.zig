//! Element-wise ops over f32 activations.
//!
//! Launch (all): grid (ceil(count / 256)), block 256, one thread per element.
const c = @import("common.zig");
const DType = @import("../dtype.zig").DType;

inline fn globalId() usize {
    return @as(usize, c.blockIdx(0)) * c.blockDim() + c.threadIdx();
}

/// out[i] = silu(gate[i]) * up[i], silu(g) = g / (1 + exp(-g)). out may alias gate.
pub fn swiglu(out: c.Ptr(f32), gate: c.ConstPtr(f32), up: c.ConstPtr(f32), n: u32) callconv(.kernel) void {
    const i = globalId();
    if (i >= n) return;
    const g = gate[i];
    out[i] = g / (1.0 + c.exp(-g)) * up[i];
}

/// out[i] = a[i] + b[i]. out may alias a.
pub fn add(out: c.Ptr(f32), a: c.ConstPtr(f32), b: c.ConstPtr(f32), n: u32) callconv(.kernel) void {
    const i = globalId();
    if (i >= n) return;
    out[i] = a[i] + b[i];
}

/// x[t, j] += bias[j] over T rows of n; count = T * n.
pub fn AddBias(comptime dt: DType) type {
    return struct {
        pub fn kernel(x: c.Ptr(f32), bias: c.ConstPtr(c.Elem(dt)), n: u32, count: u32) callconv(.kernel) void {
            const i = globalId();
            if (i >= count) return;
            x[i] += c.toF32(dt, bias[i % n]);
        }
    };
}

/// x[t, j] *= scales[t] over T rows of n (Qwen's logn query scaling); count = T * n.
pub fn scaleRows(x: c.Ptr(f32), scales: c.ConstPtr(f32), n: u32, count: u32) callconv(.kernel) void {
    const i = globalId();
    if (i >= count) return;
    x[i] *= scales[i / n];
}

/// x[t, j] *= scales[j] over T rows of n (Baichuan2's row-normalized head); count = T * n.
pub fn ScaleColumns(comptime dt: DType) type {
    return struct {
        pub fn kernel(x: c.Ptr(f32), scales: c.ConstPtr(c.Elem(dt)), n: u32, count: u32) callconv(.kernel) void {
            const i = globalId();
            if (i >= count) return;
            x[i] *= c.toF32(dt, scales[i % n]);
        }
    };
}
