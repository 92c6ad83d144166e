//! Weight element types shared by the CPU and CUDA code. The numeric values are the codes the
//! TypeScript side passes (src/backend/backend.ts DTYPE_CODE).
//!
//! Codes 8.. are GGUF/ggml block-quantized types: a row is a whole number of blocks, each block
//! holding `blockElems` weights in `blockBytes` bytes (scales plus packed integers). Float types
//! are blocks of one element.
//!
//! Codes 30.. are llama.cpp's i-quants and ternary types (zig-src/cpu/quant_iq.zig): GGUF
//! blocks like the codes 8.., decoded through lattice codebooks and non-linear value tables.
//!
//! Codes 20.. are AirLLM's compression (bitsandbytes layouts, zig-src/cpu/quant_bnb.zig): blocks
//! run over the flattened tensor, so rows need not be whole blocks and the last may be short.
pub const DType = enum(u32) {
    f32 = 0,
    f16 = 1,
    bf16 = 2,
    q8_0 = 8,
    q4_0 = 9,
    q4_1 = 10,
    q5_0 = 11,
    q5_1 = 12,
    q2_k = 13,
    q3_k = 14,
    q4_k = 15,
    q5_k = 16,
    q6_k = 17,
    nf4 = 20,
    q8_block = 21,
    iq2_xxs = 30,
    iq2_xs = 31,
    iq2_s = 32,
    iq3_xxs = 33,
    iq3_s = 34,
    iq1_s = 35,
    iq1_m = 36,
    iq4_nl = 37,
    iq4_xs = 38,
    tq1_0 = 39,
    tq2_0 = 40,

    pub fn isQuant(dt: DType) bool {
        return @intFromEnum(dt) >= 8;
    }

    /// bitsandbytes' NF4 and blockwise 8-bit (flattened blocks, quant_bnb.zig).
    pub fn isBnb(dt: DType) bool {
        return dt == .nf4 or dt == .q8_block;
    }

    /// GGUF block types: rows are whole blocks, decoded by quant_legacy.zig / quant_k.zig /
    /// quant_iq.zig.
    pub fn isGguf(dt: DType) bool {
        return dt.isQuant() and !dt.isBnb();
    }

    /// i-quants and ternary types (quant_iq.zig).
    pub fn isIq(dt: DType) bool {
        return @intFromEnum(dt) >= 30;
    }

    /// Weights per block (ggml's QK4_0 = QK8_0 = 32, QK_K = 256).
    pub fn blockElems(dt: DType) usize {
        return switch (dt) {
            .f32, .f16, .bf16 => 1,
            .q8_0, .q4_0, .q4_1, .q5_0, .q5_1, .iq4_nl => 32,
            .q2_k, .q3_k, .q4_k, .q5_k, .q6_k => 256,
            .iq2_xxs, .iq2_xs, .iq2_s, .iq3_xxs, .iq3_s, .iq1_s, .iq1_m, .iq4_xs, .tq1_0, .tq2_0 => 256,
            .nf4 => 64,
            .q8_block => 64,
        };
    }

    /// Bytes per block (ggml's sizeof(block_*)).
    pub fn blockBytes(dt: DType) usize {
        return switch (dt) {
            .f32 => 4,
            .f16, .bf16 => 2,
            .q8_0 => 34,
            .q4_0 => 18,
            .q4_1 => 20,
            .q5_0 => 22,
            .q5_1 => 24,
            .q2_k => 84,
            .q3_k => 110,
            .q4_k => 144,
            .q5_k => 176,
            .q6_k => 210,
            .iq2_xxs => 66,
            .iq2_xs => 74,
            .iq2_s => 82,
            .iq3_xxs => 98,
            .iq3_s => 110,
            .iq1_s => 50,
            .iq1_m => 56,
            .iq4_nl => 18,
            .iq4_xs => 136,
            .tq1_0 => 54,
            .tq2_0 => 66,
            .nf4 => 4 + 32, // f32 absmax + 64 nibbles
            .q8_block => 4 + 64, // f32 absmax + 64 codes
        };
    }

    /// Bytes of one row of `cols` weights; cols must be a multiple of blockElems.
    pub fn rowBytes(dt: DType, cols: usize) usize {
        return cols / dt.blockElems() * dt.blockBytes();
    }
};
