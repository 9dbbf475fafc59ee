//! Pretokenizer: hand-written scanners that split text exactly like tiktoken 0.14.0's regexes.
//!
//! tiktoken runs one regex over the text (Rust fancy-regex: backtracking, leftmost-first
//! alternation, `$` = end of text, Unicode classes from regex-syntax 0.8.11 = Unicode 16.0) and
//! BPE-encodes each match ("piece"). `nextPieceEnd` returns where the piece that starts at `pos`
//! ends. Each alternative of the two patterns is reduced below to a bounded number of forward
//! scans, so a piece costs O(its length) plus at most one extra scan of one run, which the next
//! piece then consumes: linear time by construction, with no backtracking and no allocation.
//!
//! cl100k_base: '(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+|
//!              ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s
//! o200k_base:  [^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?
//!             |[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?
//!             |\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+
//!
//! Coverage: in both patterns every code point starts some alternative (a letter starts the
//! letter alternative, a digit the number one, whitespace the final `\s`/`\s+`, anything else the
//! punctuation run), so the matches tile the text and pieces are contiguous.
//!
//! Case-insensitive contractions: under Unicode simple case folding the only non-ASCII code point
//! that folds to one of s t r v e m l d is U+017F LATIN SMALL LETTER LONG S (-> s); U+212A KELVIN
//! SIGN folds to k, which no contraction uses. tests/test_pretok.py checks this against tiktoken.
//!
//! Performance notes (tools/bench_pretok.py; ReleaseFast, native CPU, one core, MB/s of the scanners
//! alone, "scan"; at_pretokenize's own UTF-8 check costs another 10-35%)
//! ---------------------------------------------------------------------------------------------
//! * First version (per-code-point loop: ASCII bytes through a 128-entry property table, others
//!   decoded inline and looked up in the two-level table): English ~440, code ~410, UDHR ~540.
//! * 16-byte vector scan of ASCII stretches inside letter runs (`runWhile`): at first only +10%,
//!   because after the vector step found the end of a word the loop went round once more and
//!   re-tested the stopping byte. Returning at once when the stopping byte is ASCII: English
//!   480 -> 710 (cl100k), 470 -> 670 (o200k); UDHR +25%; code +20%. This was the big win: most
//!   words end inside the first vector, so the loop-exit branch is no longer a misprediction per
//!   word.
//! * First-byte fast paths ("word", " word", and for o200k "Word"/" Word", ASCII punctuation that
//!   no letter follows): within noise to +3%; kept because they are obviously right and cheap.
//! * Vector skip of U+0020 runs in `wsRun`: code +5-9% (indentation), else neutral.
//! * Tried and dropped: a vector scan of ASCII A-Z in o200k's upper run (`word1`): no measurable
//!   gain (all-caps runs are short), more code. Testing the stop lane's high bit from the vector
//!   instead of reloading text[i] (one load fewer on the piece-to-piece dependency chain): +0-1%.
//!   Session 23: two-byte code points (U+0080..U+07FF) read straight from the second-stage table
//!   (its first eight blocks are those code points' own), one load instead of two dependent
//!   ones: in-process A/B (bench/ab_builds.py, 15 rounds) multilingual 1.016x / 1.006x, 20k
//!   documents 1.001x (cl100k) / 0.981x (o200k): noise, not kept.
//! * Session 24, not kept: two-byte code points in the same 16-byte step as ASCII letters inside
//!   letter runs (per lead byte, the longest stretch of its code points in the class with at most two
//!   holes, derived from the property table at compile time; two SSSE3 byte shuffles per parameter).
//!   Exact (tests/test_pretok.py passed), and the step ran (perf: its vpshufb in the hot loop), but
//!   count_tokens_arrow, in-process A/B against the build before, 21-31 rounds, cl100k: Russian
//!   Debian FAQ 1.001x / 1.070x / 0.948x over three runs, French Candide 0.994x / 0.915x, the 20k
//!   documents 0.982x / 0.968x / 1.013x, multilingual 0.954x (before the step was limited to
//!   two-byte leads) / 1.020x: noise-level at best. A Cyrillic word is short (6-7 letters), so the
//!   step replaces few table lookups, and its ~25 vector operations are not free.
//! * Session 27, not kept: a 32-byte step over three-byte letters in `runWhile` and o200k's
//!   upper run (CJK ideographs, kana, Hangul syllables, by lead/second/third-byte ranges checked
//!   at compile time against the property table): the scanners alone on Japanese 569 -> 610
//!   MB/s (cl100k), 515 -> 618 (o200k), Chinese 0.93-0.97x, Korean 0.95-1.04x; encode_arrow on
//!   the 20k documents 0.99x / 1.00x, multilingual 0.98x: those texts' time is in the lookups.
//! * What is left is mostly one hard-to-predict branch on the kind of each piece (~4.6 bytes per
//!   piece in English, so ~7 ns per piece at ~650 MB/s). Decoding and the table lookup matter
//!   only for non-Latin text (UDHR, Japanese), where pieces are longer.
const std = @import("std");
const ut = @import("unicode_tables.zig");

