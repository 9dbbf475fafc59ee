//! Bit-parallel piece boundaries for cl100k_base, 64 bytes at a time.
//!
//! `pretok.zig`'s scanner walks the text one piece at a time: about 70 instructions and half a
//! branch misprediction per piece (callgrind, English), a quarter of the encoder's time. Here a
//! block of 64 bytes is classified with vector compares into bit masks (letter, digit, space,
//! other whitespace, newline, punctuation, apostrophe, ...), and the set of positions where a
//! piece starts is computed from those masks with shifts, adds and bit reversals, with no branch
//! per piece. The encoder then walks the set bits.
//!
//! The rules below restate cl100k's regex (see pretok.zig) as local facts about ASCII text,
//! given that the block's first byte starts a piece (every piece start is a safe place to
//! resume: the regex restarts there). With c(i) the class of position i and "start(i)" meaning
//! a piece starts at i:
//! - letters: a run of letters is never split, except by a contraction (below). Its first
//!   letter a starts a piece unless the code point before it is taken as the optional prefix of
//!   `[^\r\n\p{L}\p{N}]?+\p{L}++`: that happens when c(a-1) is a space or another non-newline
//!   whitespace (a whitespace code point followed by a non-space always starts a piece), or
//!   punctuation that itself starts a piece (a run of one punctuation code point, not preceded
//!   by U+0020).
//! - punctuation: `` ?[^\s\p{L}\p{N}]++[\r\n]*+`` takes the whole run, so only a run's first
//!   code point can start a piece, and it does unless U+0020 precedes it (the space takes it).
//!   The newlines right after the run belong to that piece ("absorbed").
//! - contractions: an apostrophe that starts a piece and is followed by s/d/m/t or ll/ve/re (any
//!   case) is a piece of 2 or 3 bytes; a piece starts right after it, even inside letters.
//! - digits: a run starts a piece; inside it, every third digit (`\p{N}{1,3}+`).
//! - whitespace (a run [a, b), minus the newlines absorbed by punctuation before it): its first
//!   remaining code point starts a piece; `\s*[\r\n]` ends a piece after the run's last newline;
//!   of what follows the last newline, `\s+(?!\S)` leaves the last code point to the next piece
//!   when there are two or more. At the end of the text `\s++$` takes the whole rest instead.
//!
//! ASCII is classified, plus U+2010..U+2027 (E2 80 90..A7: dashes, quotation marks,
//! bullets, the ellipsis; all punctuation), whose three bytes are punctuation bytes in place,
//! and the other multi-byte code points but digits and whitespace: letters, each byte of which
//! takes the letter's class (cl100k: any \p{L} but ſ; o200k: Lu/Lt as uppercase, Ll as
//! lowercase): no rule looks inside a letter run, so only the bytes' classes matter there; and
//! punctuation (`[^\s\p{L}\p{N}]`, for cl100k marks too), each byte of which is a punctuation
//! byte. The one rule that counts code points (a single punctuation code point as a word's
//! prefix) looks two bytes back past the previous code point's length. Code points whose
//! class vector compares give (`vectorClass`, `vectorClass3`: Latin-1, Cyrillic, CJK, kana,
//! Hangul, CJK punctuation) are classified 64 at a time; a loop takes the others one by one
//! through the property table. The first code point not classified (a non-ASCII digit or
//! whitespace, ſ, one that runs past the block) is replaced by an ASCII byte of the same
//! class for these rules (letter 'x', ſ 's' since it is a contraction letter, digit '0',
//! whitespace '\t', other '#'), and nothing after it is decided. Whatever the block
//! cannot decide (a whitespace run whose end lies past what was looked at, the end of the text
//! inside such a run) is left to the next block, which starts at the last decided piece start,
//! or to the scalar scanner when no piece ended inside the block.
//!
//! o200k_base differs in three places: a word ends where a lowercase letter meets an uppercase
//! one; a contraction right after a word's letters belongs to that word's piece (and a piece
//! starts after it); the punctuation piece also takes slashes after its newlines (`[\r\n/]*`),
//! and at the end of the text `\s+(?!\S)` takes the whole last run. Its Lm/Lo/M letters are
//! in both of its case classes (`[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+`,
//! with backtracking): taken as lowercase, a letter run splits exactly as the regex splits it
//! unless one of them is directly followed by an uppercase letter ("bAc" is one piece, not
//! "b" "Ac"); and a mark, which is also `[^\s\p{L}\p{N}]`, can join a punctuation run ("!!" and
//! a combining accent are one piece). A block with either decides nothing.
//!
//! tests: the Zig tests below compare every start against pretok.nextPieceEnd on random texts
//! from every start of the text, for both patterns (a mutation of any rule above fails them);
//! tests/test_exact.py and the hypothesis tests check ids against tiktoken end to end.
//!
//! Performance notes (1 thread; "scan" = the scanners alone over the bench corpora's rows, best
//! of 7; "encode" = encode_arrow, the library loaded twice in one process, interleaved medians)
//! - scan, cl100k, MB/s scalar -> blocks: English 667 -> 967, code 611 -> 1525, dictionary
//!   597 -> 1350, 20k docs 542 -> 685, 200k lines 549 -> 685, multilingual 688 -> 661.
//!   Two things made most of that: the end of the text as a decided start (each row's last
//!   block used to decide nothing and fall back to the scalar scanner), and going to the scalar
//!   scanner straight past a cut instead of restarting a block on the non-ASCII code point.
//!   Where blocks keep cutting early the scalar stretch doubles (multilingual 501 -> 661), and
//!   text with more than one non-ASCII byte in 16 skips blocks (`worthBlocks`).
//! - encode: cl100k code +20-28%, dictionary +13%, English +3-6%, docs +1-6%, lines +1%;
//!   o200k code +18%, docs +7%, English +1%. Only about half of the scanner's saving shows:
//!   the loop then waits on the piece table's loads (vocab.zig's notes).
//! - o200k blocks ran at half the speed of cl100k's (scan: English 671 vs 1011, code 944 vs
//!   1641): LLVM sank the '/' compare past the whitespace-run branches and rebuilt its 64 lanes
//!   with 60 byte extracts and inserts (objdump). Pinning it next to the other compares
//!   (`early`): o200k scan English 864, code 1355, docs 572 -> 669; encode (cold) English +7%,
//!   code +8%, docs +15%.
//! - U+2010..U+2027 classified in place (session 5): English books have a curly quote or dash
//!   every ~125 bytes, and 29% of their blocks stopped at one and went to the scalar scanner.
//!   scan English cl100k 1023 -> 1487 MB/s, o200k 852 -> 1201; blocks that stopped early
//!   10130 -> 459 of 34881; encode English +8% (cl100k) / +11% (o200k), docs +2%.
//! - Did not pay (session 5): an x86-64-v4 (AVX-512) build: cl100k encode +1-3%, o200k English
//!   -9%. The UTF-8 check skipping ASCII blocks after ASCII blocks and all-ASCII row tails:
//!   +-0 (its share in perf is the first touch of each row's bytes, which moves, not goes).
//!   In pretok.zig's letter runs, CJK ideographs and Hangul syllables skipped undecoded (3
//!   bytes, no table): multilingual -3 to -8%, docs +-0. Big-table answers of 4..8 ids moved
//!   as two 16-byte words instead of a memcpy call: +-0.
//! - Digit groups: a loop adding one group per iteration (up to 21 per block) became three
//!   phase fills (constant time).
//! - Session 11 (scan = a harness running the encoder's block loop without the lookups over
//!   the bench corpora's 2 MB of rows, best of 25; o200k code has 12.7 pieces a block, and
//!   the scan was ~40% of its per-piece time): the contraction letters (eight compares) only
//!   for blocks with an apostrophe, the newline-run fill (three bit reversals) only where a
//!   space or tab precedes a newline, the digit groups only where there are digits: scan
//!   o200k code 1130 -> 1270 MB/s, English 1078 -> 1270, cl100k code 1343 -> 1460, English
//!   1279 -> 1430; encode (in-process A/B, cold) o200k code 1.048x, English 1.047x,
//!   dictionary 1.045x, docs 1.075x, cl100k 0.99-1.036x. worthBlocks counting raw non-ASCII
//!   bytes before the U+2010 correction: +1-2%. The x86-64-v4 build (AVX-512 compares into
//!   mask registers; _native.py picks it at import): scan +5-10%, encode o200k code 1.034x,
//!   English 1.042x, others 0.99-1.02x.
//!   Did not pay: the U+2010 compares skipped for blocks without a non-ASCII byte and the
//!   whitespace classes from one range compare (+-1%); a row's last block loaded whole from
//!   the Arrow buffer and masked (the bytes after the row are readable) instead of copied into
//!   a 64-byte buffer: -3 to +5% over two runs, noise.
//! - Session 26: multi-byte letters in place (above), with `worthBlocks` counting two-byte
//!   letters of Latin, Greek, Cyrillic, Armenian (and for cl100k Hebrew, Arabic) as ASCII: the
//!   20k documents' bytes that go through blocks 64% -> 88% (cl100k) / 72% (o200k). callgrind
//!   (3 count_tokens_arrow calls, x86-64-v3 build): docs cl100k 212.8M -> 208.2M instructions in
//!   the scanners and the encode loop, 2.20M -> 1.95M mispredicted branches; lines o200k +0.06%
//!   instructions, +0.4% mispredictions (neutral). In-process A/B (encode_arrow, 1 thread, 25
//!   rounds, both orders): docs cl100k 1.026x / 1.095x, o200k 1.038x / 1.014x; multilingual
//!   0.99-1.02x; lines cl100k 1.02-1.05x, o200k 0.96-0.99x; English 1.02-1.07x (15 rounds).
//!   Each in-place code point cost a trip of a scalar loop (a 2 KB table for two-byte ones,
//!   the property tables for longer ones); `vectorClass` now takes the two-byte letters whose
//!   lead byte (and continuation range) decides, 64 at a time: callgrind blockStarts docs
//!   cl100k 76.9M -> 72.4M instructions, multilingual o200k 20.9M -> 15.4M (mispredicted
//!   branches 58k -> 46k); A/B docs cl100k 1.035x / 1.027x, others 0.99-1.04x.
//! - Session 32 (a 2-core Intel VM; callgrind --branch-sim on the x86-64-v3 build, one steady
//!   pass, `bench/callgrind_pass.py`; instructions / mispredicted branches, base -> this):
//!   multi-byte punctuation (and cl100k's marks) in place as punctuation bytes, o200k's
//!   Lm/Lo/M letters in place as lowercase (with the two exceptions in the header), the common
//!   three-byte code points by vector compares (`vectorClass3`), and `worthBlocks` counting
//!   lead bytes E3..ED as classified (so rows of Japanese, Chinese and Korean go to blocks):
//!   20k documents cl100k 134.5M / 1.10M -> 137.2M / 1.09M, o200k 133.4M / 1.04M -> 135.6M /
//!   1.00M; 200k lines cl100k 375.2M / 1.94M -> 376.6M / 1.95M, o200k 380.4M / 1.88M ->
//!   384.8M / 1.70M; multilingual cl100k 49.3M / 0.43M -> 48.8M / 0.37M. The rows moved to
//!   blocks cost the blocks about what they saved the scalar scanner: their pieces are long
//!   (CJK text is split at punctuation only), so a block decides few of them, and the next
//!   block starts at the last piece start (about 50 bytes on from the last, simulated).
//!   In-process A/B (bench/ab_builds.py, x86-64-v4 build, 15-21 rounds, both orders; the
//!   machine's speed swung 1.5x between runs): multilingual cl100k 1.048x / 1.011x, o200k
//!   1.007x / 1.032x; 200k lines o200k 1.023x / 1.032x, cl100k 0.995x / 1.000x; 20k
//!   documents 0.93-1.06x over eight runs (neutral by callgrind).
//!   Not kept: the loop over the code points left after the vector classes without a branch
//!   on the class (a class per property byte, two- and three-byte code points decoded without
//!   a branch on the length, selects into the masks): blockStarts 33.7M -> 36.7M instructions
//!   (documents cl100k), 39.0M -> 42.9M (o200k), mispredicted branches unchanged: the class
//!   branches were predictable (runs of one script).
//!   Not kept either: Greek (CE/CF), Hebrew and Arabic letters (D7..DB) in `vectorClass`
//!   (250k trips of the loop a pass of the 200k lines): lines 384.8M -> 380.1M instructions
//!   (o200k), 376.6M -> 372.1M (cl100k), but documents 137.2M -> 138.8M (cl100k), 135.6M ->
//!   138.2M (o200k), mispredicted branches -1 to -2%: the compares cost every block with a
//!   non-ASCII byte.
const std = @import("std");
const pretok = @import("pretok.zig");
const ut = @import("unicode_tables.zig");

