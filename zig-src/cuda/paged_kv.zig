//! The paged KV cache (backend.ts `PagedKv`): where a position's key and value rows live, and
//! the kernel that stores new rows. The pool is cut into pages of `page_size` token slots; slot
//! s of page p holds one row of `width` elements (every KV head of one position) at element
//! (p * page_size + s) * width of the layer's K (or V) base. Position j lives in page
//! page_table[j / page_size], slot j % page_size.
//!
//! store_kv: grid (T, 2), block 256: block (t, 0) converts row t of k into position pos0 + t of
//! the K pages, block (t, 1) the same row of v. f32 → f16/bf16 rounds to nearest even, as the
//! CPU reference does (PTX cvt.rn, no saturation: out-of-range values become ±inf).
const c = @import("common.zig");
const DType = @import("../dtype.zig").DType;

/// Token slot (p * page_size + s) of position j: one page-table read and one division.
/// A slot index can exceed 32 bits only in a pool of more than 4G token slots; it is kept in
/// 64 bits anyway, since row offsets are multiplied from it.
pub inline fn slotOf(page_table: c.ConstPtr(i32), page_size: u32, j: u32) usize {
    const page: u32 = @bitCast(page_table[j / page_size]);
    return @as(usize, page) * page_size + j % page_size;
}

pub fn StoreKv(comptime dt: DType) type {
    const E = c.Elem(dt);
    return struct {
        pub fn kernel(
            k_pages: c.Ptr(E),
            v_pages: c.Ptr(E),
            page_table: c.ConstPtr(i32),
            k: c.ConstPtr(f32),
            v: c.ConstPtr(f32),
            pos0: u32,
            width: u32,
            page_size: u32,
        ) callconv(.kernel) void {
            const t = c.blockIdx(0);
            const n: usize = width;
            const is_v = c.blockIdx(1) == 1;
            const src = (if (is_v) v else k) + @as(usize, t) * n;
            const dst = (if (is_v) v_pages else k_pages) + slotOf(page_table, page_size, pos0 + t) * n;
            // Groups of four: every row starts on four elements when width is a multiple of 4
            // (uniform across the grid, like the alignment of the four bases).
            const vec = n % 4 == 0 and c.isAligned16(k) and c.isAligned16(v) and
                c.isAligned(k_pages, 4 * @sizeOf(E)) and c.isAligned(v_pages, 4 * @sizeOf(E));
            if (vec) {
                var i: usize = c.threadIdx() * 4;
                while (i < n) : (i += c.blockDim() * 4) {
                    const x = c.loadF32(4, src + i);
                    if (dt == .f32) {
                        @as(*addrspace(.global) align(16) @Vector(4, f32), @ptrCast(@alignCast(dst + i))).* = x;
                    } else {
                        const words: @Vector(2, u32) = .{ c.pack2(dt, x[0], x[1]), c.pack2(dt, x[2], x[3]) };
                        @as(*addrspace(.global) align(8) @Vector(2, u32), @ptrCast(@alignCast(dst + i))).* = words;
                    }
                }
            } else {
                var i: usize = c.threadIdx();
                while (i < n) : (i += c.blockDim()) {
                    dst[i] = if (dt == .f32) src[i] else @truncate(c.pack2(dt, src[i], 0));
                }
            }
        }
    };
}
