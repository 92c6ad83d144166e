//! The only file with exports. Compiled for the host it is the CPU backend (libairllm.so,
//! loaded with bun:ffi); compiled for nvptx64-cuda it is the PTX module of the CUDA backend.
//! Every export is a flat C ABI function; op implementations live one family per file.
const builtin = @import("builtin");

const is_ptx = builtin.cpu.arch == .nvptx64;

comptime {
    if (is_ptx) {
        // ---- CUDA kernels (nvptx64) ----
        // Kernels are `.entry` functions of the PTX module, loaded by name with
        // cuModuleGetFunction (src/backend/cuda/module.ts).
        const cuda_kernels = @import("cuda/kernels.zig");
        for (cuda_kernels.list) |k| @export(k[1], .{ .name = k[0] });
        cuda_kernels.exportQuant();
    } else {
        // ---- CPU backend (host) ----
        const cpu = @import("cpu/api.zig");
        @export(&cpu.airllm_init, .{ .name = "airllm_init" });
        @export(&cpu.airllm_shutdown, .{ .name = "airllm_shutdown" });
        @export(&cpu.airllm_alloc, .{ .name = "airllm_alloc" });
        @export(&cpu.airllm_free, .{ .name = "airllm_free" });
        @export(&cpu.airllm_memcpy, .{ .name = "airllm_memcpy" });
        @export(&cpu.airllm_embedding, .{ .name = "airllm_embedding" });
        @export(&cpu.airllm_matmul, .{ .name = "airllm_matmul" });
        @export(&cpu.airllm_int_dot_isa, .{ .name = "airllm_int_dot_isa" });
        @export(&cpu.airllm_dequantize, .{ .name = "airllm_dequantize" });
        @export(&cpu.airllm_quantize, .{ .name = "airllm_quantize" });
        @export(&cpu.airllm_add_bias, .{ .name = "airllm_add_bias" });
        @export(&cpu.airllm_rmsnorm, .{ .name = "airllm_rmsnorm" });
        @export(&cpu.airllm_rope, .{ .name = "airllm_rope" });
        @export(&cpu.airllm_store_kv, .{ .name = "airllm_store_kv" });
        @export(&cpu.airllm_attention, .{ .name = "airllm_attention" });
        @export(&cpu.airllm_swiglu, .{ .name = "airllm_swiglu" });
        @export(&cpu.airllm_add, .{ .name = "airllm_add" });
        @export(&cpu.airllm_softmax, .{ .name = "airllm_softmax" });
        @export(&cpu.airllm_scale_rows, .{ .name = "airllm_scale_rows" });
        @export(&cpu.airllm_scale_columns, .{ .name = "airllm_scale_columns" });
        @export(&cpu.airllm_row_norms, .{ .name = "airllm_row_norms" });
        @export(&cpu.airllm_moe_route, .{ .name = "airllm_moe_route" });
        @export(&cpu.airllm_gather_rows, .{ .name = "airllm_gather_rows" });
        @export(&cpu.airllm_scatter_add_rows, .{ .name = "airllm_scatter_add_rows" });
        @export(&cpu.airllm_matmul_heads, .{ .name = "airllm_matmul_heads" });
        @export(&cpu.airllm_copy_rows, .{ .name = "airllm_copy_rows" });
        @export(&cpu.airllm_reader_create, .{ .name = "airllm_reader_create" });
        @export(&cpu.airllm_reader_destroy, .{ .name = "airllm_reader_destroy" });
        @export(&cpu.airllm_reader_submit, .{ .name = "airllm_reader_submit" });
        @export(&cpu.airllm_reader_wait, .{ .name = "airllm_reader_wait" });
        @export(&cpu.airllm_reader_poll, .{ .name = "airllm_reader_poll" });
        @export(&cpu.airllm_reader_stats, .{ .name = "airllm_reader_stats" });
    }
}
