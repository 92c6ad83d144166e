//! Host memory for the CPU backend: 64-byte aligned blocks (a cache line, and enough for any
//! vector load) from libc, and a memcpy that uses every core for large copies, since one core
//! alone cannot saturate the memory bus.
const std = @import("std");
const pool = @import("thread_pool.zig");

pub const alignment = 64;

pub fn alloc(bytes: usize) ?*anyopaque {
    var p: ?*anyopaque = null;
    if (std.c.posix_memalign(&p, alignment, @max(bytes, 1)) != 0) return null;
    return p;
}

pub fn free(p: ?*anyopaque) void {
    std.c.free(p);
}

const Copy = struct { dst: [*]u8, src: [*]const u8 };

fn copyRange(c: *const Copy, lo: usize, hi: usize) void {
    @memcpy(c.dst[lo..hi], c.src[lo..hi]);
}

/// Non-overlapping copy of n bytes.
pub fn copy(dst: [*]u8, src: [*]const u8, n: usize) void {
    pool.forRange(n, 1 << 20, alignment, &Copy{ .dst = dst, .src = src }, copyRange);
}