const V = @Vector(64, u8);

inline fn bits(b: @Vector(64, bool)) u64 {
    return @bitCast(b);
}

inline fn sp(x: u8) V {
    return @splat(x);
}

const letter: u8 = ut.Lu | ut.Ll | ut.Lt | ut.Lm | ut.Lo;

/// Class bits of one ASCII byte (or the "none" byte 0x80), as bit 0 of each field.
const One = struct {
    L: u64,
    N: u64,
    SP: u64,
    OW: u64,
    NL: u64,
    P: u64,
    C1: u64,
    CL: u64,
    CVR: u64,
    CE: u64,

    fn of(c: u8) One {
        const hi = c >= 0x80;
        const lo = c | 0x20;
        const l = !hi and lo -% 'a' < 26;
        const n = c -% '0' < 10;
        const s = c == ' ';
        const ow = c == '\t' or c == 0x0B or c == 0x0C;
        const nl = c == '\n' or c == '\r';
        return .{
            .L = @intFromBool(l),
            .N = @intFromBool(n),
            .SP = @intFromBool(s),
            .OW = @intFromBool(ow),
            .NL = @intFromBool(nl),
            .P = @intFromBool(!hi and !l and !n and !s and !ow and !nl),
            .C1 = @intFromBool(!hi and (lo == 's' or lo == 'd' or lo == 'm' or lo == 't')),
            .CL = @intFromBool(!hi and lo == 'l'),
            .CVR = @intFromBool(!hi and (lo == 'v' or lo == 'r')),
            .CE = @intFromBool(!hi and lo == 'e'),
        };
    }
};