/// Scanner ids (stable across the C ABI): 0 cl100k_base (also Llama 3's spelling of it), 1 o200k_base,
/// 2 GPT-2 (Hugging Face ByteLevel's regex), 4 Qwen2 (Llama 3's pattern with single digits,
/// `\p{N}`). 3 is reserved (r50k's possessive spelling).
pub const Pattern = enum(u8) { cl100k = 0, o200k = 1, gpt2 = 2, qwen2 = 4 };

// ---------------------------------------------------------------------------------------------
// Character classes (masks over the property byte of unicode_tables.zig)

const letter: u8 = ut.Lu | ut.Ll | ut.Lt | ut.Lm | ut.Lo; // \p{L}
const number: u8 = ut.N; // \p{N}
const space: u8 = ut.WS; // \s
/// o200k `[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]`
const upper: u8 = ut.Lu | ut.Lt | ut.Lm | ut.Lo | ut.M;
/// o200k `[\p{Ll}\p{Lm}\p{Lo}\p{M}]`
const lower: u8 = ut.Ll | ut.Lm | ut.Lo | ut.M;
/// In both o200k letter classes.
const both: u8 = upper & lower;
/// `[^\s\p{L}\p{N}]` is "none of these bits".
const not_punct: u8 = letter | number | space;

comptime {
    std.debug.assert(both == ut.Lm | ut.Lo | ut.M);
    std.debug.assert(upper | lower == letter | ut.M);
}

/// Property bytes of the ASCII range, for the fast path.
const ascii_props: [128]u8 = blk: {
    var t: [128]u8 = undefined;
    for (&t, 0..) |*p, c| p.* = ut.props(@intCast(c));
    break :blk t;
};

inline fn isAsciiAlpha(b: u8) bool {
    return (b | 0x20) -% 'a' < 26;
}

inline fn isAsciiLower(b: u8) bool {
    return b -% 'a' < 26;
}

inline fn isAsciiUpper(b: u8) bool {
    return b -% 'A' < 26;
}

comptime {
    // The ASCII fast paths assume that the ASCII letters are exactly A-Z (Lu) and a-z (Ll).
    @setEvalBranchQuota(10_000);
    for (ascii_props, 0..) |p, c| {
        std.debug.assert((p & letter != 0) == isAsciiAlpha(c));
        std.debug.assert((p == ut.Ll) == isAsciiLower(c));
        std.debug.assert((p == ut.Lu) == isAsciiUpper(c));
        std.debug.assert(p & ut.M == 0);
    }
}

/// One code point: its property byte and its UTF-8 length.
pub const Ch = struct { p: u8, n: usize };

/// Decodes the non-ASCII code point at text[i] (valid UTF-8 assumed: callers validate).
inline fn decodeMulti(text: []const u8, i: usize) struct { cp: u21, n: usize } {
    const b0: u21 = text[i];
    if (b0 < 0xE0) {
        return .{ .cp = (b0 & 0x1F) << 6 | (text[i + 1] & 0x3F), .n = 2 };
    }
    if (b0 < 0xF0) {
        return .{ .cp = (b0 & 0x0F) << 12 | @as(u21, text[i + 1] & 0x3F) << 6 | (text[i + 2] & 0x3F), .n = 3 };
    }
    return .{
        .cp = (b0 & 0x07) << 18 | @as(u21, text[i + 1] & 0x3F) << 12 |
            @as(u21, text[i + 2] & 0x3F) << 6 | (text[i + 3] & 0x3F),
        .n = 4,
    };
}

