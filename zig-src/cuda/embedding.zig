//! Embedding gather: out[t, :] = table[ids[t], :], widened to f32. The ids were checked
//! against the table's rows on the host before launch.
//!
//! Launch: grid (T, ceil(cols / 256)), block 256 (T on x: grid y is limited to 65535).
const c = @import("common.zig");
const DType = @import("../dtype.zig").DType;

pub fn Embedding(comptime dt: DType) type {
    return struct {
        pub fn kernel(out: c.Ptr(f32), table: c.ConstPtr(c.Elem(dt)), ids: c.ConstPtr(i32), cols: u32) callconv(.kernel) void {
            const j = @as(usize, c.blockIdx(1)) * c.blockDim() + c.threadIdx();
            if (j >= cols) return;
            const t = c.blockIdx(0);
            const id: usize = @intCast(ids[t]);
            out[@as(usize, t) * cols + j] = c.toF32(dt, table[id * cols + j]);
        }
    };
}