comptime {
    // The vector classes must be exactly the property table's classes on ASCII.
    @setEvalBranchQuota(20_000);
    for (0..128) |c| {
        const p = ut.props(@intCast(c));
        const o = One.of(@intCast(c));
        std.debug.assert((o.L == 1) == (p & letter != 0));
        std.debug.assert((o.N == 1) == (p & ut.N != 0));
        std.debug.assert((o.SP | o.OW | o.NL == 1) == (p & ut.WS != 0));
        std.debug.assert(o.SP + o.OW + o.NL + o.L + o.N + o.P == 1);
    }
}

/// Mask of the positions 0..k (inclusive), k < 64.
inline fn upTo(k: usize) u64 {
    return if (k >= 63) ~@as(u64, 0) else (@as(u64, 2) << @intCast(k)) - 1;
}

/// M & (the runs of M from each seed bit upwards).
inline fn fillUp(m: u64, seed: u64) u64 {
    return m & (((m +% seed) ^ m) | seed);
}

/// Pins a mask's computation here, next to the other compares. (LLVM sank the '/' compare past
/// the whitespace-run branches, where it rebuilt the 64 lanes with 60 byte extracts and
/// inserts: o200k blocks ran at half the speed of cl100k's.)
inline fn early(x: u64) u64 {
    var y = x;
    asm volatile (""
        : [y] "+r" (y),
    );
    return y;
}

/// Bit reversal by byte swap and three mask-and-shift swaps.
inline fn rev64(x0: u64) u64 {
    var x = @byteSwap(x0);
    x = ((x >> 4) & 0x0F0F0F0F0F0F0F0F) | ((x & 0x0F0F0F0F0F0F0F0F) << 4);
    x = ((x >> 2) & 0x3333333333333333) | ((x & 0x3333333333333333) << 2);
    x = ((x >> 1) & 0x5555555555555555) | ((x & 0x5555555555555555) << 1);
    return x;
}

/// Start of the run of `w` bits that contains bit `top` (w has bit `top` set).
inline fn runStart(w: u64, top: usize) usize {
    const below = ~w & (upTo(top) >> 1);
    return if (below == 0) 0 else 64 - @clz(below);
}

/// Longest stretch the top-of-block whitespace scan looks at before it gives up.
const scan_cap = 64;

/// Whether blocks pay on this text: they decide nothing past a non-ASCII code point that they
/// do not classify in place, so on text with more than about one such byte in 16 the scalar
/// scanner is as fast (measured on the multilingual and 20k-document corpora).
/// The U+2010..U+2027 punctuation and the multi-byte letters that blocks classify in place do
/// not count (English dialogue rows, a third of whose bytes can be curly quotes, went to the
/// scalar scanner); the letters are estimated from their lead bytes (`letterBytes`).
pub fn worthBlocks(text: []const u8, avail: usize) bool {
    // Non-ASCII bytes first (one compare a chunk); the corrections only when they are too
    // many without them.
    var raw: usize = 0;
    var i: usize = 0;
    while (i + 64 <= text.len) : (i += 64) raw += @popCount(bits(@as(V, text[i..][0..64].*) >= sp(0x80)));
    const last = lastBlock(text, avail, i, 0);
    raw += @popCount(bits(last >= sp(0x80)));
    if (raw * 16 <= text.len) return true;
    var hi: usize = 0;
    i = 0;
    while (i + 64 <= text.len) : (i += 64) hi += foreignBytes(text[i..][0..64].*);
    hi += foreignBytes(last);
    return hi * 16 <= text.len;
}

/// text[b..] (fewer than 64 bytes) as a block, padded with `pad`. `avail` (>= text.len): bytes
/// readable from text.ptr; when the block fits in them it is one load and a select, else a copy
/// (every row of a column ends in such a block: see encode.Sink.read_end for what it gave).
inline fn lastBlock(text: []const u8, avail: usize, b: usize, comptime pad: u8) V {
    const n = text.len - b;
    if (b + 64 <= avail) {
        const raw: V = text.ptr[0..avail][b..][0..64].*;
        return @select(u8, std.simd.iota(u8, 64) < @as(V, @splat(@intCast(n))), raw, sp(pad));
    }
    var buf: [64]u8 = @splat(pad);
    @memcpy(buf[0..n], text[b..]);
    return buf;
}

/// Non-ASCII bytes of a 64-byte chunk, less those of the U+2010..U+2027 code points and of
/// the code points that `letterBytes` takes for letters (a lower bound of 0).
inline fn foreignBytes(v: V) usize {
    return (@popCount(bits(v >= sp(0x80))) - 3 * @popCount(dashLeads(v))) -| letterBytes(v);
}

/// The leads of the chunk's U+2010..U+2027 code points (E2 80 90..A7), which blocks take for
/// punctuation in place.
inline fn dashLeads(v: V) u64 {
    return bits(v == sp(0xE2)) & (bits(v == sp(0x80)) >> 1) & (bits((v -% sp(0x90)) < sp(0x18)) >> 2);
}