pub inline fn charAt(text: []const u8, i: usize) Ch {
    const b0 = text[i];
    if (b0 < 0x80) return .{ .p = ascii_props[b0], .n = 1 };
    const d = decodeMulti(text, i);
    return .{ .p = ut.props(d.cp), .n = d.n };
}

const lanes = 16;
const V = @Vector(lanes, u8);

/// The ASCII classes that have a cheap vector test: `mask` restricted to ASCII is exactly the
/// letters, the lowercase letters or the uppercase letters (derived from the table at comptime).
const AsciiClass = enum { none, alpha, lower, upper };

fn asciiClassOf(comptime mask: u8) AsciiClass {
    @setEvalBranchQuota(10_000);
    var alpha = true;
    var lower_only = true;
    var upper_only = true;
    for (0..128) |c| {
        const in = ascii_props[c] & mask != 0;
        alpha = alpha and in == std.ascii.isAlphabetic(@intCast(c));
        lower_only = lower_only and in == std.ascii.isLower(@intCast(c));
        upper_only = upper_only and in == std.ascii.isUpper(@intCast(c));
    }
    if (alpha) return .alpha;
    if (lower_only) return .lower;
    if (upper_only) return .upper;
    return .none;
}

/// Lanes of v that are ASCII bytes in class `cls`, as a bit mask (lane 0 = bit 0).
inline fn asciiMatches(v: V, comptime cls: AsciiClass) u16 {
    const in = switch (cls) {
        .alpha => ((v | @as(V, @splat(0x20))) -% @as(V, @splat('a'))) < @as(V, @splat(26)),
        .lower => (v -% @as(V, @splat('a'))) < @as(V, @splat(26)),
        .upper => (v -% @as(V, @splat('A'))) < @as(V, @splat(26)),
        .none => unreachable,
    };
    return @bitCast(in);
}

/// End of the run of code points, starting at i, whose property byte has a bit in `mask`.
/// ASCII stretches of letter classes are skipped 16 bytes at a time.
inline fn runWhile(text: []const u8, start: usize, comptime mask: u8) usize {
    const cls = comptime asciiClassOf(mask);
    var i = start;
    while (i < text.len) {
        const b = text[i];
        if (b >= 0x80) {
            const c = charAt(text, i);
            if (c.p & mask == 0) return i;
            i += c.n;
        } else if (cls != .none and i + lanes <= text.len) {
            const v: V = text[i..][0..lanes].*;
            const hits = asciiMatches(v, cls);
            const n = @ctz(~hits); // 16 when every lane matches
            i += n;
            // The run stops at an ASCII byte outside the class; a non-ASCII byte needs decoding.
            if (n < lanes and text[i] < 0x80) return i;
        } else {
            if (ascii_props[b] & mask == 0) return i;
            i += 1;
        }
    }
    return i;
}

/// End of the run of code points, starting at i, whose property byte has no bit in `mask`.
inline fn runUntil(text: []const u8, start: usize, comptime mask: u8) usize {
    var i = start;
    while (i < text.len) {
        const b = text[i];
        if (b < 0x80) {
            if (ascii_props[b] & mask != 0) break;
            i += 1;
        } else {
            const c = charAt(text, i);
            if (c.p & mask != 0) break;
            i += c.n;
        }
    }
    return i;
}

/// `\p{N}{1,max}` given that the code point at pos (length n0) is a number.
inline fn numberEnd(comptime max: u32, text: []const u8, pos: usize, n0: usize) usize {
    var i = pos + n0;
    var k: u32 = 1;
    while (k < max and i < text.len) : (k += 1) {
        const c = charAt(text, i);
        if (c.p & number == 0) break;
        i += c.n;
    }
    return i;
}

inline fn isLetterS(text: []const u8, i: usize) usize {
    // s, S, or U+017F (C5 BF); returns the length matched or 0.
    if (i >= text.len) return 0;
    return switch (text[i]) {
        's', 'S' => 1,
        0xC5 => if (i + 1 < text.len and text[i + 1] == 0xBF) 2 else 0,
        else => 0,
    };
}

