//! A strided copy of f32 rows (backend.ts `copyRows`): dst[i·dst_stride + j] = src[i·src_stride + j].
//!
//! Launch: grid (ceil(width / 256), rows), block 256, one thread per element.
const c = @import("common.zig");

pub fn kernel(dst: c.Ptr(f32), dst_stride: u32, src: c.ConstPtr(f32), src_stride: u32, width: u32) callconv(.kernel) void {
    const j: usize = @as(usize, c.blockIdx(0)) * c.blockDim() + c.threadIdx();
    if (j >= width) return;
    const i: usize = c.blockIdx(1);
    dst[i * dst_stride + j] = src[i * src_stride + j];
}
