//! Weight element types shared by the CPU and CUDA code. The numeric values are the codes the
//! TypeScript side passes (src/backend/backend.ts DTYPE_CODE).
pub const DType = enum(u32) {
    f32 = 0,
    f16 = 1,
    bf16 = 2,
};