/// If a contraction `'(?i:s|t|re|ve|m|ll|d)` starts at e, its end; else null.
/// (cl100k's `'(?i:[sdmt]|ll|ve|re)` is the same set of strings.)
inline fn contraction(text: []const u8, e: usize) ?usize {
    if (e + 1 >= text.len or text[e] != '\'') return null;
    const c = text[e + 1];
    switch (c | 0x20) {
        's', 't', 'd', 'm' => return e + 2,
        'r', 'v' => if (e + 2 < text.len and text[e + 2] | 0x20 == 'e') return e + 3,
        'l' => if (e + 2 < text.len and text[e + 2] | 0x20 == 'l') return e + 3,
        else => {},
    }
    // (`c | 0x20` equals a lowercase ASCII letter only for that letter and its uppercase form.)
    if (c == 0xC5 and e + 2 < text.len and text[e + 2] == 0xBF) return e + 3; // ſ
    return null;
}

inline fn contractionOr(text: []const u8, e: usize) usize {
    return contraction(text, e) orelse e;
}

/// A maximal run of whitespace and what the whitespace alternatives need from it.
const WsRun = struct {
    end: usize,
    /// End of the last \r or \n in the run, 0 if there is none.
    nl_end: usize,
    /// Start of the last code point of the run.
    last_start: usize,
};

inline fn wsRun(text: []const u8, pos: usize) WsRun {
    var r: WsRun = .{ .end = pos, .nl_end = 0, .last_start = pos };
    var i = pos;
    while (i < text.len) {
        const b = text[i];
        if (b == ' ' and i + lanes <= text.len) {
            // Indentation: skip a stretch of U+0020 16 bytes at a time.
            const v: V = text[i..][0..lanes].*;
            const hits: u16 = @bitCast(v == @as(V, @splat(' ')));
            const n = @ctz(~hits); // >= 1, since text[i] == ' '
            r.last_start = i + n - 1;
            i += n;
        } else if (b < 0x80) {
            if (ascii_props[b] & space == 0) break;
            r.last_start = i;
            i += 1;
            if (b == '\n' or b == '\r') r.nl_end = i;
        } else {
            const c = charAt(text, i);
            if (c.p & space == 0) break;
            r.last_start = i;
            i += c.n;
        }
    }
    r.end = i;
    return r;
}

/// `[^\s\p{L}\p{N}]+` from s (whose code point is in the class), then `[\r\n]*` (cl100k) or
/// `[\r\n/]*` (o200k, `slash`).
inline fn punctEnd(text: []const u8, s: usize, comptime slash: bool) usize {
    var e = runUntil(text, s, not_punct);
    while (e < text.len) : (e += 1) {
        const b = text[e];
        if (!(b == '\r' or b == '\n' or (slash and b == '/'))) break;
    }
    return e;
}

// ---------------------------------------------------------------------------------------------
// cl100k_base

/// cl100k_base; with max_digits = 1, Qwen2's variant (`\p{N}` instead of `\p{N}{1,3}`).
fn cl100kEnd(comptime max_digits: u32, text: []const u8, pos: usize) usize {
    const b0 = text[pos];
    // Fast paths for the two commonest pieces, "word" and " word" with an ASCII first letter.
    if (isAsciiAlpha(b0)) return runWhile(text, pos + 1, letter);
    if (b0 == ' ' and pos + 1 < text.len and isAsciiAlpha(text[pos + 1])) {
        return runWhile(text, pos + 2, letter);
    }
    // '(?i:[sdmt]|ll|ve|re)
    if (b0 == '\'') {
        if (contraction(text, pos)) |e| return e;
    }
    const c0 = charAt(text, pos);
    const after = pos + c0.n;
    // [^\r\n\p{L}\p{N}]?+\p{L}++ with an empty prefix
    if (c0.p & letter != 0) return runWhile(text, after, letter);
    // \p{N}{1,3}+
    if (c0.p & number != 0) return numberEnd(max_digits, text, pos, c0.n);
    // [^\r\n\p{L}\p{N}]?+\p{L}++ with a one-code-point prefix (c0 is neither L nor N here)
    if (b0 != '\r' and b0 != '\n' and after < text.len) {
        const c1 = charAt(text, after);
        if (c1.p & letter != 0) return runWhile(text, after + c1.n, letter);
    }
    // ` ?[^\s\p{L}\p{N}]++[\r\n]*+`
    var punct_start: ?usize = null;
    if (c0.p & space == 0) {
        punct_start = pos; // c0 is neither L, N nor \s
    } else if (b0 == ' ' and after < text.len and charAt(text, after).p & not_punct == 0) {
        punct_start = after;
    }
    if (punct_start) |s| return punctEnd(text, s, false);
    // c0 is whitespace.
    const w = wsRun(text, pos);
    if (w.end == text.len) return w.end; // \s++$
    if (w.nl_end != 0) return w.nl_end; // \s*[\r\n]
    if (w.last_start > pos) return w.last_start; // \s+(?!\S)
    return after; // \s
}

