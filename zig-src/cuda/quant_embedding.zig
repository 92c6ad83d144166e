//! Embedding gather from a GGUF block-quantized table: out[t, :] = dequantized table[ids[t], :],
//! bit-exact to the CPU backend (same decoding code, zig-src/cpu/quant_*.zig). The ids were
//! checked against the table's rows on the host before launch.
//!
//! Launch: grid (T, ceil(cols / 8 / 256)), block 256; each thread decodes one group of 8 weights.
const c = @import("common.zig");
const DType = @import("../dtype.zig").DType;
const kq = @import("../cpu/quant_k.zig");

pub fn QuantEmbedding(comptime dt: DType) type {
    const G = dt.blockElems() / 8;
    const BB = dt.blockBytes();
    return struct {
        pub fn kernel(out: c.Ptr(f32), table: c.ConstPtr(u8), ids: c.ConstPtr(i32), cols: u32) callconv(.kernel) void {
            const g = @as(usize, c.blockIdx(1)) * c.blockDim() + c.threadIdx();
            if (g >= cols / 8) return;
            const t = c.blockIdx(0);
            const id: usize = @intCast(ids[t]);
            const row = table + id * (cols / dt.blockElems() * BB);
            const v = kq.dequant8Any(dt, row + (g / G) * BB, g % G);
            const o = out + @as(usize, t) * cols + 8 * g;
            inline for (0..8) |e| o[e] = v[e];
        }
    };
}
