//! The CPU backend's C ABI: flat functions over addresses (usize), sizes and codes, as bun:ffi
//! calls them. lib.zig exports each one under its own name. Ops that can reject their arguments
//! return a Status; the TypeScript side turns a non-zero status into a NativeError.
const std = @import("std");
const DType = @import("../dtype.zig").DType;
const pool = @import("thread_pool.zig");
const memory = @import("memory.zig");
const matmul = @import("matmul.zig");
const norm = @import("norm.zig");
const rope = @import("rope.zig");
const attention = @import("attention.zig");
const kv_pages = @import("kv_pages.zig");
const kv_store = @import("kv_store.zig");
const moe = @import("moe.zig");
const elementwise = @import("elementwise.zig");
const softmax = @import("softmax.zig");
const embedding = @import("embedding.zig");
const quant = @import("quant_ops.zig");
const int_dot = @import("int_dot.zig");
const bnb_encode = @import("quant_bnb_encode.zig");
const reader = @import("reader.zig");
const heads_matmul = @import("heads_matmul.zig");
const copy_rows = @import("copy_rows.zig");

pub const Status = enum(i32) {
    ok = 0,
    bad_dtype = 1,
    bad_shape = 2,
    bad_index = 3,
    out_of_memory = 4,
};

fn dtypeOf(code: u32) ?DType {
    return std.meta.intToEnum(DType, code) catch null;
}

/// Norm weights and biases are float vectors (GGUF stores them as f32): a quantized dtype
/// there is refused rather than decoded.
fn floatDtypeOf(code: u32) ?DType {
    const dt = dtypeOf(code) orelse return null;
    return if (dt.isQuant()) null else dt;
}

fn quantStatus(e: quant.Error) Status {
    return switch (e) {
        error.BadShape => .bad_shape,
        error.BadIndex => .bad_index,
        error.OutOfMemory => .out_of_memory,
    };
}

fn f32Ptr(addr: usize) [*]f32 {
    return @ptrFromInt(addr);
}

/// Starts the thread pool (0 = one thread per CPU); returns the threads ops will use.
pub fn airllm_init(threads: u32) callconv(.c) u32 {
    return @intCast(pool.init(threads));
}

pub fn airllm_shutdown() callconv(.c) void {
    pool.deinit();
}

pub fn airllm_alloc(bytes: u64) callconv(.c) ?*anyopaque {
    return memory.alloc(bytes);
}

pub fn airllm_free(addr: ?*anyopaque) callconv(.c) void {
    memory.free(addr);
}

pub fn airllm_memcpy(dst: usize, src: usize, bytes: u64) callconv(.c) void {
    if (bytes == 0) return;
    memory.copy(@ptrFromInt(dst), @ptrFromInt(src), bytes);
}

pub fn airllm_embedding(out: usize, table: usize, dtype: u32, rows: u32, cols: u32, ids: usize, n_ids: u32) callconv(.c) Status {
    const dt = dtypeOf(dtype) orelse return .bad_dtype;
    if (dt.isQuant()) {
        quant.embedding(f32Ptr(out), table, dt, rows, cols, @ptrFromInt(ids), n_ids) catch |e| return quantStatus(e);
        return .ok;
    }
    if (n_ids == 0) return .ok;
    return if (embedding.embedding(f32Ptr(out), table, dt, rows, cols, @ptrFromInt(ids), n_ids)) .ok else .bad_index;
}

/// Output row t starts at out + t·ld floats (ld ≥ rows). `flags` bit 0: exact activations
/// (quantized weights multiply x in f32 instead of x quantized to int8).
pub fn airllm_matmul(out: usize, x: usize, w: usize, dtype: u32, rows: u32, cols: u32, T: u32, ld: u32, flags: u32) callconv(.c) Status {
    const dt = dtypeOf(dtype) orelse return .bad_dtype;
    if (ld < rows) return .bad_shape;
    if (dt.isQuant()) {
        quant.matmul(f32Ptr(out), ld, f32Ptr(x), w, dt, rows, cols, T, flags & 1 != 0) catch |e| return quantStatus(e);
        return .ok;
    }
    matmul.matmul(f32Ptr(out), ld, f32Ptr(x), w, dt, rows, cols, T);
    return .ok;
}