// ---------------------------------------------------------------------------------------------
// GPT-2: 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
// (contractions are case-sensitive; the optional prefix is U+0020 only; digit runs are unbounded)

fn gpt2End(text: []const u8, pos: usize) usize {
    const b0 = text[pos];
    if (isAsciiAlpha(b0)) return runWhile(text, pos + 1, letter);
    if (b0 == '\'' and pos + 1 < text.len) {
        switch (text[pos + 1]) {
            's', 't', 'm', 'd' => return pos + 2,
            'r', 'v' => if (pos + 2 < text.len and text[pos + 2] == 'e') return pos + 3,
            'l' => if (pos + 2 < text.len and text[pos + 2] == 'l') return pos + 3,
            else => {},
        }
    }
    // ` ?` takes the space when a letter, number or punctuation code point follows it.
    var s = pos;
    if (b0 == ' ' and pos + 1 < text.len and charAt(text, pos + 1).p & space == 0) s = pos + 1;
    const c = charAt(text, s);
    if (c.p & letter != 0) return runWhile(text, s + c.n, letter);
    if (c.p & number != 0) return runWhile(text, s + c.n, number);
    if (c.p & space == 0) return runUntil(text, s, not_punct);
    // Whitespace at pos: \s+(?!\S) leaves the run's last code point to the next piece when a
    // non-space follows (if the run has more than one), \s+ takes a lone one.
    const w = wsRun(text, pos);
    if (w.end == text.len) return w.end;
    if (w.last_start > pos) return w.last_start;
    return w.end;
}

// ---------------------------------------------------------------------------------------------
// o200k_base

/// Outcome of `[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(contraction)?` at s.
const Word = union(enum) {
    /// The first letter alternative matched, ending here.
    ok: usize,
    /// It did not match; the run of "upper" code points ends here (== s if the run is empty).
    /// The run then holds no "both" code point and is not followed by Ll.
    fail: usize,
};

/// The greedy `upper*` takes the maximal run; backtracking then looks for the last position k in
/// it (or just after it) where `lower+` can start: the code point after the run if it is Ll
/// (then `lower+` runs on greedily), else the last "both" (Lm/Lo/M) code point of the run (then
/// `lower+` stops right after it, since the rest of the run is Lu/Lt and the follower is not lower).
inline fn word1(text: []const u8, s: usize) Word {
    var i = s;
    var last_both: usize = 0;
    var has_both = false;
    var next: ?Ch = null;
    while (i < text.len) {
        const c = charAt(text, i);
        if (c.p & upper == 0) {
            next = c;
            break;
        }
        i += c.n;
        if (c.p & both != 0) {
            last_both = i;
            has_both = true;
        }
    }
    if (next) |c| {
        if (c.p & ut.Ll != 0) return .{ .ok = contractionOr(text, runWhile(text, i + c.n, lower)) };
    }
    if (has_both) return .{ .ok = contractionOr(text, last_both) };
    return .{ .fail = i };
}

