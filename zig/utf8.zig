//! UTF-8 validation and repair.
//!
//! `firstInvalid` returns the byte offset of the first ill-formed sequence (strict UTF-8: no
//! surrogates, no overlongs, nothing above U+10FFFF). `repair` rewrites ill-formed input the way
//! CPython's `bytes.decode("utf-8", "replace")` does: every *maximal subpart* of an ill-formed
//! sequence (Unicode 15 ch. 3, "U+FFFD Substitution of Maximal Subparts") becomes one U+FFFD.
const std = @import("std");

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
    return firstInvalidIn(s, s.len);
}

/// `firstInvalid` where `avail` (>= s.len) bytes are readable from s.ptr: the tail (under 64
/// bytes; all of a short row) is loaded in place and masked instead of copied, and an ASCII
/// tail after ASCII blocks needs no error lookups. A column's rows pass their buffer's end.
/// Performance notes (session 22): 200k rows of "hello world" had 19.7% of the encode in
/// here (the copy through compiler_rt's memcpy and two block checks per row). In-process A/B:
/// 200k copies of a short row 1.067x ("hello world"), 1.072x (45 bytes), 1.025x (Cyrillic);
/// the 20k documents 1.044x; the 200k lines 0.94-1.06x over three runs (noise: the first
/// touch of a row's bytes moves to the encoder, as the session 7 note below found).
pub fn firstInvalidIn(s: []const u8, avail: usize) ?usize {
    if (comptime lookup_width == 0) return firstInvalidScalar(s);
    // Valid text (nearly all of it) is proved valid by the vector check; an error is then
    // located by the byte-by-byte check (one rare pass).
    if (vectorValid(s, avail)) return null;
    return firstInvalidScalar(s);
}

// ---------------------------------------------------------------------------------------------
// Vector validation by nibble lookups (after Keiser & Lemire, "Validating UTF-8 in less than
// one instruction per byte", 2021). Every ill-formed two-byte window sets a bit in all three of
// the lookups indexed by: the high nibble of the previous byte, its low nibble, and the high
// nibble of this byte; AND-ing them leaves the error bits. The one bit left over for "a
// continuation after a continuation" must be set exactly where this byte is the 3rd or 4th of
// a sequence (the byte two back is >= 0xE0 or the one three back is >= 0xF0).
//
// performance notes: the byte-at-a-time loop (firstInvalidScalar) cost 11.7% of a one-thread
// encode of the 20k-document column (29% non-ASCII bytes) and 5.8% of English books in perf.
// Did not pay (session 7): checking a column's rows in runs (one vector check over the bytes of up
// to 64 KiB of contiguous rows, plus "no row starts with a continuation byte") instead of row by
// row: lines 1.007x, docs 0.986x, English 1.009x, code 0.977x (bench/ab_builds.py, 15 rounds),
// although perf put 7% of the 200k-lines column in firstInvalid: that is the first touch of each
// row's bytes, which the encoder pays instead. tests/test_arrow.py keeps its tests (code points
// cut between rows, a bad row late in a long run).
// Session 25, not kept: a text shorter than one 64-byte block and all ASCII returned valid
// before the nibble lookups (an empty row costs 18 ns and a one-byte row 43 ns of fixed work
// in a column; perf put 21% of a one-byte-row column here): 200k lines o200k 0.981x (15
// rounds; noise).

/// Lanes of one table lookup: 32 with AVX2, 16 with SSSE3, 0 = no vector validation.
const lookup_width: usize = blk: {
    const builtin = @import("builtin");
    // LLVM intrinsics: not with the self-hosted backend (Debug builds without -fllvm).
    if (builtin.cpu.arch != .x86_64 or builtin.zig_backend != .stage2_llvm) break :blk 0;
    if (std.Target.x86.featureSetHas(builtin.cpu.features, .avx2)) break :blk 32;
    if (std.Target.x86.featureSetHas(builtin.cpu.features, .ssse3)) break :blk 16;
    break :blk 0;
};
const LW = if (lookup_width == 0) 16 else lookup_width;
const LV = @Vector(LW, u8);

extern fn @"llvm.x86.avx2.pshuf.b"(@Vector(32, u8), @Vector(32, u8)) @Vector(32, u8);
extern fn @"llvm.x86.ssse3.pshuf.b.128"(@Vector(16, u8), @Vector(16, u8)) @Vector(16, u8);

/// t[idx] per lane, idx < 16 (the 16-entry table repeated in each 16-byte lane).
inline fn lookup(t: LV, idx: LV) LV {
    return if (LW == 32) @"llvm.x86.avx2.pshuf.b"(t, idx) else @"llvm.x86.ssse3.pshuf.b.128"(t, idx);
}

