//! UTF-8 validation and repair.
//!
//! `firstInvalid` returns the byte offset of the first ill-formed sequence (strict UTF-8: no
//! surrogates, no overlongs, nothing above U+10FFFF). `repair` rewrites ill-formed input the way
//! CPython's `bytes.decode("utf-8", "replace")` does: every *maximal subpart* of an ill-formed
//! sequence (Unicode 15 ch. 3, "U+FFFD Substitution of Maximal Subparts") becomes one U+FFFD.
const std = @import("std");

const V = @Vector(16, u8);

/// Length of the maximal valid prefix of a multi-byte sequence starting at s[0] (a non-ASCII
/// byte). Returns .{ valid_len, ok }: ok == true means s[0..valid_len] is one well-formed code
/// point; ok == false means s[0..@max(valid_len,1)] is a maximal ill-formed subpart.
inline fn seqCheck(s: []const u8) struct { len: usize, ok: bool } {
    const b0 = s[0];
    var need: usize = 0;
    var lo: u8 = 0x80;
    var hi: u8 = 0xBF;
    switch (b0) {
        0xC2...0xDF => need = 1,
        0xE0 => {
            need = 2;
            lo = 0xA0;
        },
        0xE1...0xEC, 0xEE, 0xEF => need = 2,
        0xED => {
            need = 2;
            hi = 0x9F;
        },
        0xF0 => {
            need = 3;
            lo = 0x90;
        },
        0xF1...0xF3 => need = 3,
        0xF4 => {
            need = 3;
            hi = 0x8F;
        },
        else => return .{ .len = 1, .ok = false },
    }
    var i: usize = 1;
    while (i <= need) : (i += 1) {
        if (i >= s.len) return .{ .len = i, .ok = false };
        const b = s[i];
        const l: u8 = if (i == 1) lo else 0x80;
        const h: u8 = if (i == 1) hi else 0xBF;
        if (b < l or b > h) return .{ .len = i, .ok = false };
    }
    return .{ .len = need + 1, .ok = true };
}

/// Offset of the first ill-formed byte sequence, or null if `s` is valid UTF-8.
pub fn firstInvalid(s: []const u8) ?usize {
    const W = @Vector(32, u8);
    var i: usize = 0;
    while (i < s.len) {
        // ASCII fast path, 32 bytes at a time (the high bits as one mask).
        while (i + 32 <= s.len) {
            const v: W = s[i..][0..32].*;
            const hi: u32 = @bitCast(v >= @as(W, @splat(0x80)));
            if (hi != 0) {
                i += @ctz(hi);
                break;
            }
            i += 32;
        }
        if (i >= s.len) break;
        // Then byte by byte until the next ASCII byte (non-Latin text stays in this loop).
        while (i < s.len) {
            if (s[i] < 0x80) {
                i += 1;
                if (i + 32 <= s.len) break;
                continue;
            }
            const r = seqCheck(s[i..]);
            if (!r.ok) return i;
            i += r.len;
        }
    }
    return null;
}

/// Upper bound of the repaired size: each ill-formed byte becomes at most 3 bytes.
pub fn repairBound(len: usize) usize {
    return len * 3;
}

/// Writes the repaired form of `s` into `out` (capacity >= repairBound(s.len)); returns its length.
pub fn repair(s: []const u8, out: []u8) usize {
    var i: usize = 0;
    var o: usize = 0;
    while (i < s.len) {
        if (s[i] < 0x80) {
            out[o] = s[i];
            o += 1;
            i += 1;
            continue;
        }
        const r = seqCheck(s[i..]);
        if (r.ok) {
            @memcpy(out[o..][0..r.len], s[i..][0..r.len]);
            o += r.len;
            i += r.len;
        } else {
            out[o..][0..3].* = .{ 0xEF, 0xBF, 0xBD };
            o += 3;
            i += @max(r.len, 1);
        }
    }
    return o;
}

test "valid and invalid" {
    try std.testing.expectEqual(@as(?usize, null), firstInvalid("hello, wörld ✓ 😀"));
    try std.testing.expectEqual(@as(?usize, 1), firstInvalid("a\xffb"));
    try std.testing.expectEqual(@as(?usize, 0), firstInvalid("\xed\xa0\x80")); // surrogate
    try std.testing.expectEqual(@as(?usize, 0), firstInvalid("\xc0\x80")); // overlong
    try std.testing.expectEqual(@as(?usize, 20), firstInvalid("aaaaaaaaaaaaaaaaaaaa\xe2\x82"));
}

test "repair matches CPython maximal subparts" {
    var buf: [64]u8 = undefined;
    // b"\xe2\x82" -> one U+FFFD (maximal subpart), b"\xf0\x80" -> two (F0 80 is not a valid prefix).
    const n1 = repair("a\xe2\x82b", &buf);
    try std.testing.expectEqualSlices(u8, "a\xef\xbf\xbdb", buf[0..n1]);
    const n2 = repair("\xf0\x80", &buf);
    try std.testing.expectEqualSlices(u8, "\xef\xbf\xbd\xef\xbf\xbd", buf[0..n2]);
}