/// Bytes of the chunk's code points that blocks classify in place, estimated from lead bytes
/// (for `worthBlocks`; the blocks check each one): two-byte U+00C0..U+02FF (Latin),
/// U+0380..U+057F (Greek, Cyrillic, Armenian), U+05C0..U+06FF (Hebrew, Arabic); three-byte
/// U+3000..U+DFFF (CJK, kana, Hangul: `vectorClass3`). Session 26 had found three-byte letters
/// not worth a block (counted here, they made the 20k documents and the multilingual files
/// slower: a block's loop per code point cost more than the scalar scanner's letter run);
/// session 32 classifies the common ones 64 at a time (see the performance notes above).
inline fn letterBytes(v: V) usize {
    const two = bits((v -% sp(0xC3)) < sp(0xCC - 0xC3)) | bits((v -% sp(0xCE)) < sp(0xD6 - 0xCE)) |
        bits((v -% sp(0xD7)) < sp(0xDC - 0xD7));
    // Three-byte: the lead bytes E3..ED (U+3000..U+DFFF: CJK, kana, Hangul), most of whose
    // code points `vectorClass3` takes.
    const three = bits((v -% sp(0xE3)) < sp(0xEE - 0xE3));
    return 2 * @popCount(two) + 3 * @popCount(three);
}

/// What a block decided.
pub const Starts = struct {
    /// Bit i: a piece starts at b+i. Bit 0 is always set; when the text ends inside the block
    /// (at b+n, n < 64), bit n is set too (the last piece ends there).
    mask: u64,
    /// Positions b..b+top were decided (bits above are clear).
    top: u32,
    /// The block stopped at `top` because of a non-ASCII code point or a whitespace run it could
    /// not see the end of: the scalar scanner should take the text past b+top.
    cut: bool,
};

pub const Pat = enum { cl100k, o200k };

/// How a block classifies a multi-byte code point with properties `p` in place: 1 = a letter
/// (cl100k) or an uppercase / titlecase letter (o200k), 2 = a lowercase letter (o200k), 3 =
/// punctuation (`[^\s\p{L}\p{N}]`; for o200k also not \p{M}), 4 = o200k's Lm / Lo letters
/// and 5 its marks (in both of its case classes), 0 = not in place (digits and whitespace: the
/// block ends there). ſ (U+017F, which `(?i)` matches as the contraction letter s) is left to
/// the stand-in path (`two_byte_class`).
inline fn inPlaceClass(comptime pat: Pat, p: u8) u8 {
    if (p & (ut.N | ut.WS) != 0) return 0;
    if (pat == .cl100k) return if (p & letter != 0) 1 else 3;
    if (p & ut.M != 0) return 5;
    if (p & (ut.Lm | ut.Lo) != 0) return 4;
    if (p & (ut.Lu | ut.Lt) != 0) return 1;
    if (p & ut.Ll != 0) return 2;
    return 3;
}

/// `inPlaceClass` of every two-byte code point (U+0080..U+07FF), indexed by the code point.
const two_byte_class: [2][2048]u8 = blk: {
    @setEvalBranchQuota(200_000);
    var t: [2][2048]u8 = undefined;
    for (0..2) |pi| {
        for (0..2048) |cp| {
            t[pi][cp] = if (cp < 0x80 or cp == 0x17F) 0 else inPlaceClass(@enumFromInt(pi), ut.props(@intCast(cp)));
        }
    }
    break :blk t;
};

/// Lead bytes (positions in `leads`, each followed by its continuation byte in the block) of
/// two-byte letters that vector compares classify: `a` as `inPlaceClass` 1, `b` as 2. cl100k:
/// the all-letter lead bytes C4, C6..CA, D0, D1, D3, DA, and C3 / C5 but for ×, ÷, ſ; o200k:
/// Latin-1's letters (C3: upper below 9F) and the basic Cyrillic alphabet (D0: upper below B0,
/// lower from B0; D1: lower below A0). The comptime block below checks them against the table.
const VC = struct { a: u64, b: u64 };

inline fn vectorClass(comptime pat: Pat, v: V, leads: u64) VC {
    const nx = std.simd.shiftElementsLeft(v, 1, 0); // the byte after each position
    const c3 = bits(v == sp(0xC3));
    if (pat == .cl100k) {
        const all = bits(v == sp(0xC4)) | bits((v -% sp(0xC6)) < sp(5)) | bits((v -% sp(0xD0)) < sp(2)) |
            bits(v == sp(0xD3)) | bits(v == sp(0xDA));
        const some = (c3 & ~bits(nx == sp(0x97)) & ~bits(nx == sp(0xB7))) | (bits(v == sp(0xC5)) & ~bits(nx == sp(0xBF)));
        return .{ .a = (all | some) & leads, .b = 0 };
    }
    const d0 = bits(v == sp(0xD0));
    const lo_c3 = bits(nx < sp(0x9F));
    const up = (c3 & lo_c3 & ~bits(nx == sp(0x97))) | (d0 & bits(nx < sp(0xB0)));
    const lw = (c3 & ~lo_c3 & ~bits(nx == sp(0xB7))) | (d0 & bits(nx >= sp(0xB0))) | (bits(v == sp(0xD1)) & bits(nx < sp(0xA0)));
    return .{ .a = up & leads, .b = lw & leads };
}

comptime {
    // vectorClass agrees with two_byte_class on every two-byte code point it classifies.
    @setEvalBranchQuota(2_000_000);
    for ([_]Pat{ .cl100k, .o200k }) |pat| {
        for (0xC2..0xE0) |lead| {
            for (0x80..0xC0) |cont| {
                var arr: [64]u8 = @splat(' ');
                arr[0] = lead;
                arr[1] = cont;
                const vc = vectorClass(pat, arr, 1);
                const want = two_byte_class[@intFromEnum(pat)][(lead & 0x1F) << 6 | (cont & 0x3F)];
                if (vc.a & 1 != 0 and want != 1) @compileError("vectorClass: class 1 for a code point that is not");
                if (vc.b & 1 != 0 and want != 2) @compileError("vectorClass: class 2 for a code point that is not");
            }
        }
    }
}

/// Leads of the three-byte code points that vector compares classify (each followed by its two
/// continuation bytes in the block, `leads`): `letter` the CJK ideographs (U+3400..U+4DBF,
/// U+4E00..U+9FFF), Hangul syllables (U+AC00..U+D77F) and kana (U+3041..U+3096,
/// U+30A1..U+30FF but U+30FB), all Lo or Lm (cl100k: `inPlaceClass` 1, o200k: 4); `punct` the
/// CJK brackets and stops (U+3001..U+3003, U+3008..U+3011, U+3014..U+301F) and the fullwidth
/// ones (U+FF01..U+FF0F, U+FF1A..U+FF20): `inPlaceClass` 3. Japanese, Chinese and Korean text
/// is mostly these; the loop in `blockStarts` took them one at a time through the property
/// table. A Zig test checks every three-byte code point against the table.
const VC3 = struct { letter: u64, punct: u64 };

