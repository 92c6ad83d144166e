//! The paged KV layout (src/backend/backend.ts `PagedKv`, vLLM's PagedAttention): the pool is cut
//! into pages of `page_size` token rows; position j of a sequence is slot j % page_size of page
//! table[j / page_size], so its row starts at base + (table[j / page_size]·page_size +
//! j % page_size)·row_bytes, for keys and values alike. The store (kv_store.zig) and attention
//! (attention.zig) find rows only through this file.
const std = @import("std");
const DType = @import("../dtype.zig").DType;

pub const Paged = struct {
    /// Base addresses of this layer's key and value pools.
    k: usize,
    v: usize,
    /// The sequence's page ids, one per page_size positions.
    table: [*]const i32,
    page_size: usize,
    dtype: DType,
};

/// True when every page holding positions lo .. hi-1 has an id ≥ 0. (The pool's size is not
/// known here, so larger ids cannot be checked; the caller's KV pool owns that invariant.)
pub fn pagesValid(p: Paged, lo: usize, hi: usize) bool {
    if (hi <= lo) return true;
    for (p.table[lo / p.page_size .. (hi - 1) / p.page_size + 1]) |id| if (id < 0) return false;
    return true;
}

/// Byte offsets of the rows of consecutive positions: a division at the start, then one table
/// read per page boundary. The next page's id is read only when a row of it is asked for, so a
/// walk that ends on a page boundary never reads past the table.
pub const Cursor = struct {
    table: [*]const i32,
    page_size: usize,
    row_bytes: usize,
    page: usize,
    slot: usize,
    page_base: usize,

    pub fn init(p: Paged, row_bytes: usize, j: usize) Cursor {
        const page = j / p.page_size;
        return .{
            .table = p.table, .page_size = p.page_size, .row_bytes = row_bytes,
            .page = page, .slot = j % p.page_size, .page_base = pageBase(p.table, page, p.page_size, row_bytes),
        };
    }

    /// Offset of the current position's row; moves to the next position.
    pub inline fn next(c: *Cursor) usize {
        if (c.slot == c.page_size) {
            c.page += 1;
            c.slot = 0;
            c.page_base = pageBase(c.table, c.page, c.page_size, c.row_bytes);
        }
        defer c.slot += 1;
        return c.page_base + c.slot * c.row_bytes;
    }
};

inline fn pageBase(table: [*]const i32, page: usize, page_size: usize, row_bytes: usize) usize {
    const id: usize = @intCast(table[page]); // pagesValid checked the sign
    return id * page_size * row_bytes;
}

test "cursor offsets follow the page table across page boundaries" {
    const table = [_]i32{ 3, 0, 2 };
    const p = Paged{ .k = 0, .v = 0, .table = &table, .page_size = 2, .dtype = .f32 };
    var c = Cursor.init(p, 10, 1);
    // positions 1..5 → (page 3, slot 1), (0, 0), (0, 1), (2, 0), (2, 1)
    for ([_]usize{ 70, 0, 10, 40, 50 }) |want| try std.testing.expectEqual(want, c.next());
    try std.testing.expect(pagesValid(p, 0, 6));
    const bad = [_]i32{ 0, -1 };
    try std.testing.expect(!pagesValid(.{ .k = 0, .v = 0, .table = &bad, .page_size = 4, .dtype = .f16 }, 0, 5));
    try std.testing.expect(pagesValid(.{ .k = 0, .v = 0, .table = &bad, .page_size = 4, .dtype = .f16 }, 1, 4));
}