/// The integer dot-product path of the quantized-activation matmul (int_dot.zig: 0 portable,
/// 1 AVX2, 2 AVX-VNNI, 3 AVX512-VNNI). isa ≥ 0 forces that path first (tests); -1 when this
/// build or CPU cannot run it.
pub fn airllm_int_dot_isa(isa: i32) callconv(.c) i32 {
    if (isa >= 0) {
        const want = std.meta.intToEnum(int_dot.Isa, isa) catch return -1;
        if (!int_dot.force(want)) return -1;
    }
    return @intCast(@intFromEnum(int_dot.current()));
}

/// dst[0..n] = f32 weights of n quantized weights at src (bit-exact to ggml's dequantize_row_*).
pub fn airllm_dequantize(dtype: u32, src: usize, dst: usize, n: u64) callconv(.c) Status {
    const dt = dtypeOf(dtype) orelse return .bad_dtype;
    if (!dt.isQuant()) return .bad_dtype;
    return if (quant.dequantize(dt, src, f32Ptr(dst), n)) .ok else .bad_shape;
}

/// Quantize n weights of src_dtype (f32/f16/bf16) at src into dst_dtype (nf4 / q8_block) at dst.
/// Returns -1 on success, the index of the first NaN/Inf weight, or -2 for a bad dtype.
pub fn airllm_quantize(dst_dtype: u32, src_dtype: u32, src: usize, dst: usize, n: u64) callconv(.c) i64 {
    const dt = dtypeOf(dst_dtype) orelse return -2;
    const sdt = floatDtypeOf(src_dtype) orelse return -2;
    if (!dt.isBnb()) return -2;
    const bad = bnb_encode.quantize(dt, sdt, src, @ptrFromInt(dst), n) orelse return -1;
    return @intCast(bad);
}

pub fn airllm_add_bias(x: usize, bias: usize, dtype: u32, n: u32, T: u32) callconv(.c) Status {
    const dt = floatDtypeOf(dtype) orelse return .bad_dtype;
    elementwise.addBias(f32Ptr(x), bias, dt, n, T);
    return .ok;
}

pub fn airllm_rmsnorm(out: usize, x: usize, w: usize, dtype: u32, n: u32, T: u32, eps: f32) callconv(.c) Status {
    const dt = floatDtypeOf(dtype) orelse return .bad_dtype;
    norm.rmsnorm(f32Ptr(out), f32Ptr(x), w, dt, n, T, eps);
    return .ok;
}

/// Rotates the first rot_dim elements of each head (rot_dim ≤ head_dim, even).
pub fn airllm_rope(x: usize, T: u32, n_heads: u32, head_dim: u32, rot_dim: u32, pos0: u32, inv_freq: usize, attn_factor: f32, interleaved: u32) callconv(.c) Status {
    return if (rope.rope(f32Ptr(x), T, n_heads, head_dim, rot_dim, pos0, f32Ptr(inv_freq), attn_factor, interleaved != 0)) .ok else .bad_shape;
}

/// The paged cache of one layer (kv_pages.zig): page_table is a host array of int32 page ids.
fn pagedKv(k: usize, v: usize, page_table: usize, page_size: u32, kv_dtype: u32) ?kv_pages.Paged {
    const dt = floatDtypeOf(kv_dtype) orelse return null;
    return .{ .k = k, .v = v, .table = @ptrFromInt(page_table), .page_size = page_size, .dtype = dt };
}

/// Positions pos0 .. pos0+T-1 of the paged cache ← k[T, width], v[T, width] (f32), converted.
pub fn airllm_store_kv(k_pool: usize, v_pool: usize, page_table: usize, page_size: u32, kv_dtype: u32, k: usize, v: usize, pos0: u32, T: u32, width: u32) callconv(.c) Status {
    const kv = pagedKv(k_pool, v_pool, page_table, page_size, kv_dtype) orelse return .bad_dtype;
    kv_store.store(kv, f32Ptr(k), f32Ptr(v), pos0, T, width) catch |e| return switch (e) {
        error.BadShape => .bad_shape,
        error.BadIndex => .bad_index,
    };
    return .ok;
}