inline fn vectorClass3(v: V, leads: u64) VC3 {
    const nx = std.simd.shiftElementsLeft(v, 1, 0);
    const nx2 = std.simd.shiftElementsLeft(v, 2, 0);
    const e3 = bits(v == sp(0xE3));
    const e4 = bits(v == sp(0xE4));
    const n81 = bits(nx == sp(0x81));
    const n82 = bits(nx == sp(0x82));
    const n83 = bits(nx == sp(0x83));
    const han = bits((v -% sp(0xE5)) < sp(5)) | (e4 & ~bits(nx == sp(0xB7))) | (e3 & bits(nx >= sp(0x90)));
    const hangul = (bits(v == sp(0xEA)) & bits(nx >= sp(0xB0))) | bits((v -% sp(0xEB)) < sp(2)) |
        (bits(v == sp(0xED)) & bits(nx < sp(0x9E)));
    const kana = e3 & ((n81 & bits(nx2 >= sp(0x81))) | (n82 & (bits(nx2 <= sp(0x96)) | bits(nx2 >= sp(0xA1)))) |
        (n83 & ~bits(nx2 == sp(0xBB))));
    const cjk_p = e3 & bits(nx == sp(0x80)) & (bits((nx2 -% sp(0x81)) < sp(3)) | bits((nx2 -% sp(0x88)) < sp(10)) |
        bits((nx2 -% sp(0x94)) < sp(12)));
    const full_p = bits(v == sp(0xEF)) & bits(nx == sp(0xBC)) & (bits((nx2 -% sp(0x81)) < sp(15)) | bits((nx2 -% sp(0x9A)) < sp(7)));
    return .{ .letter = (han | hangul | kana) & leads, .punct = (cjk_p | full_p) & leads };
}

/// ASCII stand-in for the (valid, non-ASCII) code point at text[i], for the pattern's rules:
/// letter 'x' (o200k: 'X' for Lu/Lt), ſ 's' (a contraction letter), digit '0', whitespace
/// '\t' (not U+0020, not \r \n), other '#'; 0 when there is none (o200k's Lm/Lo/M letters,
/// which are in both of its case classes).
fn standInFor(comptime pat: Pat, text: []const u8, i: usize) u8 {
    if (text[i] == 0xC5 and i + 1 < text.len and text[i + 1] == 0xBF) return 's'; // ſ: Ll, folds to s
    const c = pretok.charAt(text, i);
    if (pat == .cl100k) {
        if (c.p & letter != 0) return 'x';
    } else {
        if (c.p & (ut.Lm | ut.Lo | ut.M) != 0) return 0;
        if (c.p & (ut.Lu | ut.Lt) != 0) return 'X';
        if (c.p & ut.Ll != 0) return 'x';
    }
    if (c.p & ut.N != 0) return '0';
    if (c.p & ut.WS != 0) return '\t';
    return '#';
}

inline fn byteAtFor(comptime pat: Pat, text: []const u8, i: usize) u8 {
    if (i >= text.len) return 0x80; // none
    const c = text[i];
    if (c < 0x80) return c;
    const s = standInFor(pat, text, i);
    return if (s == 0) 'x' else s; // a letter either way; only its case could matter, and only past the block
}

/// Apostrophes of a block that begin a contraction `'(s|t|re|ve|m|ll|d)` (any case; `cf`), and
/// the positions followed by one of s, d, m, t (`nC1`: a two-byte contraction there).
const Contr = struct { cf: u64 = 0, nC1: u64 = 0 };

fn contractions(v: V, Q: u64, a1: One, a2: One) Contr {
    const lo = v | sp(0x20);
    const C1 = bits(lo == sp('s')) | bits(lo == sp('d')) | bits(lo == sp('m')) | bits(lo == sp('t'));
    const CL = bits(lo == sp('l'));
    const CVR = bits(lo == sp('v')) | bits(lo == sp('r'));
    const CE = bits(lo == sp('e'));
    const nC1 = (C1 >> 1) | (a1.C1 << 63);
    const nCL = (CL >> 1) | (a1.CL << 63);
    const nCVR = (CVR >> 1) | (a1.CVR << 63);
    const n2CL = (CL >> 2) | (a1.CL << 62) | (a2.CL << 63);
    const n2CE = (CE >> 2) | (a1.CE << 62) | (a2.CE << 63);
    return .{ .cf = Q & (nC1 | (nCL & n2CL) | (nCVR & n2CE)), .nC1 = nC1 };
}

