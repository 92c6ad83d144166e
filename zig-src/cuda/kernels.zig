//! Every CUDA kernel with the symbol name it is exported under (lib.zig exports this list).
//! The TypeScript side's table, src/backend/cuda/module.ts KERNELS, must name the same
//! kernels with the same parameters; test/ptx.test.ts checks the names against the PTX.
const DType = @import("../dtype.zig").DType;
const matvec = @import("matvec.zig");
const mma = @import("matmul_mma.zig");
const simt = @import("matmul_simt.zig");
const rmsnorm = @import("rmsnorm.zig");
const softmax = @import("softmax.zig");
const rope = @import("rope.zig");
const attention = @import("attention.zig");
const attention_prefill = @import("attention_prefill.zig");
const elementwise = @import("elementwise.zig");
const embedding = @import("embedding.zig");
const qmatvec = @import("quant_matvec.zig");
const qmatmul = @import("quant_matmul.zig");
const qembedding = @import("quant_embedding.zig");
const bnb = @import("quant_bnb.zig");
const paged_kv = @import("paged_kv.zig");
const moe = @import("moe.zig");
const heads = @import("heads_matmul.zig");
const copy_rows = @import("copy_rows.zig");

/// GGUF block-quantized weight types: each gets a t1 and t4 matvec, a prefill matmul and an
/// embedding gather, named like the float kernels with the dtype last.
pub const quant_types = [_]DType{ .q8_0, .q4_0, .q4_1, .q5_0, .q5_1, .q2_k, .q3_k, .q4_k, .q5_k, .q6_k } ++ iq_types;
/// llama.cpp's i-quants and ternary types (zig-src/cpu/quant_iq.zig), through the same kernels.
pub const iq_types = [_]DType{ .iq2_xxs, .iq2_xs, .iq2_s, .iq3_xxs, .iq3_s, .iq1_s, .iq1_m, .iq4_nl, .iq4_xs, .tq1_0, .tq2_0 };

/// AirLLM's compression (bitsandbytes layouts, flattened blocks): the same four kernels per type,
/// from quant_bnb.zig.
pub const bnb_types = [_]DType{ .nf4, .q8_block };

/// Exports the quantized kernels; lib.zig calls it beside exporting `list` (their names are
/// built from the dtype, which a literal tuple like `list` cannot do).
pub fn exportQuant() void {
    for (quant_types) |dt| {
        const n = @tagName(dt);
        @export(&qmatvec.QuantMatvec(dt, 1).kernel, .{ .name = "matvec_t1_" ++ n });
        @export(&qmatvec.QuantMatvec(dt, 4).kernel, .{ .name = "matvec_t4_" ++ n });
        @export(&qmatmul.QuantMatmul(dt).kernel, .{ .name = "matmul_dq_" ++ n });
        @export(&qembedding.QuantEmbedding(dt).kernel, .{ .name = "embedding_" ++ n });
    }
    for (bnb_types) |dt| {
        const n = @tagName(dt);
        @export(&bnb.BnbMatvec(dt, 1).kernel, .{ .name = "matvec_t1_" ++ n });
        @export(&bnb.BnbMatvec(dt, 4).kernel, .{ .name = "matvec_t4_" ++ n });
        @export(&bnb.BnbMatmul(dt).kernel, .{ .name = "matmul_dq_" ++ n });
        @export(&bnb.BnbEmbedding(dt).kernel, .{ .name = "embedding_" ++ n });
    }
}

