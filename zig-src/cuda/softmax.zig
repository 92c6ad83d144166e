//! Row-wise softmax in place over x[rows, n], stabilised by the row max:
//! x = exp(x - max) / sum(exp(x - max)).
//!
//! Launch: grid (rows), block 256; one block per row, three strided passes (max, exp and sum,
//! scale), so any n works (vocabulary-sized rows included).
const c = @import("common.zig");

var scratch: [32]f32 addrspace(.shared) = undefined;

pub fn kernel(x: c.Ptr(f32), n_: u32) callconv(.kernel) void {
    const n: usize = n_;
    const row = x + @as(usize, c.blockIdx(0)) * n;
    var m: f32 = -c.inf;
    var i: usize = c.threadIdx();
    while (i < n) : (i += c.blockDim()) m = @max(m, row[i]);
    m = c.blockReduce(.max, m, &scratch);
    var s: f32 = 0;
    i = c.threadIdx();
    while (i < n) : (i += c.blockDim()) {
        const e = c.exp(row[i] - m);
        row[i] = e;
        s += e;
    }
    s = c.blockReduce(.sum, s, &scratch);
    const inv = 1.0 / s;
    i = c.threadIdx();
    while (i < n) : (i += c.blockDim()) row[i] *= inv;
}