fn o200kEnd(text: []const u8, pos: usize) usize {
    const b0 = text[pos];
    // Fast paths: "word" and " word" starting with an ASCII lowercase letter. The upper run is
    // empty and the first code point is Ll, so alternative 1 is `lower+` then a contraction.
    // "Word" / " Word" (ASCII upper then ASCII lower): the upper run is that one letter.
    if (isAsciiLower(b0)) return contractionOr(text, runWhile(text, pos + 1, lower));
    if (pos + 1 < text.len) {
        const b1 = text[pos + 1];
        if (b0 == ' ' and isAsciiLower(b1)) return contractionOr(text, runWhile(text, pos + 2, lower));
        if (isAsciiUpper(b0) and isAsciiLower(b1)) return contractionOr(text, runWhile(text, pos + 2, lower));
        if (b0 == ' ' and isAsciiUpper(b1) and pos + 2 < text.len and isAsciiLower(text[pos + 2])) {
            return contractionOr(text, runWhile(text, pos + 3, lower));
        }
    }
    // ASCII punctuation not followed by a letter (or a non-ASCII code point, which might be a
    // letter or a mark): alternatives 1-3 cannot match, so it is the punctuation run.
    if (b0 < 0x80 and ascii_props[b0] & not_punct == 0 and
        (pos + 1 == text.len or (text[pos + 1] < 0x80 and !isAsciiAlpha(text[pos + 1]))))
    {
        return punctEnd(text, pos, true);
    }
    const c0 = charAt(text, pos);
    const after = pos + c0.n;
    if (c0.p & letter != 0) {
        // No prefix (a letter is not in [^\r\n\p{L}\p{N}]). If the first alternative fails, the
        // upper run is non-empty (c0 is Lu/Lt), and the second one takes it: `upper+`, an empty
        // `lower*` (the follower is not lower), then an optional contraction.
        return switch (word1(text, pos)) {
            .ok => |e| e,
            .fail => |run_end| contractionOr(text, run_end),
        };
    }
    if (c0.p & number != 0) return numberEnd(3, text, pos, c0.n);
    if (b0 != '\r' and b0 != '\n') {
        // c0 is in [^\r\n\p{L}\p{N}]: alternatives 1 and 2 first try it as the prefix.
        if (after < text.len) {
            switch (word1(text, after)) {
                .ok => |e| return e, // alt 1 with prefix
                .fail => |run_end| {
                    // alt 1 without prefix: only possible if c0 (a mark) is itself "both"; then
                    // it is the last "both" of its run, so `lower+` is just c0.
                    if (c0.p & ut.M != 0) return contractionOr(text, after);
                    // alt 2 with prefix (alt 2 without prefix needs c0 upper, i.e. a mark).
                    if (run_end > after) return contractionOr(text, run_end);
                },
            }
        } else if (c0.p & ut.M != 0) {
            return after; // a lone mark at the end: alt 1 without prefix
        }
    }
    // ` ?[^\s\p{L}\p{N}]+[\r\n/]*`
    var punct_start: ?usize = null;
    if (c0.p & space == 0) {
        punct_start = pos;
    } else if (b0 == ' ' and after < text.len and charAt(text, after).p & not_punct == 0) {
        punct_start = after;
    }
    if (punct_start) |s| return punctEnd(text, s, true);
    // c0 is whitespace.
    const w = wsRun(text, pos);
    if (w.nl_end != 0) return w.nl_end; // \s*[\r\n]+
    if (w.end == text.len) return w.end; // \s+(?!\S) at the end
    if (w.last_start > pos) return w.last_start; // \s+(?!\S)
    return w.end; // \s+ (a single code point)
}

// ---------------------------------------------------------------------------------------------
// Public interface

/// text[pos..] is non-empty, valid UTF-8 (callers validate). Returns the exclusive end of the piece
/// that starts at pos (pos < result <= text.len). Pieces are contiguous: the next piece starts at the result.
pub fn nextPieceEnd(comptime pat: Pattern, text: []const u8, pos: usize) usize {
    std.debug.assert(pos < text.len);
    const e = switch (pat) {
        .cl100k => cl100kEnd(3, text, pos),
        .o200k => o200kEnd(text, pos),
        .gpt2 => gpt2End(text, pos),
        .qwen2 => cl100kEnd(1, text, pos),
    };
    std.debug.assert(e > pos and e <= text.len);
    return e;
}

/// at_pretokenize checks its input. tools/bench_pretok.py builds a copy with this set to false to
/// time the scanners alone (the main library validates once, before it calls nextPieceEnd).
const export_validates_utf8 = true;