fn table(comptime e: [16]u8) LV {
    var out: [LW]u8 = undefined;
    for (0..LW) |i| out[i] = e[i % 16];
    return out;
}

const too_short: u8 = 1 << 0; // a lead byte not followed by a continuation
const too_long: u8 = 1 << 1; // an ASCII byte followed by a continuation
const overlong_3: u8 = 1 << 2; // E0 80..9F
const too_large: u8 = 1 << 3; // F4 90..BF, F5..FF + continuation
const surrogate: u8 = 1 << 4; // ED A0..BF
const overlong_2: u8 = 1 << 5; // C0, C1 + continuation
const over_4_or_1000: u8 = 1 << 6; // F0 80..8F (overlong), F5..FF 80..8F (too large)
const two_conts: u8 = 1 << 7; // a continuation after a continuation (fine in 3/4-byte sequences)
const carry = too_short | too_long | two_conts;

const prev_high = table(.{
    too_long,                                           too_long, too_long, too_long,
    too_long,                                           too_long, too_long, too_long,
    two_conts,                                          two_conts, two_conts, two_conts,
    too_short | overlong_2,                             too_short,
    too_short | overlong_3 | surrogate,                 too_short | too_large | over_4_or_1000,
});
const prev_low = table(.{
    carry | overlong_3 | overlong_2 | over_4_or_1000, carry | overlong_2, carry, carry,
    carry | too_large,                               carry | too_large | over_4_or_1000, carry | too_large | over_4_or_1000, carry | too_large | over_4_or_1000,
    carry | too_large | over_4_or_1000,             carry | too_large | over_4_or_1000, carry | too_large | over_4_or_1000, carry | too_large | over_4_or_1000,
    carry | too_large | over_4_or_1000,             carry | too_large | over_4_or_1000 | surrogate, carry | too_large | over_4_or_1000, carry | too_large | over_4_or_1000,
});
const cur_high = table(.{
    too_short, too_short, too_short, too_short, too_short, too_short, too_short, too_short,
    too_long | overlong_2 | two_conts | overlong_3 | over_4_or_1000,
    too_long | overlong_2 | two_conts | overlong_3 | too_large,
    too_long | overlong_2 | two_conts | surrogate | too_large,
    too_long | overlong_2 | two_conts | surrogate | too_large,
    too_short, too_short, too_short, too_short,
});

/// Bytes of (prev ++ cur) shifted by k: lane i holds the byte k before cur[i].
inline fn before(prev: LV, cur: LV, comptime k: usize) LV {
    const mask = comptime blk: {
        var m: [LW]i32 = undefined;
        for (0..LW) |i| m[i] = if (i >= k) @as(i32, @intCast(i - k)) else ~@as(i32, @intCast(LW - k + i));
        break :blk m;
    };
    return @shuffle(u8, cur, prev, mask);
}

/// Error bits of block `cur` given the block before it.
inline fn blockErrors(prev: LV, cur: LV) LV {
    const lo4: LV = @splat(0x0F);
    const p1 = before(prev, cur, 1);
    const sc = lookup(prev_high, p1 >> @splat(4)) & lookup(prev_low, p1 & lo4) & lookup(cur_high, cur >> @splat(4));
    const p2 = before(prev, cur, 2);
    const p3 = before(prev, cur, 3);
    const must23 = (p2 >= @as(LV, @splat(0xE0))) | (p3 >= @as(LV, @splat(0xF0)));
    const must80 = @select(u8, must23, @as(LV, @splat(0x80)), @as(LV, @splat(0)));
    return sc ^ must80;
}

inline fn anySet(v: LV) bool {
    return @reduce(.Or, v) != 0;
}

