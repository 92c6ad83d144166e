//! The tables llama.cpp's i-quants decode through, built at compile time from their
//! definitions (the same code builds them for the CPU library and for the PTX module). Names
//! follow ggml (ggml-common.h), whose tables these equal entry for entry: test/iq-tables.test.ts
//! reads each back out of our dequantization and compares its sha256 with PyPI gguf's table
//! (test/fixtures/gen_gguf_quant_fixtures.py).
//!
//! Signs (ksigns_iq2xs). IQ2_XXS, IQ2_XS and IQ3_XXS store 7 sign bits per group of 8 weights;
//! the eighth is implied: the count of minus signs is even (ikawrakow, llama.cpp PR #4773). So
//! entry i (< 128) is i with bit 7 set when i has an odd number of bits.
//!
//! IQ4_NL values (kvalues_iq4nl, also IQ4_XS): the 16 levels ikawrakow fitted to the per-row
//! k-means clusters of real models (PR #5590). They are data, not a formula: written out below.
//!
//! Codebooks (grids). An entry is a point of 8 (IQ2, IQ1) or 4 (IQ3) coordinates, each a small
//! level index l, stored like ggml's quantizer indexes it (ggml-quants.c iq2xs_init_impl,
//! iq3xs_init_impl): index = Σ l_k << (bits·k). The codebook is a *subset* of a lattice shell:
//!   - IQ2_XXS/XS/S: l < 3, magnitudes 2l+1 ∈ {1, 3, 5}: with the even-minus-signs rule the points
//!     ±(2l+1)/2 lie on the half-integer coset of E8 exactly when the number of 3s (l = 1) is
//!     even (coordinate sum ≡ 0 mod 2). 3281 candidates.
//!   - IQ3_XXS: l < 8, magnitudes 2l+1 ≤ 15 whose sum is a multiple of 4, i.e. an even number of
//!     odd l (the "D4-lattice points" of PR #5196). 2048 candidates. IQ3_S (PR #5676) stores
//!     every sign and keeps no parity: all 4096.
//!   - IQ1_S/M (PR #5453, #6302): l < 3, levels −1, 0, 1; all 6561.
//! Which candidates are in the codebook is not a rule: ikawrakow kept the points most used when
//! quantizing a set of models (PR #5196: "determined by minimizing the distance to the full
//! possible D4 set that comes out from the quantization of a bunch of models"). That selection is
//! the one irreducible piece of data, kept here as a membership mask — one bit per candidate in
//! ascending index order, base64, 2.8 KB in all — transcribed from ggml's kgrid_* index lists
//! (reproduce with `gen_gguf_quant_fixtures.py --print-masks`). Entry n of a codebook is the n-th
//! candidate whose bit is set, since ggml's lists are sorted by index; its coordinates are then
//! mapped through the type's levels (ggml's dequantization values, not 2l+1 for IQ2/IQ3_XXS:
//! ikawrakow tuned them) into one byte each, byte k = coordinate k.
const std = @import("std");

/// ksigns_iq2xs: 7 stored sign bits plus the even-parity bit 7.
pub const ksigns: [128]u8 = blk: {
    var t: [128]u8 = undefined;
    for (&t, 0..) |*e, i| e.* = @as(u8, i) | (@as(u8, @popCount(@as(u7, i)) & 1) << 7);
    break :blk t;
};

/// kvalues_iq4nl (PR #5590).
pub const kvalues_iq4nl = [16]i8{ -127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113 };

/// Levels of IQ2_XXS/XS/S: l = 0, 1, 2 (magnitudes 1, 3, 5) decode to 8, 25, 43.
const levels_iq2 = [_]u8{ 0x08, 0x19, 0x2b };
/// IQ3_XXS: 8l + 4 (4 .. 52) and 62 for l = 7.
const levels_iq3xxs = [_]u8{ 0x04, 0x0c, 0x14, 0x1c, 0x24, 0x2c, 0x34, 0x3e };
/// IQ3_S: 2l + 1.
const levels_iq3s = [_]u8{ 1, 3, 5, 7, 9, 11, 13, 15 };
/// IQ1_S/M: −1, 0, 1 as two's-complement bytes.
const levels_iq1 = [_]u8{ 0xff, 0x00, 0x01 };