pub const list = .{
    .{ "matvec_t1_f32", &matvec.Matvec(.f32, 1).kernel },
    .{ "matvec_t1_f16", &matvec.Matvec(.f16, 1).kernel },
    .{ "matvec_t1_bf16", &matvec.Matvec(.bf16, 1).kernel },
    .{ "matvec_t4_f32", &matvec.Matvec(.f32, 4).kernel },
    .{ "matvec_t4_f16", &matvec.Matvec(.f16, 4).kernel },
    .{ "matvec_t4_bf16", &matvec.Matvec(.bf16, 4).kernel },
    .{ "matvec_multi_t1_f32", &matvec.MatvecMulti(.f32, 1).kernel },
    .{ "matvec_multi_t1_f16", &matvec.MatvecMulti(.f16, 1).kernel },
    .{ "matvec_multi_t1_bf16", &matvec.MatvecMulti(.bf16, 1).kernel },
    .{ "matvec_multi_t4_f32", &matvec.MatvecMulti(.f32, 4).kernel },
    .{ "matvec_multi_t4_f16", &matvec.MatvecMulti(.f16, 4).kernel },
    .{ "matvec_multi_t4_bf16", &matvec.MatvecMulti(.bf16, 4).kernel },
    .{ "matvec_swiglu_t1_f32", &matvec.MatvecSwiglu(.f32, 1).kernel },
    .{ "matvec_swiglu_t1_f16", &matvec.MatvecSwiglu(.f16, 1).kernel },
    .{ "matvec_swiglu_t1_bf16", &matvec.MatvecSwiglu(.bf16, 1).kernel },
    .{ "matvec_swiglu_t4_f32", &matvec.MatvecSwiglu(.f32, 4).kernel },
    .{ "matvec_swiglu_t4_f16", &matvec.MatvecSwiglu(.f16, 4).kernel },
    .{ "matvec_swiglu_t4_bf16", &matvec.MatvecSwiglu(.bf16, 4).kernel },
    .{ "matmul_simt_f32", &simt.kernel },
    .{ "matmul_mma_f16", &mma.MatmulMma(.f16).kernel },
    .{ "matmul_mma_bf16", &mma.MatmulMma(.bf16).kernel },
    .{ "matmul_mma_multi_f16", &mma.MatmulMma(.f16).multi },
    .{ "matmul_mma_multi_bf16", &mma.MatmulMma(.bf16).multi },
    .{ "rmsnorm_f32", &rmsnorm.Rmsnorm(.f32).kernel },
    .{ "rmsnorm_f16", &rmsnorm.Rmsnorm(.f16).kernel },
    .{ "rmsnorm_bf16", &rmsnorm.Rmsnorm(.bf16).kernel },
    .{ "add_bias_f32", &elementwise.AddBias(.f32).kernel },
    .{ "add_bias_f16", &elementwise.AddBias(.f16).kernel },
    .{ "add_bias_bf16", &elementwise.AddBias(.bf16).kernel },
    .{ "scale_columns_f32", &elementwise.ScaleColumns(.f32).kernel },
    .{ "scale_columns_f16", &elementwise.ScaleColumns(.f16).kernel },
    .{ "scale_columns_bf16", &elementwise.ScaleColumns(.bf16).kernel },
    .{ "scale_rows_f32", &elementwise.scaleRows },
    .{ "embedding_f32", &embedding.Embedding(.f32).kernel },
    .{ "embedding_f16", &embedding.Embedding(.f16).kernel },
    .{ "embedding_bf16", &embedding.Embedding(.bf16).kernel },
    .{ "rope_f32", &rope.kernel },
    .{ "store_kv_f32", &paged_kv.StoreKv(.f32).kernel },
    .{ "store_kv_f16", &paged_kv.StoreKv(.f16).kernel },
    .{ "store_kv_bf16", &paged_kv.StoreKv(.bf16).kernel },
    .{ "attention_f32", &attention.Attention(.f32).kernel },
    .{ "attention_f16", &attention.Attention(.f16).kernel },
    .{ "attention_bf16", &attention.Attention(.bf16).kernel },
    .{ "attention_wide_f32", &attention.AttentionWide(.f32).kernel },
    .{ "attention_wide_f16", &attention.AttentionWide(.f16).kernel },
    .{ "attention_wide_bf16", &attention.AttentionWide(.bf16).kernel },
    .{ "attention_combine_f32", &attention.combine },
    .{ "attention_prefill_f32", &attention_prefill.AttentionPrefill(.f32).kernel },
    .{ "attention_prefill_f16", &attention_prefill.AttentionPrefill(.f16).kernel },
    .{ "attention_prefill_bf16", &attention_prefill.AttentionPrefill(.bf16).kernel },
    .{ "moe_route_f32", &moe.MoeRoute(.f32).kernel },
    .{ "moe_route_f16", &moe.MoeRoute(.f16).kernel },
    .{ "moe_route_bf16", &moe.MoeRoute(.bf16).kernel },
    .{ "scatter_add_rows_f32", &moe.scatterAddRows },
    .{ "swiglu_f32", &elementwise.swiglu },
    .{ "add_f32", &elementwise.add },
    .{ "softmax_f32", &softmax.kernel },
    .{ "matmul_heads_f32", &heads.HeadsMatmul(.f32).normal },
    .{ "matmul_heads_f16", &heads.HeadsMatmul(.f16).normal },
    .{ "matmul_heads_bf16", &heads.HeadsMatmul(.bf16).normal },
    .{ "matmul_heads_t_f32", &heads.HeadsMatmul(.f32).transposed },
    .{ "matmul_heads_t_f16", &heads.HeadsMatmul(.f16).transposed },
    .{ "matmul_heads_t_bf16", &heads.HeadsMatmul(.bf16).transposed },
    .{ "copy_rows_f32", &copy_rows.kernel },
};