pub fn blockStarts(comptime pat: Pat, text: []const u8, avail: usize, b: usize) Starts {
    const len = text.len;
    std.debug.assert(b < len and avail >= len);
    var v: V = undefined;
    var n: usize = 64; // positions of the block inside the text
    if (b + 64 <= len) {
        v = text[b..][0..64].*;
    } else {
        n = len - b;
        v = lastBlock(text, avail, b, 0x80);
    }
    // Decided positions: 0..top. `eof`: the text ends right after position top.
    var top: usize = n - 1;
    var eof = b + n == len;
    var cut = false;
    // The code point after `top` is known not to be whitespace (a cut at a non-ASCII one).
    var next_not_ws = false;
    var after: u8 = 0x80; // the byte after the block, if it is inside the text
    var after2: u8 = 0x80;
    // Multi-byte code points classified in place (every byte of the code point takes its
    // class), in order, up to the first code point that is not one (or that runs past the
    // block): cl100k's \p{L} in `LA`; o200k's Lu/Lt in `LA` and Ll in `LB`; punctuation in `PX`
    // (with `lead2` / `lead3` / `lead4` the leads of its two-, three- and four-byte code
    // points); o200k's Lm/Lo/M letters in `BX` (and the marks' leads in `mlead`), which take
    // the lowercase class (see below).
    // U+2010..U+2027 (dashes, quotation marks, bullets, ellipsis), all punctuation, are taken
    // first, 64 at a time: English books have one in ~125 bytes (curly quotes), and a block
    // used to stop at the first.
    const g_lead = dashLeads(v);
    var LA: u64 = 0;
    var LB: u64 = 0;
    var PX: u64 = g_lead | (g_lead << 1) | (g_lead << 2);
    var BX: u64 = 0;
    var lead2: u64 = 0;
    var lead3: u64 = g_lead;
    var lead4: u64 = 0;
    var mlead: u64 = 0;
    var hi = bits(v >= sp(0x80)) & upTo(n - 1) & ~PX;
    if (hi != 0) {
        // Two-byte letters whose lead byte (and continuation range) says the class, 64 at a
        // time (`vectorClass`); the loop takes the others, in order, and what the vector marked
        // past the loop's stop is undone.
        const vc = vectorClass(pat, v, hi & (if (n >= 2) upTo(n - 2) else 0));
        LA = vc.a | (vc.a << 1);
        LB = vc.b | (vc.b << 1);
        if (hi & bits(v >= sp(0xE0)) != 0) {
            const v3 = vectorClass3(v, hi & (if (n >= 3) upTo(n - 3) else 0));
            const l3 = v3.letter | (v3.letter << 1) | (v3.letter << 2);
            if (pat == .cl100k) LA |= l3 else BX |= l3;
            PX |= v3.punct | (v3.punct << 1) | (v3.punct << 2);
            lead3 |= v3.punct;
        }
        var m = hi & ~(LA | LB | BX | PX);
        while (m != 0) {
            const k: usize = @ctz(m);
            const c0 = text[b + k];
            var cl: usize = 2;
            var cls: u8 = 0;
            if (c0 < 0xE0) {
                if (k + 2 > n) break;
                cls = two_byte_class[@intFromEnum(pat)][@as(usize, c0 & 0x1F) << 6 | (text[b + k + 1] & 0x3F)];
            } else {
                cl = if (c0 < 0xF0) 3 else 4;
                if (k + cl > n) break;
                cls = inPlaceClass(pat, pretok.charAt(text, b + k).p);
            }
            const span = ((@as(u64, 1) << @intCast(cl)) - 1) << @intCast(k);
            const at = @as(u64, 1) << @intCast(k);
            switch (cls) {
                1 => LA |= span,
                2 => LB |= span,
                3 => {
                    PX |= span;
                    switch (cl) {
                        2 => lead2 |= at,
                        3 => lead3 |= at,
                        else => lead4 |= at,
                    }
                },
                4 => BX |= span,
                5 => {
                    BX |= span;
                    mlead |= at;
                },
                else => break,
            }
            m &= ~span;
        }
        hi = m;
        if (hi != 0) {
            const below = (@as(u64, 1) << @intCast(@ctz(hi))) - 1;
            LA &= below;
            LB &= below;
            PX &= below;
            BX &= below;
            lead2 &= below;
            lead3 &= below;
            lead4 &= below;
            mlead &= below;
        }
    }
    if (hi != 0) {
        // Keep the first other non-ASCII code point as its stand-in; the block ends there.
        // Without a stand-in (o200k's Lm/Lo/M), it ends just before it.
        const k: usize = @ctz(hi);
        const stand = standInFor(pat, text, b + k);
        var arr: [64]u8 = v;
        arr[k] = if (stand == 0) 0x80 else stand;
        for (k + 1..64) |j| arr[j] = 0x80;
        v = arr;
        eof = false;
        cut = true;
        if (stand == 0) {
            if (k == 0) return .{ .mask = 1, .top = 0, .cut = true };
            top = k - 1;
            next_not_ws = true;
        } else top = k;
    } else if (!eof) {
        after = byteAtFor(pat, text, b + 64);
        after2 = if (text[b + 64] < 0x80) byteAtFor(pat, text, b + 65) else 0x80;
    }

    const UP = bits((v -% sp('A')) < sp(26)) | (if (pat == .o200k) LA else 0);
    const LW = bits((v -% sp('a')) < sp(26)) | LB | BX;
    const L = UP | LW | (if (pat == .cl100k) LA else 0);
    const N = bits((v -% sp('0')) < sp(10));
    const SP = bits(v == sp(' '));
    const OW = bits(v == sp('\t')) | bits(v == sp(0x0B)) | bits(v == sp(0x0C));
    const NL = bits(v == sp('\n')) | bits(v == sp('\r'));
    const HI = bits(v >= sp(0x80)) & ~(LA | LB | PX | BX);
    const W = SP | OW | NL;
    const R = SP | OW;
    const P = ~(L | N | W | HI);
    if (pat == .o200k and BX != 0) {
        // o200k's Lm/Lo/M letters (`BX`) are in both case classes. Taken as lowercase, a run
        // of letters splits as the regex splits it unless one of them is followed by an
        // uppercase letter ("bAc" is one piece: `upper*` takes "bA"). And a mark after
        // punctuation can join the punctuation's piece (" !\u{301}", "!!\u{301}"). Either way
        // the block decides nothing (rare in text).
        if ((BX & (UP >> 1)) | (mlead & (P << 1)) != 0) return .{ .mask = 1, .top = 0, .cut = true };
    }
    const Q = bits(v == sp('\''));
    const SL = if (pat == .o200k) early(bits(v == sp('/'))) else 0;

    // Nothing before the block is looked at: bit 0 starts a piece, and given that, no rule for
    // a later position depends on what precedes it (the Zig tests check this from every start).
    const a1 = One.of(after);
    const a2 = One.of(after2);

    const pL = L << 1;
    const pN = N << 1;
    const pSP = SP << 1;
    const pOW = OW << 1;
    const pNL = NL << 1;
    const pP = P << 1;
    const pR = R << 1;
    const nNL = (NL >> 1) | (a1.NL << 63);
    const nW = (W >> 1) | ((a1.SP | a1.OW | a1.NL) << 63);
    // The contraction letters matter only right after an apostrophe, which most blocks lack.
    const ct: Contr = if (Q == 0) .{} else contractions(v, Q, a1, a2);
    const nC1 = ct.nC1;

    // Whitespace that reaches past the decided positions: look further, or decide less.
    var decided = upTo(top);
    var f_top: u64 = 0; // the space run ending at the block's top is followed by a newline
    if (W >> @intCast(top) & 1 != 0 and !next_not_ws) {
        var known = false;
        if (hi == 0 and !eof and a1.SP | a1.OW | a1.NL != 0) {
            // Scan the rest of the whitespace run: where its spaces stop, and that it ends
            // before the text does (else it is one piece to the end).
            var j = b + 64;
            var first_non_r: u8 = 0;
            const stop = @min(len, j + scan_cap);
            while (j < stop) : (j += 1) {
                const c = text[j];
                if (c == ' ' or c == '\t' or c == 0x0B or c == 0x0C) continue;
                if (c == '\n' or c == '\r') {
                    if (first_non_r == 0) first_non_r = '\n';
                    continue;
                }
                break;
            }
            if (j < stop and (text[j] < 0x80 or standInFor(pat, text, j) != '\t')) {
                known = true;
                f_top = @intFromBool(first_non_r == '\n');
            }
        } else if (hi == 0) {
            known = true; // the run ends at the block's top, or at the end of the text (below)
        }
        if (!known) {
            top = runStart(W, top);
            decided = upTo(top);
            cut = true;
        }
    }

    // The newlines (o200k: and slashes) right after a punctuation run belong to its piece.
    const T = NL | SL;
    const A = fillUp(T, NL & pP);
    const Pu = P & ~A; // punctuation that is not absorbed
    const pPu = Pu << 1;
    // The code point before the one before: two bytes back, or four after a three-byte one.
    // (After a multi-byte punctuation code point: two bytes back past its length.)
    const e2 = lead2 << 2;
    const e3 = lead3 << 3;
    const e4 = lead4 << 4;
    const e1 = ~(e2 | e3 | e4);
    const p2Pu = ((Pu << 2) & e1) | ((Pu << 3) & e2) | ((Pu << 4) & e3) | ((Pu << 5) & e4);
    const p2SPc = ((SP << 2) & e1) | ((SP << 3) & e2) | ((SP << 4) & e3) | ((SP << 5) & e4);
    const E = W & ~A;
    const pE = E << 1;
    // First whitespace of a run (after absorbed newlines).
    const ws_first = E & ~pE;
    // After the run's last newline: the spaces that follow it, unless another newline follows them.
    const seedF = (R & nNL) | ((R >> 63 & f_top) << 63);
    const F = if (seedF == 0) 0 else rev64(fillUp(rev64(R), rev64(seedF)));
    const after_nl = R & pNL & ~F;
    // `\s+(?!\S)`: the last of two or more spaces before a non-space.
    var last_space = R & pR & ~nW;
    // A contraction `'(s|t|re|ve|m|ll|d)` (any case) follows.
    const cf = ct.cf;
    var p_first: u64 = undefined;
    var l_first: u64 = undefined;
    if (pat == .cl100k) {
        // An apostrophe that starts a piece and begins a contraction is a piece of its own.
        p_first = Pu & ~pPu & ~pSP;
        const contr = cf & p_first;
        const contr_end = ((contr & nC1) << 2) | ((contr & ~nC1) << 3);
        l_first = (L & ~pL & ~pSP & ~pOW & ~(pPu & ~p2Pu & ~p2SPc)) | (contr_end & L);
    } else {
        // A contraction right after a word's letters ends that word's piece; a piece starts after
        // it. A word also ends where a lowercase letter meets an uppercase one.
        const att = cf & pL;
        const one = att & nC1;
        const two = att & ~nC1;
        const CT = (att << 1) | (two << 2); // the contraction's letters
        if (att & (CT << 1) != 0) {
            // "x's's": whether the second one is attached depends on the first; rare.
            return .{ .mask = 1, .top = 0, .cut = true };
        }
        const att_end = (one << 2) | (two << 3);
        p_first = Pu & ~pPu & ~pSP & ~att;
        l_first = (L & ~pL & ~pSP & ~pOW & ~(pPu & ~p2Pu & ~p2SPc)) | (att_end & L) |
            (UP & (LW << 1) & ~CT);
    }
    // Digits: groups of three from each run's start. A run's starts are the positions of its
    // phase (run start mod 3): fill each run from its start and keep the positions of its phase.
    const run_starts = N & (~pN | 1);
    const m0: u64 = 0x9249249249249249; // positions 0, 3, 6, ... 63
    const marks = if (N == 0) 0 else (fillUp(N, run_starts & m0) & m0) |
        (fillUp(N, run_starts & (m0 << 1)) & (m0 << 1)) |
        (fillUp(N, run_starts & (m0 << 2)) & (m0 << 2));

    if (pat == .o200k and eof) {
        // `\s+(?!\S)` at the end of the text takes the whole run: no split before its last space.
        last_space &= ~(@as(u64, 1) << @intCast(top));
    }
    var starts = (l_first | marks | p_first | ws_first | after_nl | last_space | 1) & decided;
    if (pat == .cl100k and eof and (W >> @intCast(top) & 1) != 0) {
        // `\s++$`: the text ends in whitespace; the first piece start in that run takes the rest.
        const t = runStart(W, top);
        const run = decided & ~(upTo(t) >> 1);
        const first = starts & run;
        if (first != 0) starts &= ~(run & ~(first & (~first +% 1)));
    }
    if (eof and n < 64) starts |= @as(u64, 1) << @intCast(n);
    return .{ .mask = starts, .top = @intCast(top), .cut = cut };
}