/// alibi: address of f32 slopes [n_heads], or 0 for none.
pub fn airllm_attention(out: usize, q: usize, k: usize, v: usize, page_table: usize, page_size: u32, kv_dtype: u32, T: u32, n_heads: u32, n_kv_heads: u32, head_dim: u32, pos0: u32, window: u32, scale: f32, alibi: usize, tree: usize) callconv(.c) Status {
    const kv = pagedKv(k, v, page_table, page_size, kv_dtype) orelse return .bad_dtype;
    const shape = attention.Shape{
        .T = T, .n_heads = n_heads, .n_kv_heads = n_kv_heads, .head_dim = head_dim,
        .pos0 = pos0, .window = window, .scale = scale,
        .alibi = if (alibi == 0) null else @ptrFromInt(alibi),
        .tree = if (tree == 0) null else .{ .rows = @ptrFromInt(tree), .T = T },
    };
    attention.attention(f32Ptr(out), f32Ptr(q), kv, shape) catch |e| return switch (e) {
        error.BadShape => .bad_shape,
        error.BadIndex => .bad_index,
        error.OutOfMemory => .out_of_memory,
    };
    return .ok;
}

pub fn airllm_swiglu(out: usize, gate: usize, up: usize, n: u64) callconv(.c) void {
    elementwise.swiglu(f32Ptr(out), f32Ptr(gate), f32Ptr(up), n);
}

pub fn airllm_add(out: usize, a: usize, b: usize, n: u64) callconv(.c) void {
    elementwise.add(f32Ptr(out), f32Ptr(a), f32Ptr(b), n);
}

/// x[t, :] *= scales[t] (f32 [T]) for rows of n floats.
pub fn airllm_scale_rows(x: usize, scales: usize, n: u32, T: u32) callconv(.c) void {
    elementwise.scaleRows(f32Ptr(x), f32Ptr(scales), n, T);
}

/// x[t, :] *= scales (f32/f16/bf16 [n]) for t < T.
pub fn airllm_scale_columns(x: usize, scales: usize, dtype: u32, n: u32, T: u32) callconv(.c) Status {
    const dt = floatDtypeOf(dtype) orelse return .bad_dtype;
    elementwise.scaleColumns(f32Ptr(x), scales, dt, n, T);
    return .ok;
}

/// out[r] = L2 norm of row r of src[rows, cols] (f32/f16/bf16).
pub fn airllm_row_norms(out: usize, src: usize, dtype: u32, rows: u32, cols: u32) callconv(.c) Status {
    const dt = floatDtypeOf(dtype) orelse return .bad_dtype;
    norm.rowNorms(f32Ptr(out), src, dt, rows, cols);
    return .ok;
}

pub fn airllm_softmax(x: usize, rows: u32, n: u32) callconv(.c) void {
    softmax.softmax(f32Ptr(x), rows, n);
}

/// Routing of logits[N, experts] into ids[N, top_k] (i32) and weights[N, top_k] (moe.zig).
/// scoring: 0 softmax, 1 sigmoid; bias: address of f32/f16/bf16 [experts] or 0; groups: 0 for
/// none; group_rule: 0 max, 1 top2sum.
pub fn airllm_moe_route(ids: usize, weights: usize, logits: usize, N: u32, experts: u32, top_k: u32, scoring: u32, normalize: u32, scale: f32, bias: usize, bias_dtype: u32, groups: u32, top_groups: u32, group_rule: u32) callconv(.c) Status {
    const r = moe.Route{
        .experts = experts, .top_k = top_k,
        .scoring = std.meta.intToEnum(moe.Scoring, scoring) catch return .bad_shape,
        .normalize = normalize != 0, .scale = scale,
        .bias = bias, .bias_dtype = (if (bias == 0) .f32 else floatDtypeOf(bias_dtype)) orelse return .bad_dtype,
        .groups = groups, .top_groups = top_groups,
        .rule = std.meta.intToEnum(moe.GroupRule, group_rule) catch return .bad_shape,
    };
    moe.route(@ptrFromInt(ids), f32Ptr(weights), f32Ptr(logits), N, r) catch |e| return moeStatus(e);
    return .ok;
}

