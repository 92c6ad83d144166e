//! Rotary position embedding in place, on the first `rot_dim` elements of each head (all of it
//! usually; half of it in ChatGLM, a `rotary_pct` of it in Qwen), the rest passing through.
//! Hugging Face rotate-half layout: element i pairs with i + rot_dim/2; interleaved layout (what
//! llama.cpp's GGUF conversion stores, and ChatGLM's own): element 2i pairs with 2i + 1. Angles
//! follow HF: the f32 product position * inv_freq, then cos/sin of that f32 angle, both scaled by
//! the attention factor.
const std = @import("std");
const pool = @import("thread_pool.zig");
const cv = @import("convert.zig");
const V = cv.V;
const lanes = cv.lanes;

pub const max_head_dim = 1024;

const Args = struct {
    x: [*]f32,
    n_heads: usize,
    head_dim: usize,
    rot_dim: usize,
    pos0: usize,
    inv_freq: [*]const f32,
    attn_factor: f32,
    interleaved: bool,
};

fn rows(a: *const Args, lo: usize, hi: usize) void {
    const half = a.rot_dim / 2;
    var cos: [max_head_dim / 2]f32 = undefined;
    var sin: [max_head_dim / 2]f32 = undefined;
    for (lo..hi) |t| {
        const pos: f32 = @floatFromInt(a.pos0 + t);
        for (0..half) |i| {
            // f64 trig of the f32 angle: correctly rounded even for angles of thousands of radians.
            const angle: f64 = pos * a.inv_freq[i];
            cos[i] = @as(f32, @floatCast(@cos(angle))) * a.attn_factor;
            sin[i] = @as(f32, @floatCast(@sin(angle))) * a.attn_factor;
        }
        if (a.interleaved) {
            for (0..a.n_heads) |h| {
                const x = a.x + (t * a.n_heads + h) * a.head_dim;
                for (0..half) |i| {
                    const v1 = x[2 * i];
                    const v2 = x[2 * i + 1];
                    x[2 * i] = v1 * cos[i] - v2 * sin[i];
                    x[2 * i + 1] = v2 * cos[i] + v1 * sin[i];
                }
            }
            continue;
        }
        for (0..a.n_heads) |h| {
            const x1 = a.x + (t * a.n_heads + h) * a.head_dim;
            const x2 = x1 + half;
            var i: usize = 0;
            while (i + lanes <= half) : (i += lanes) {
                const v1 = cv.loadF32(x1, i);
                const v2 = cv.loadF32(x2, i);
                const c = cv.loadF32(&cos, i);
                const s = cv.loadF32(&sin, i);
                cv.storeF32(x1, i, v1 * c - v2 * s);
                cv.storeF32(x2, i, v2 * c + v1 * s);
            }
            while (i < half) : (i += 1) {
                const v1 = x1[i];
                const v2 = x2[i];
                x1[i] = v1 * cos[i] - v2 * sin[i];
                x2[i] = v2 * cos[i] + v1 * sin[i];
            }
        }
    }
}

/// Returns false for a rotary dimension that is odd, above the head dimension or above max_head_dim.
pub fn rope(x: [*]f32, T: usize, n_heads: usize, head_dim: usize, rot_dim: usize, pos0: usize, inv_freq: [*]const f32, attn_factor: f32, interleaved: bool) bool {
    if (rot_dim % 2 != 0 or rot_dim > head_dim or rot_dim > max_head_dim) return false;
    if (rot_dim == 0 or n_heads == 0) return true;
    const a = Args{ .x = x, .n_heads = n_heads, .head_dim = head_dim, .rot_dim = rot_dim, .pos0 = pos0, .inv_freq = inv_freq, .attn_factor = attn_factor, .interleaved = interleaved };
    pool.forRange(T, @max(1, (1 << 14) / (n_heads * head_dim)), 1, &a, rows);
    return true;
}