// ---------------------------------------------------------------------------------------------
// Tests: every decided start equals the scalar scanner's.

fn scalarStarts(comptime pat: Pat, text: []const u8, out: *std.ArrayList(usize), gpa: std.mem.Allocator) !void {
    out.clearRetainingCapacity();
    var pos: usize = 0;
    while (pos < text.len) {
        try out.append(gpa, pos);
        pos = pretok.nextPieceEnd(if (pat == .cl100k) .cl100k else .o200k, text, pos);
    }
}

fn checkText(text: []const u8, gpa: std.mem.Allocator) !void {
    try checkTextFor(.cl100k, text, gpa);
    try checkTextFor(.o200k, text, gpa);
}

fn checkTextFor(comptime pat: Pat, text: []const u8, gpa: std.mem.Allocator) !void {
    var ref: std.ArrayList(usize) = .empty;
    defer ref.deinit(gpa);
    try scalarStarts(pat, text, &ref, gpa);
    var is_start = try gpa.alloc(bool, text.len + 1);
    defer gpa.free(is_start);
    @memset(is_start, false);
    for (ref.items) |s| is_start[s] = true;
    // From every true start, the block's decided bits must agree with the reference.
    // The same text with bytes after it that the blocks may load (`avail`), as in a column
    // buffer whose next row follows: they must not change a bit.
    const wide = try gpa.alloc(u8, text.len + 64);
    defer gpa.free(wide);
    @memcpy(wide[0..text.len], text);
    var prng = std.Random.DefaultPrng.init(text.len);
    prng.random().bytes(wide[text.len..]);
    if (worthBlocks(text, text.len) != worthBlocks(wide[0..text.len], wide.len)) return error.ReadPastChanged;
    for (ref.items) |b| {
        const m = blockStarts(pat, text, text.len, b).mask;
        if (b < text.len) {
            const m2 = blockStarts(pat, wide[0..text.len], wide.len, b);
            if (m2.mask != m) return error.ReadPastChanged;
        }
        // The highest set bit bounds what was decided; below it everything must match.
        const hi_bit: usize = 63 - @clz(m);
        for (0..hi_bit + 1) |i| {
            if (b + i >= text.len) {
                if (b + i == text.len) continue; // the end-of-text bit
                return error.BitPastEnd;
            }
            const got = (m >> @intCast(i)) & 1 == 1;
            if (got != is_start[b + i]) {
                std.debug.print("{s} mismatch at block {d} offset {d}: got {} text={any}\n", .{ @tagName(pat), b, i, got, text });
                return error.Mismatch;
            }
        }
    }
}