/// out[i, :] = x[rows[i], :] for i < n (rows: host i32 array).
pub fn airllm_gather_rows(out: usize, x: usize, rows: usize, n: u32, width: u32) callconv(.c) Status {
    moe.gatherRows(f32Ptr(out), f32Ptr(x), @ptrFromInt(rows), n, width) catch |e| return moeStatus(e);
    return .ok;
}

/// x[rows[i], :] += scales[i] · src[i, :] for i < n (rows, scales: host i32 / f32 arrays).
pub fn airllm_scatter_add_rows(x: usize, src: usize, rows: usize, scales: usize, n: u32, width: u32) callconv(.c) Status {
    moe.scatterAddRows(f32Ptr(x), f32Ptr(src), @ptrFromInt(rows), f32Ptr(scales), n, width) catch |e| return moeStatus(e);
    return .ok;
}

/// Per-head products against head blocks of w (heads_matmul.zig), strides in floats.
pub fn airllm_matmul_heads(
    out: usize, x: usize, w: usize, dtype: u32, T: u32, heads: u32, rows: u32, cols: u32, w_head_rows: u32,
    transposed: u32, x_stride: u32, x_head: u32, out_stride: u32, out_head: u32,
) callconv(.c) Status {
    const dt = dtypeOf(dtype) orelse return .bad_dtype;
    heads_matmul.matmulHeads(f32Ptr(out), f32Ptr(x), w, dt, .{
        .T = T, .heads = heads, .rows = rows, .cols = cols, .w_head_rows = w_head_rows, .transposed = transposed != 0,
        .x_stride = x_stride, .x_head = x_head, .out_stride = out_stride, .out_head = out_head,
    }) catch return .bad_shape;
    return .ok;
}

/// dst[i·dstStride + j] = src[i·srcStride + j] for i < rows, j < width (f32; copy_rows.zig).
pub fn airllm_copy_rows(dst: usize, dst_stride: u32, src: usize, src_stride: u32, rows: u32, width: u32) callconv(.c) Status {
    copy_rows.copyRows(f32Ptr(dst), dst_stride, f32Ptr(src), src_stride, rows, width) catch return .bad_shape;
    return .ok;
}

fn moeStatus(e: moe.Error) Status {
    return switch (e) {
        error.BadShape => .bad_shape,
        error.BadIndex => .bad_index,
    };
}

/// (threads) → a read-ahead pool (zig-src/cpu/reader.zig), null when no thread could start.
pub fn airllm_reader_create(threads: u32) callconv(.c) ?*reader.Reader {
    return reader.Reader.create(threads);
}

pub fn airllm_reader_destroy(r: *reader.Reader) callconv(.c) void {
    r.destroy();
}

/// (reader, fd, offset, bytes, dst) → ticket; 0 when too many reads are in flight.
pub fn airllm_reader_submit(r: *reader.Reader, fd: i32, offset: u64, bytes: u64, dst: usize) callconv(.c) u64 {
    return r.submit(fd, offset, bytes, dst);
}

/// Blocks until done: 0, an errno, or -1 for an unknown ticket.
pub fn airllm_reader_wait(r: *reader.Reader, ticket: u64) callconv(.c) i32 {
    return r.wait(ticket);
}

/// (reader, out[2]) ← bytes read so far, nanoseconds during which reads were running.
pub fn airllm_reader_stats(r: *reader.Reader, out: *[2]u64) callconv(.c) void {
    r.stats(out);
}

/// Like wait without blocking: -2 while the read runs.
pub fn airllm_reader_poll(r: *reader.Reader, ticket: u64) callconv(.c) i32 {
    return r.poll(ticket);
}

test {
    _ = @import("reader.zig");
    _ = @import("thread_pool.zig");
    _ = @import("convert.zig");
    _ = @import("matmul.zig");
    _ = @import("kv_pages.zig");
    _ = @import("kv_store.zig");
    _ = @import("moe.zig");
    _ = @import("heads_matmul.zig");
    _ = @import("copy_rows.zig");
    _ = @import("int_dot.zig");
}