// Codebook membership masks (see the top of the file).
const mask_iq2xxs =
    \\f/akmSCmQAAgCAYIACAATJgFYYIsCAQwBMAAAYAAaYJmAAIgAAIAACAEAAAAYEIECFIgQYAIAQAAIQAAQIKCAAIAQABAAIBA
    \\AAAAABMgAAgABQAAABAAAAgAACYAATEAAEAEAAAMAAAAAJgAgQAACAACCAAAAAAACIAgAAAgAAAAAAAAABAAAMCkSRQmQIAA
    \\IAqACIAIAYAEAQAEBCAEAAAAAQAAAAAmQAEAAAIAQCEAAAACAAKkDAAgARAAAgAAAQAAAAgAAAAAGAABAAAAIAAAAQAgJAAg
    \\AAAACAAAAAIAAAAACRAAAYAAAAgAAIAAQAAABQAAAABgAAAgAAAAAAAAAAABAAAAAAAAAAAAAAAAmAACgAAgCAIAAAACAAAA
    \\YAoECAAgACAAQAACCBAAgAAAAAAAAQAAAAAQAAAAABIkAAAQgAAACAAAAAEAAAIIAQAAAAAQAAAAAAAAAAAAAEAAABAAAAAA
    \\AAAAACAAQAACAAEAAAAgAAAAAAAgAAAAAAAAAAAAAAAAAAAAAAIAAAIAAAAAAAAAAAAA
;
const mask_iq2xs =
    \\/9+/eRv+z5s0Ad6EKRAB/Jt3YQK8CRMiAJhAA4AA+FMmQYA4AQKABBAgAQBA4d+8iRPgTZgAwcAFCBAAwJuwQQKACRAAAIAg
    \\AAEAADMgCCAABQAAAgAAAAgAAP+ECRAgTIAEBAAEEAAgAJqAAQAACABCAEAQEAAAAJQhAAEEAgAAQBAAQQAAGsC/+VMmwJsw
    \\AQqIGRgAAIC3YQIEARMkAAAIEYAEAAAmQBEBAEIACQgACAAAAAC8SRMgAJgCAwAACAAEAAA4IQKEAJEAAIAEAEAAQAAiCIgA
    \\AAFAGAAAAAAAAAiACRBEEMAAAAAAAAAEAgABgQAAAAAgQAEAQAAAAAAABAAAEAAAIAAAACAAQAQAeBMnwAB8AUICABAgAIAB
    \\aQ4ECAggABAAAAggAAABQAICEAYgAgAAAAAAAgAkQhMgEBAAAQQAAQAAACCAAAoASQAAAEAAAAYAAAEAAAAAIAAAAgAQAAAA
    \\BAAEALAhAgAAAQCABABoAQQAAQIACACAAAAAAAAAAACAAAIICwAASAIAADAAADAAAAEB
;
const mask_iq2s =
    \\/9+/f1P/zfs2Z97EL1BF/Pv/59v8b//mTfgCbcIEeF//TRE4L9qECBBGQwCA4N+9f9fm//s3b8CWKQMmwPv2b96Ef/MmTIA2
    \\YQIEgN/iTRgAb8IEBCAkQCAAAN7XORIFzokzYQJE0BIAA/o2b8IEaBMmUAAwAQICAFAGTAAIcAIAAEAAggAgGMD/+3+mzfvz
    \\b96EedImDID/79+8Cf/mTZwAb8IECED2zZsgAd6ECRAITIAAAAC8f//mDfg3b8IEaBMmYADwb96ECfAmTIAAYAIFAADgTZgI
    \\AcAECAAAQEAAAAige9MmSIA3YQIEBBIgEAAQbcIECAAmQAQEAgIAAAAETAAABBAEgAAAAAAAAgCAeFvmRRmwb96ACVgHTAAA
    \\4F+8CRPgTZgAEcAEDAAAQBkwAQCIARCAAAAAAjAIEPvkTZgAZcBEAAAmQAAAgN6ECRAITIAAAFAEAAQEAJhAAQAADABQAAAA
    \\AAAACFBFTgAAEgAEIABAggYAGtAECAAQSEAAAAAAAAACAAAICAAAEAAACCAAGBYAQAAB
;
const mask_iq3xxs =
    \\txMCYDM1QRAXs5BAOQQAECCAhGAJICAAAEAABNAAAgEzcxgAEwMAADMRACADEQgIBQAQAAAFCBAEAAAAAAIBADMbAgA3EQAa
    \\k4NBAFEAAFAAQCAAAggBQAAAAACDAAQAMQMQJAMRDAATBCAgECAAAAAQCCAJAkAAQIAAAgAgAAGEwKAAAAAAQACBAQkIAAQA
    \\BAAQBAAEAhAAAAAANBAAACAAARAJCEAAQCAAIAIAIAAQCgAgAhAAAAAAEAAABAIAAAQMBAABAAGAAAAEAJAAAAAABAAEACAA
    \\ACAAAAIBAAAeICAAAAgBACAAJABBIAABAAEBAAMEAAAAEAAAAAAAAA==
