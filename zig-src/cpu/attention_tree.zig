//! The tree attention mask (SpecInfer, SpecExec, Sequoia): a pass verifies a tree of draft tokens,
//! its T rows stored at slots pos0 .. pos0+T-1 of the cache in depth-first preorder (row 0 the
//! root, the sequence's last token). Row t sits at position pos0 + depth[t] and sees every key
//! before pos0 plus its own ancestors in the tree (itself included), nothing of its siblings'
//! branches. In preorder the subtree of row r is the rows r .. end[r]-1, so row r is an ancestor of
//! row t exactly when r <= t < end[r]: one comparison per key, and a chain (end[r] = T for every r)
//! is plain causal attention.
//!
//! Layout (int32 [2T], host memory): depth[0..T) with depth[0] = 0, then end[0..T) with end[0] = T.
const std = @import("std");

pub const Tree = struct {
    rows: [*]const i32,
    T: usize,

    fn depth(self: Tree, r: usize) usize {
        return @intCast(self.rows[r]);
    }

    fn end(self: Tree, r: usize) usize {
        return @intCast(self.rows[self.T + r]);
    }

    /// Position of query row t.
    pub fn queryPosition(self: Tree, pos0: usize, t: usize) usize {
        return pos0 + self.depth(t);
    }

    /// Position of the key in slot j (slots before pos0 are the sequence's own).
    pub fn keyPosition(self: Tree, pos0: usize, j: usize) usize {
        return if (j < pos0) j else pos0 + self.depth(j - pos0);
    }

    /// Whether query row t sees the tree key in slot j >= pos0 (an ancestor within the window).
    fn visible(self: Tree, pos0: usize, window: usize, t: usize, j: usize) bool {
        const r = j - pos0;
        if (!(r <= t and t < self.end(r))) return false;
        return window == 0 or self.depth(t) - self.depth(r) < window;
    }

    /// Sets to -inf the scores (scores[h·stride + u] for nh heads) of the keys j0 .. j0+nj that
    /// query row t may not see.
    pub fn mask(self: Tree, pos0: usize, window: usize, t: usize, j0: usize, nj: usize, nh: usize, stride: usize, scores: [*]f32) void {
        for (0..nj) |u| {
            const j = j0 + u;
            if (j < pos0 or self.visible(pos0, window, t, j)) continue;
            for (0..nh) |h| scores[h * stride + u] = -std.math.inf(f32);
        }
    }
};