fn pretokenizeInto(comptime pat: Pattern, text: []const u8, out_ends: []u64) i64 {
    var n: usize = 0;
    var pos: usize = 0;
    while (pos < text.len) {
        if (n == out_ends.len) return -1;
        pos = nextPieceEnd(pat, text, pos);
        out_ends[n] = pos;
        n += 1;
    }
    return @intCast(n);
}

/// C-ABI export for tests: writes the end offset of each piece of data[0..len] into out_ends (cap entries);
/// returns the number of pieces, or -1 if cap is too small. Never panics.
/// Also returns -2 for an unknown pattern and -3 for input that is not valid UTF-8 (checked first).
export fn at_pretokenize(pattern: u32, data_in: ?[*]const u8, len: usize, out_ends_in: ?[*]u64, cap: usize) i64 {
    if (pattern > 2 and pattern != 4) return -2;
    if (len == 0) return 0;
    const data = data_in orelse return -4; // NULL buffer with a non-zero length
    const text = data[0..len];
    if (export_validates_utf8 and !std.unicode.utf8ValidateSlice(text)) return -3;
    const out_ends = out_ends_in orelse return if (cap == 0) -1 else -4;
    const out = out_ends[0..cap];
    return switch (pattern) {
        0 => pretokenizeInto(.cl100k, text, out),
        1 => pretokenizeInto(.o200k, text, out),
        2 => pretokenizeInto(.gpt2, text, out),
        else => pretokenizeInto(.qwen2, text, out),
    };
}

// ---------------------------------------------------------------------------------------------
// Tests

test "gpt2 pieces" {
    try expectPieces(.gpt2, "Hello world's 12345  x\n\ny 'LL", &.{ "Hello", " world", "'s", " 12345", " ", " x", "\n", "\n", "y", " '", "LL" });
    try expectPieces(.gpt2, "a  ", &.{ "a", "  " });
}

test "qwen2 splits digits one by one, otherwise as cl100k" {
    try expectPieces(.qwen2, "abc 12345 x", &.{ "abc", " ", "1", "2", "3", "4", "5", " x" });
    try expectPieces(.cl100k, "abc 12345 x", &.{ "abc", " ", "123", "45", " x" });
}

fn expectPieces(comptime pat: Pattern, text: []const u8, pieces: []const []const u8) !void {
    var pos: usize = 0;
    for (pieces) |want| {
        try std.testing.expect(pos < text.len);
        const e = nextPieceEnd(pat, text, pos);
        try std.testing.expectEqualStrings(want, text[pos..e]);
        pos = e;
    }
    try std.testing.expectEqual(text.len, pos);
}

test "cl100k basics" {
    try expectPieces(.cl100k, "Hello, world! I'm fine", &.{ "Hello", ",", " world", "!", " I", "'m", " fine" });
    try expectPieces(.cl100k, "12345 x", &.{ "123", "45", " x" });
    try expectPieces(.cl100k, "a  \n\n b  ", &.{ "a", "  \n\n", " b", "  " });
    try expectPieces(.cl100k, "x   y", &.{ "x", "  ", " y" });
    try expectPieces(.cl100k, "'ſ'LL'Re'x", &.{ "'ſ", "'LL", "'Re", "'x" });
    try expectPieces(.cl100k, "!!\r\n\r\nx", &.{ "!!\r\n\r\n", "x" });
    try expectPieces(.cl100k, "\tword \n", &.{ "\tword", " \n" });
}

test "o200k basics" {
    try expectPieces(.o200k, "Hello, WORLD's don't", &.{ "Hello", ",", " WORLD's", " don't" });
    try expectPieces(.o200k, "HTTPServer", &.{ "HTTPServer" });
    try expectPieces(.o200k, "camelCase", &.{ "camel", "Case" });
    try expectPieces(.o200k, "1234 //x\n", &.{ "123", "4", " //", "x", "\n" });
    try expectPieces(.o200k, "a  \n\n b  ", &.{ "a", "  \n\n", " b", "  " });
    try expectPieces(.o200k, "ʰABC d", &.{ "ʰ", "ABC", " d" });
    try expectPieces(.o200k, "\u{301}'s", &.{"\u{301}'s"});
}