;
const mask_iq3s =
    \\p1cjCKUKBZIXI4kiEAAiBKNJIhGkCgAJCCIFShAFgCIBiBIECQIAARQARQiiAEAIQAoAAgAEAAIVAEUIABEAABerBVIAUAIE
    \\SxECCQIFAEEBpBEECSABBJIJghECAAQBKBQACkQRAAACCQIFAAIAAAAAkQBQAAAACgUCIAIABAGrVYoFKgWAKQWJJBIEAgAA
    \\kgAKgQKIABIlAhQKBAFAAIIACSQCAAAkEAIEgAEIAAGFAAIAACACACACQAEIAQAABKoEKpQCCAIqEAoAAQABRAEEARQAAQAA
    \\AhGKAYogAAgIQgQCAAQRAAIFIAQQQAAIAEAAAAIAAAAKAAUgAAAAABEEkQQCAQABhAoEIQgiAAAKIQIIAYAEARAKBSIAAAAA
    \\BQAQgAEAAAKgAAIAAAAEAAAIABAAAAEAACEAAQgCAAAEEQQAkQRAECoEAgQAAAAEAQIIQQAIAACEAYAAEAIgCBIAAQRAAAAA
    \\AARAAAAKAAAAAAAABAAAABQABAAAAAAAACoACgAAAQABAIEAAAAQAAAEABAEIAQBARACAAEAAAAAACAACAAEAAkAABAAAAEA
    \\IAAAAAEAAAAACgAAAAAAAJEABUABEAQABAIQACgAAAASQQIBAAIAAAQAACQACAAAIggBAAABAAAAAAQABAAAAAQAAAIAAAAA
    \\AQAAAAAAAAA=
;
const mask_iq1s =
    \\VSUUhaACQlEIRTGohiCKohoIKiAUhVAUgiBERSUVBaACgiCIGAAIgqADKqCIu6oKkKoLACIACqqMgqAIQFEIRSGIgFAUQlEI
    \\ijAImKAIgCoIRSEUhSBIQlUIRQEswqAgiiYAKiSoqqII4q8ICCgoAKACQiiqKCCogCAKmwi5uqggyq6Joq6qOnzr6rq7gg64
    \\IrrK0w6SAiIAIiCoiroKggIIACpK4KI7IiArogCBQIGqiigIIgEUhVAVgiAJRSFUhaAIAiOoOiCEgiBUQlEIoiAIlVAUAioI
    \\uKiCgKBIAiAIgqJoogIoqyoIhSAIgjAIRUAARSEUhaAAQlEARQEpggCKgioIoTAUBVAUgigIRSEUhSACAiCqKgAgErGKriio
    \\uqGqqHAAggoIAigiAoQAggBIgKDqsCqqwiCLuiLq2qeLi26okrAqqnKLikQMKiBIhEAoiioIqiDIzKIioq+aoOioAgACACqo
    \\iAAggKCLoqIouqCAgjIKur64uv7roqArogiKCijqogChMgIM+qTq3u8rqC6Nvn7r+vd/v+Z9ut5p+yf/vyb6EunhiiIQqr4O
    \\hKoIsqgLgq7/uiTpg4AEYixo8qgKpCsAAioICOKqEgACgioKpiDJgomQgigAogCMgBMAgggIAGyKqqq7Aqa+iqDKAoBrly7Q
    \\sukQghAuqt4oFdGlBAAKggCKgiAIAaEggqo5uiIyhKAJgBgAiqJiAoEURFEARSGsglAUQlEIqiAoqocKEioIRSEUBaAIQlEI
    \\RQEgAqBAoiIAiAAIoghqim64qqqAACAKguLIIiEIRFAUQlEJiiAVhVAUhgoIqioqgAAKQlEIRSGoAFAUQlEI4iCIggoYgioI
    \\qqKqirCLAgoqqiAogoCqCigIKACpiAIioL4LKLgIirpLsq7/uqT4rqogUihotqAw5oAKAigIImpigCAKAqqqK6rqoqmgoggI
    \\ECCgiiIAgg4ARSEUhaAKQFEIRSGpBgBKqgIIpQAQDUQUgigIRSEUBQAIgoKs8iAAAACqCigKuiDqogIAgkgJKOkUABFLRVEA
    \\RQGoAlAUQlEIiCQIiCgKQAgARQEUBaACQFEIRQE=
