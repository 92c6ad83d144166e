//! RMSNorm, out[t, :] = x[t, :] / sqrt(mean(x[t, :]²) + eps) * w, as Hugging Face LlamaRMSNorm
//! computes it in f32: (x * inv_rms) * w. out may alias x: each element is read before it is
//! written by the same thread.
//!
//! Launch: grid (T), block 256; one block per token row, threads stride over the n columns.
const c = @import("common.zig");
const DType = @import("../dtype.zig").DType;

var scratch: [32]f32 addrspace(.shared) = undefined;

pub fn Rmsnorm(comptime dt: DType) type {
    return struct {
        pub fn kernel(out: c.Ptr(f32), x: c.ConstPtr(f32), w: c.ConstPtr(c.Elem(dt)), n_: u32, eps: f32) callconv(.kernel) void {
            const n: usize = n_;
            const row = @as(usize, c.blockIdx(0)) * n;
            var ss: f32 = 0;
            var i: usize = c.threadIdx();
            while (i < n) : (i += c.blockDim()) ss += x[row + i] * x[row + i];
            const total = c.blockReduce(.sum, ss, &scratch);
            const inv = 1.0 / @sqrt(total / @as(f32, @floatFromInt(n)) + eps);
            i = c.threadIdx();
            while (i < n) : (i += c.blockDim()) out[row + i] = (x[row + i] * inv) * c.toF32(dt, w[i]);
        }
    };
}