fn vectorValid(s: []const u8, avail: usize) bool {
    var prev: LV = @splat(0);
    var err: LV = @splat(0);
    var i: usize = 0;
    const hi80: LV = @splat(0x80);
    while (i + 2 * LW <= s.len) : (i += 2 * LW) {
        const a: LV = s[i..][0..LW].*;
        const b: LV = s[i + LW ..][0..LW].*;
        if (!anySet((a | b) & hi80)) {
            // ASCII: only an unfinished sequence at the end of the block before can be wrong.
            err |= blockErrors(prev, a);
        } else {
            err |= blockErrors(prev, a);
            err |= blockErrors(a, b);
        }
        prev = b;
    }
    // The tail, zero-padded (fewer than 2 * LW bytes, so at least one zero follows it): a
    // sequence cut off by the end of the text meets a zero byte.
    const rest = s.len - i;
    var a: LV = undefined;
    var b: LV = undefined;
    if (i + 2 * LW <= avail) {
        const W2 = @Vector(2 * LW, u8);
        const raw: W2 = s.ptr[0..avail][i..][0 .. 2 * LW].*;
        const t: [2 * LW]u8 = @select(u8, std.simd.iota(u8, 2 * LW) < @as(W2, @splat(@intCast(rest))), raw, @as(W2, @splat(0)));
        a = t[0..LW].*;
        b = t[LW..].*;
    } else {
        var last: [2 * LW]u8 = @splat(0);
        @memcpy(last[0..rest], s[i..]);
        a = last[0..LW].*;
        b = last[LW..].*;
    }
    err |= blockErrors(prev, a);
    if (anySet((a | b) & hi80)) err |= blockErrors(a, b);
    return !anySet(err);
}

/// Offset of the first ill-formed byte sequence, byte by byte after an ASCII skip.
fn firstInvalidScalar(s: []const u8) ?usize {
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

test "vector validation agrees with the byte-by-byte check" {
    var prng = std.Random.DefaultPrng.init(7);
    const r = prng.random();
    const pieces = [_][]const u8{ "a", " ", "\n", "é", "€", "😀", "\xed\x9f\xbf", "\xee\x80\x80", "\xf4\x8f\xbf\xbf", "\xf0\x90\x80\x80", "\xe0\xa0\x80" };
    const bad = [_][]const u8{ "\x80", "\xbf", "\xc0\x80", "\xc1\xbf", "\xe0\x80\x80", "\xe0\x9f\xbf", "\xed\xa0\x80", "\xf0\x80\x80\x80", "\xf4\x90\x80\x80", "\xf5\x80\x80\x80", "\xff", "\xc3", "\xe2\x82", "\xf0\x9f\x98", "\xc3a", "\xe2\x82a" };
    var buf: [400]u8 = undefined;
    var wide: [480]u8 = undefined;
    for (0..20000) |_| {
        var n: usize = 0;
        const target = r.uintLessThan(usize, 300);
        while (n < target) {
            const p = pieces[r.uintLessThan(usize, pieces.len)];
            @memcpy(buf[n..][0..p.len], p);
            n += p.len;
        }
        if (r.boolean()) {
            // One ill-formed sequence somewhere (maybe at the very end).
            const b = bad[r.uintLessThan(usize, bad.len)];
            const at = if (r.uintLessThan(u8, 4) == 0) n else blk: {
                // at a character boundary
                var k = r.uintLessThan(usize, n + 1);
                while (k < n and buf[k] & 0xC0 == 0x80) k += 1;
                break :blk k;
            };
            std.mem.copyBackwards(u8, buf[at + b.len .. n + b.len], buf[at..n]);
            @memcpy(buf[at..][0..b.len], b);
            n += b.len;
        }
        const s = buf[0..n];
        try std.testing.expectEqual(firstInvalidScalar(s) == null, vectorValid(s, s.len));
        try std.testing.expectEqual(firstInvalidScalar(s), firstInvalid(s));
        // The same text with random bytes after it that the tail may load (a column's next
        // rows): they must not change the answer.
        @memcpy(wide[0..n], s);
        r.bytes(wide[n..][0..64]);
        try std.testing.expectEqual(firstInvalidScalar(s), firstInvalidIn(wide[0..n], n + 64));
    }
    // A sequence cut off at every position relative to the blocks, at the end of the text or
    // before ASCII text.
    const cut = [_][]const u8{ "\xc3", "\xe2", "\xe2\x82", "\xf0", "\xf0\x9f", "\xf0\x9f\x98" };
    var text: [400]u8 = @splat('a');
    for (0..200) |at| for (cut) |c| for ([_]usize{ 0, 1, 70 }) |after| {
        @memcpy(text[at..][0..c.len], c);
        const s = text[0 .. at + c.len + after];
        try std.testing.expect(!vectorValid(s, s.len));
        try std.testing.expectEqual(@as(?usize, at), firstInvalid(s));
        @memset(text[at..][0..c.len], 'a');
    };
    // Every one- and two-byte string, and every lead byte followed by each second byte.
    var two: [2]u8 = undefined;
    for (0..256) |x| for (0..256) |y| {
        two = .{ @intCast(x), @intCast(y) };
        try std.testing.expectEqual(firstInvalidScalar(&two) == null, vectorValid(&two, 2));
        try std.testing.expectEqual(firstInvalidScalar(two[0..1]) == null, vectorValid(two[0..1], 1));
    };
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