test "contractions" {
    try std.testing.expectEqual(@as(?usize, 2), contraction("'s", 0));
    try std.testing.expectEqual(@as(?usize, 3), contraction("'ſ", 0));
    try std.testing.expectEqual(@as(?usize, null), contraction("'", 0));
    try std.testing.expectEqual(@as(?usize, null), contraction("'3", 0));
    try std.testing.expectEqual(@as(?usize, null), contraction("'r", 0));
    try std.testing.expectEqual(@as(?usize, 3), contraction("'vE", 0));
}

test "at_pretokenize errors" {
    var out: [4]u64 = undefined;
    const s = "a b c d e";
    try std.testing.expectEqual(@as(i64, -1), at_pretokenize(0, s.ptr, s.len, &out, out.len));
    try std.testing.expectEqual(@as(i64, -2), at_pretokenize(7, s.ptr, s.len, &out, out.len));
    const bad = "a\xffb";
    try std.testing.expectEqual(@as(i64, -3), at_pretokenize(1, bad.ptr, bad.len, &out, out.len));
    try std.testing.expectEqual(@as(i64, 0), at_pretokenize(1, s.ptr, 0, &out, 0));
    try std.testing.expectEqual(@as(i64, 2), at_pretokenize(1, "a b", 3, &out, out.len));
    try std.testing.expectEqual(@as(u64, 1), out[0]);
}

test "random code points: progress, bounds (Debug checks every index)" {
    var prng = std.Random.DefaultPrng.init(0x5eed);
    const r = prng.random();
    const alphabet = [_]u21{ '\'', 's', 'S', 0x17F, 'l', 'L', 'e', 'R', 'v', ' ', '\n', '\r', '\t', 0xA0, 0x3000, '/', '1', 'a', 'A', 0x1C5, 0x2B0, 0x4E2D, 0x301, '.', '!', 0 };
    var buf: [4 * 64]u8 = undefined;
    for (0..20_000) |_| {
        var len: usize = 0;
        const n = r.uintLessThan(usize, 64);
        for (0..n) |_| {
            var cp: u21 = if (r.boolean()) alphabet[r.uintLessThan(usize, alphabet.len)] else r.uintLessThan(u21, 0x110000);
            if (cp >= 0xD800 and cp < 0xE000) cp = 'x';
            len += std.unicode.utf8Encode(cp, buf[len..]) catch unreachable;
        }
        const text = buf[0..len];
        inline for (.{ Pattern.cl100k, Pattern.o200k }) |pat| {
            var pos: usize = 0;
            while (pos < text.len) {
                const e = nextPieceEnd(pat, text, pos);
                try std.testing.expect(e > pos and e <= text.len);
                // a piece ends on a code point boundary
                try std.testing.expect(e == text.len or text[e] & 0xC0 != 0x80);
                pos = e;
            }
        }
    }
}

test "pathological runs are single pieces or split as the patterns say" {
    const n = 100_000;
    const buf = try std.testing.allocator.alloc(u8, n + 1);
    defer std.testing.allocator.free(buf);
    for ([_]u8{ ' ', '\n', 'a', '\'' }) |ch| {
        @memset(buf, ch);
        buf[n] = 'x';
        // Both patterns: n spaces + "x" -> n-1 spaces, then " x"; n newlines + "x" -> the
        // newlines, then "x"; n+1 letters -> one piece; n apostrophes + "x" -> the apostrophes
        // (one punctuation run), then "x".
        const e1 = nextPieceEnd(.cl100k, buf, 0);
        const e2 = nextPieceEnd(.o200k, buf, 0);
        switch (ch) {
            ' ' => {
                try std.testing.expectEqual(@as(usize, n - 1), e1);
                try std.testing.expectEqual(@as(usize, n - 1), e2);
            },
            '\n' => {
                try std.testing.expectEqual(@as(usize, n), e1);
                try std.testing.expectEqual(@as(usize, n), e2);
            },
            'a' => {
                try std.testing.expectEqual(@as(usize, n + 1), e1);
                try std.testing.expectEqual(@as(usize, n + 1), e2);
            },
            else => {
                try std.testing.expectEqual(@as(usize, n), e1);
                try std.testing.expectEqual(@as(usize, n), e2);
            },
        }
    }
}
