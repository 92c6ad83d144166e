//! Rotary embedding in place (see backend.ts `rope`) on the first rot_dim elements of each head,
//! the rest untouched: element i pairs with i + rot_dim/2 (Hugging Face rotate-half), or element
//! 2i with 2i + 1 when `interleaved` (llama.cpp's GGUF layout, and ChatGLM's); both are rotated
//! by angle = (pos0 + t) * invFreq[i], then scaled by attnFactor (HF folds it into cos and sin).
//!
//! Launch: grid (ceil(T * nHeads * rotDim/2 / 256)), block 256; one thread per pair, so the
//! in-place update has no races.
const c = @import("common.zig");

pub fn kernel(x: c.Ptr(f32), T: u32, n_heads: u32, head_dim: u32, rot_dim: u32, pos0: u32, inv_freq: c.ConstPtr(f32), attn_factor: f32, interleaved: u32) callconv(.kernel) void {
    const half: usize = rot_dim / 2;
    const idx = @as(usize, c.blockIdx(0)) * c.blockDim() + c.threadIdx();
    const per_token = @as(usize, n_heads) * half;
    if (idx >= @as(usize, T) * per_token) return;
    const t = idx / per_token;
    const h = (idx % per_token) / half;
    const i = idx % half;
    // The angle is formed in f32 exactly as the reference does: position times frequency.
    const pos: f32 = @floatFromInt(@as(usize, pos0) + t);
    const sc = c.sinCos(pos * inv_freq[i]);
    const s = sc[0] * attn_factor;
    const co = sc[1] * attn_factor;
    const base = t * n_heads * head_dim + h * head_dim;
    const a = if (interleaved != 0) base + 2 * i else base + i;
    const b = if (interleaved != 0) base + 2 * i + 1 else base + i + half;
    const x0 = x[a];
    const x1 = x[b];
    x[a] = x0 * co - x1 * s;
    x[b] = x1 * co + x0 * s;
}