;

/// The `entries` codebook points among the candidates of `coords` coordinates with level indices
/// < levels.len (`parity`: an even count of odd indices), as words of one byte per coordinate.
fn codebook(comptime Word: type, comptime entries: usize, comptime levels: []const u8, comptime parity: bool, comptime mask_b64: []const u8) [entries]Word {
    @setEvalBranchQuota(2_000_000);
    const coords = @sizeOf(Word);
    const mask = decodeBase64(mask_b64);
    var out: [entries]Word = undefined;
    var n: usize = 0;
    var cand: usize = 0;
    // Counting in base levels.len with coordinate coords-1 most significant visits the packed
    // indices Σ l_k << (bits·k) in ascending order (whatever bits ≥ log2(levels.len)), the
    // order of ggml's sorted lists.
    var digits = [_]usize{0} ** coords;
    var done = false;
    while (!done) {
        var odd: usize = 0;
        for (digits) |d| odd += d & 1;
        if (!parity or odd % 2 == 0) {
            if (mask[cand / 8] >> @intCast(cand % 8) & 1 == 1) {
                var w: Word = 0;
                for (digits, 0..) |d, k| w |= @as(Word, levels[d]) << @intCast(8 * k);
                out[n] = w;
                n += 1;
            }
            cand += 1;
        }
        // Next digit vector (coordinate 0 least significant).
        done = true;
        for (&digits) |*d| {
            d.* += 1;
            if (d.* < levels.len) {
                done = false;
                break;
            }
            d.* = 0;
        }
    }
    if (n != entries) @compileError("codebook mask has the wrong number of entries");
    if ((cand + 7) / 8 != mask.len) @compileError("codebook mask has the wrong number of candidates");
    return out;
}

/// Standard base64 (RFC 4648, with padding), newlines ignored.
fn decodeBase64(comptime text: []const u8) [base64Len(text)]u8 {
    var out: [base64Len(text)]u8 = undefined;
    var acc: u32 = 0;
    var nbits: u5 = 0;
    var n: usize = 0;
    for (text) |ch| {
        const v: u32 = switch (ch) {
            'A'...'Z' => ch - 'A',
            'a'...'z' => ch - 'a' + 26,
            '0'...'9' => ch - '0' + 52,
            '+' => 62,
            '/' => 63,
            else => continue, // '\n' between lines, '=' padding
        };
        acc = acc << 6 | v;
        nbits += 6;
        if (nbits >= 8) {
            nbits -= 8;
            out[n] = @truncate(acc >> nbits);
            n += 1;
            acc &= (@as(u32, 1) << nbits) - 1;
        }
    }
    return out;
}

fn base64Len(comptime text: []const u8) usize {
    var symbols: usize = 0;
    for (text) |ch| {
        if (std.ascii.isAlphanumeric(ch) or ch == '+' or ch == '/') symbols += 1;
    }
    return symbols * 6 / 8;
}

pub const iq2xxs_grid = codebook(u64, 256, &levels_iq2, true, mask_iq2xxs);
pub const iq2xs_grid = codebook(u64, 512, &levels_iq2, true, mask_iq2xs);
pub const iq2s_grid = codebook(u64, 1024, &levels_iq2, true, mask_iq2s);
pub const iq3xxs_grid = codebook(u32, 256, &levels_iq3xxs, true, mask_iq3xxs);
pub const iq3s_grid = codebook(u32, 512, &levels_iq3s, false, mask_iq3s);
pub const iq1s_grid = codebook(u64, 2048, &levels_iq1, false, mask_iq1s);

// The full check is test/iq-tables.test.ts (every table against gguf-py's, by hash).
test "codebooks begin and end with ggml's entries; ksigns keeps even parity" {
    try std.testing.expectEqual(@as(u64, 0x0808080808080808), iq2xxs_grid[0]);
    try std.testing.expectEqual(@as(u64, 0x2b2b2b1908081908), iq2xxs_grid[255]);
    try std.testing.expectEqual(@as(u32, 0x3e341c04), iq3xxs_grid[255]);
    try std.testing.expectEqual(@as(u32, 0x01010101), iq3s_grid[0]);
    try std.testing.expectEqual(@as(u64, 0xffffffffffffffff), iq1s_grid[0]);
    try std.testing.expectEqual(@as(u64, 0x0101010101010101), iq1s_grid[2047]);
    for (ksigns) |s| try std.testing.expect(@popCount(s) % 2 == 0);
}
