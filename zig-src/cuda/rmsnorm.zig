//! RMSNorm, out[t, :] = x[t, :] / sqrt(mean(x[t, :]²) + eps) * w, as Hugging Face LlamaRMSNorm
//! computes it in f32: (x * inv_rms) * w. out may alias x: each element is read before it is
//! written by the same thread.
//!
//! Launch: grid (T), block 256 or 1024 (a multiple of 32); one block per token row, threads
//! stride over the n columns four at a time with 16-byte loads when n % 4 == 0 and the rows are
//! aligned. Decode (one row) takes 1024 threads: a 3072-wide row is then one load per thread,
//! where 256 threads walking it in a loop were latency-bound (12 µs on the H100, bench/TUNING.md).
const c = @import("common.zig");
const DType = @import("../dtype.zig").DType;

var scratch: [32]f32 addrspace(.shared) = undefined;

pub fn Rmsnorm(comptime dt: DType) type {
    return struct {
        pub fn kernel(out: c.Ptr(f32), x: c.ConstPtr(f32), w: c.ConstPtr(c.Elem(dt)), n_: u32, eps: f32) callconv(.kernel) void {
            const n: usize = n_;
            const row = @as(usize, c.blockIdx(0)) * n;
            const xr = x + row;
            const or_ = out + row;
            const step: usize = c.blockDim();
            // Uniform across the grid: every row starts 16-byte aligned.
            const vec = n % 4 == 0 and c.isAligned16(x) and c.isAligned16(out);
            var ss: f32 = 0;
            if (vec) {
                var i: usize = c.threadIdx() * 4;
                while (i < n) : (i += step * 4) {
                    const v = c.loadF32(4, xr + i);
                    ss += @reduce(.Add, v * v);
                }
            } else {
                var i: usize = c.threadIdx();
                while (i < n) : (i += step) ss += xr[i] * xr[i];
            }
            const total = c.blockReduce(.sum, ss, &scratch);
            const inv = 1.0 / @sqrt(total / @as(f32, @floatFromInt(n)) + eps);
            if (vec) {
                var i: usize = c.threadIdx() * 4;
                while (i < n) : (i += step * 4) {
                    const v = c.loadF32(4, xr + i);
                    var r: @Vector(4, f32) = undefined;
                    inline for (0..4) |e| r[e] = (v[e] * inv) * c.toF32(dt, w[i + e]);
                    @as(*addrspace(.global) align(16) @Vector(4, f32), @ptrCast(@alignCast(or_ + i))).* = r;
                }
            } else {
                var i: usize = c.threadIdx();
                while (i < n) : (i += step) or_[i] = (xr[i] * inv) * c.toF32(dt, w[i]);
            }
        }
    };
}