test "block starts equal the scalar scanner on random texts" {
    const gpa = std.testing.allocator;
    const atoms = [_][]const u8{
        "a",    "b",  "s",  "S",    "t",  "d",  "m",  "l",  "L", "v", "r", "e",  "E",  "x", "Z",
        "'",    "'",  "\"", ".",    ",",  "-",  "/",  "(",  "0", "1", "9", " ",  " ",  " ", "  ",
        "\n",   "\r", "\t", "\x0B", "\x0C", "\x00", "\x1F", "é", "’", "。", "\u{00A0}", "\u{0085}", "ſ", "٣", "😀",
        "\u{0301}", "Ж", "ab", "the", "'s", "'ll", "'ve", "'re", "'t", "\n\n", " \n", "...", "123", "\r\n",
        "A", "Q", "HTML", "Parser", "'S", "'LL", "'Re", "/", "//", ".\n/", "x's's", "'rE", "'lL", "'vE", "'tS", "ǅ", "ʰ", "中", "ａ", "\u{2003}",
        "“", "”", "‘", "—", "–", "…", "•", "\u{2010}", "\u{2027}", "\u{2028}", "\u{2029}", "‰", "\u{200B}", "’s", " “", "”\n",
        // Multi-byte letters (classified in place) and their neighbours that are not.
        "Привет", "ПРИВЕТ", "ж", "Ärger", "ÄÖ", "ß", "é", "É", "αβγ", "ΑΒΓ", "ᾈ", "مرحبا", "שלום", "한국어", "ひらがな", "カタカナ", "中文",
        "µ", "ª", "×", "÷", "«", "»", "²", "\u{212A}", "ﬀ", "𝐀", "𝐚", "𠀀", "क", "ि", "ก", "ั", "Ⅻ", "Ｄ", "ｄ", "\u{0345}", "ͺ", "΄",
        "϶", "\u{0378}", "\u{0530}", "'Ж", "Ж's", "é's", "'é", "Ǆ", "ǆ", "ſt", "\u{0482}", "\u{0488}", "ǅe", "ĲĳĴ",
        "Ѐ", "я", "ѐ", "џ", "Ѡѡ", "Þ", "À", "ÿ", "Ā", "ƀ", "ʯ", "Ӏ", "ڀ", "ÀÞßàÿ", "ЀЯаяѐџ",
        // Multi-byte punctuation and marks (in place), o200k's Lm/Lo/M letters next to cased ones.
        "«", "»", "¿", "£", "©", "、", "。", "「", "」", "！", "，", "ー", "々", "日A", "Ab日", "日a", "a日", "!\u{301}",
        " !\u{301}", "!!\u{301}", "日's", "\u{903}", "।", "🙂", "\u{200D}", "\u{1F3FB}", "\u{901}", "ा", "हिन्दी", "«»", "¿¡",
        "\u{301}\u{301}", "Éa", "ʰA", "ʰa", "Aʰ", "日\u{301}A",
    };
    var prng = std.Random.DefaultPrng.init(0xA11CE);
    const rnd = prng.random();
    var buf: std.ArrayList(u8) = .empty;
    defer buf.deinit(gpa);
    var round: usize = 0;
    while (round < 20_000) : (round += 1) {
        buf.clearRetainingCapacity();
        const n_atoms = rnd.uintLessThan(usize, 120);
        // Bias: some texts use only a few atoms, to grow long runs.
        const narrow = rnd.boolean();
        const lo_i = rnd.uintLessThan(usize, atoms.len);
        for (0..n_atoms) |_| {
            const i = if (narrow) (lo_i + rnd.uintLessThan(usize, 4)) % atoms.len else rnd.uintLessThan(usize, atoms.len);
            try buf.appendSlice(gpa, atoms[i]);
        }
        if (buf.items.len == 0) continue;
        try checkText(buf.items, gpa);
    }
}

test "vectorClass3 agrees with the property table on every three-byte code point" {
    var seen_letter: usize = 0;
    var seen_punct: usize = 0;
    for (0x800..0x10000) |cp| {
        if (cp >= 0xD800 and cp < 0xE000) continue; // surrogates: not UTF-8
        var arr: [64]u8 = @splat(' ');
        arr[0] = @intCast(0xE0 | (cp >> 12));
        arr[1] = @intCast(0x80 | ((cp >> 6) & 0x3F));
        arr[2] = @intCast(0x80 | (cp & 0x3F));
        const vc = vectorClass3(arr, 1);
        const p = ut.props(@intCast(cp));
        if (vc.letter & 1 != 0) {
            seen_letter += 1;
            try std.testing.expectEqual(@as(u8, 1), inPlaceClass(.cl100k, p));
            try std.testing.expectEqual(@as(u8, 4), inPlaceClass(.o200k, p));
        }
        if (vc.punct & 1 != 0) {
            seen_punct += 1;
            try std.testing.expectEqual(@as(u8, 3), inPlaceClass(.cl100k, p));
            try std.testing.expectEqual(@as(u8, 3), inPlaceClass(.o200k, p));
        }
        try std.testing.expect(vc.letter & vc.punct == 0);
    }
    // The ranges in vectorClass3's doc comment (a range that no longer matches fails here).
    try std.testing.expectEqual(@as(usize, (0x4DC0 - 0x3400) + (0xA000 - 0x4E00) + (0xD780 - 0xAC00) + (0x3097 - 0x3041) + (0x3100 - 0x30A1 - 1)), seen_letter);
    try std.testing.expectEqual(@as(usize, 3 + 10 + 12 + 15 + 7), seen_punct);
}

test "block starts on long runs" {
    const gpa = std.testing.allocator;
    var buf: std.ArrayList(u8) = .empty;
    defer buf.deinit(gpa);
    const runs = [_][]const u8{ " ", "\n", " \n", "1", "a", ".", "\t", "'s", "  \n  " };
    for (runs) |r| {
        for ([_]usize{ 1, 2, 30, 63, 64, 65, 70, 130 }) |count| {
            for ([_][]const u8{ "", "x", " ", "\n", ".", "7", "\nx", "\n \n", " é" }) |tail| {
                for ([_][]const u8{ "", "a", " ", ".", "1", "\n", "x\n", ".\n" }) |head| {
                    buf.clearRetainingCapacity();
                    try buf.appendSlice(gpa, head);
                    for (0..count) |_| try buf.appendSlice(gpa, r);
                    try buf.appendSlice(gpa, tail);
                    try checkText(buf.items, gpa);
                }
            }
        }
    }
}
