//! Text -> token ids: special-token splitting, pretokenization, BPE; and the columnar job that
//! runs it over an Arrow string column on the thread pool.
const std = @import("std");
const pretok = @import("pretok.zig");
const longpar = @import("longpar.zig");
const blockscan = @import("blockscan.zig");
const vocab_mod = @import("vocab.zig");
const utf8 = @import("utf8.zig");
const pool = @import("pool.zig");
const bufcache = @import("bufcache.zig");
const Vocab = vocab_mod.Vocab;

pub const Status = enum(i32) {
    ok = 0,
    invalid_argument = 1,
    out_of_memory = 2,
    invalid_utf8 = 3,
    too_large = 4,
    unknown_token = 5,
    bad_vocab = 6,
    buffer_too_small = 7,
};

/// Special tokens recognised in the text (allowed_special); borrowed from the caller.
pub const Specials = struct {
    data: []const u8,
    offs: []const u32,
    ids: []const u32,
    /// Set when every special starts with the same byte (then a SIMD byte search finds candidates).
    common_first: ?u8,
    first_set: [256]bool,

    /// Special offsets must start at 0 and not decrease (checked before `init`).
    pub fn offsetsOk(offs: []const u32) bool {
        if (offs.len == 0 or offs[0] != 0) return false;
        for (offs[1..], 0..) |o, k| if (o < offs[k]) return false;
        return true;
    }

    pub fn init(data: []const u8, offs: []const u32, ids: []const u32) Specials {
        var s: Specials = .{ .data = data, .offs = offs, .ids = ids, .common_first = null, .first_set = @splat(false) };
        var first: ?u8 = null;
        var same = true;
        for (0..ids.len) |k| {
            const t = s.get(k);
            if (t.len == 0) continue;
            s.first_set[t[0]] = true;
            if (first) |f| {
                if (f != t[0]) same = false;
            } else first = t[0];
        }
        if (same) s.common_first = first;
        return s;
    }
    inline fn get(s: *const Specials, k: usize) []const u8 {
        return s.data[s.offs[k]..s.offs[k + 1]];
    }
    /// Leftmost special occurrence at or after `from`: (position, index). Longest wins at a tie.
    fn find(s: *const Specials, text: []const u8, from: usize) ?struct { pos: usize, k: usize } {
        if (s.ids.len == 0) return null;
        var p = from;
        while (p < text.len) {
            if (s.common_first) |f| {
                p = std.mem.findScalarPos(u8, text, p, f) orelse return null;
            } else if (!s.first_set[text[p]]) {
                p += 1;
                continue;
            }
            var best: ?usize = null;
            var best_len: usize = 0;
            for (0..s.ids.len) |k| {
                const t = s.get(k);
                if (t.len > best_len and std.mem.startsWith(u8, text[p..], t)) {
                    best = k;
                    best_len = t.len;
                }
            }
            if (best) |k| return .{ .pos = p, .k = k };
            p += 1;
        }
        return null;
    }
};

/// Builds the special-token set an Options asks for into `storage`; false if the options are
/// malformed (NULL arrays with n_special > 0, or offsets that do not start at 0 and increase).
pub fn specialsFromOptions(opts: *const Options, storage: *Specials, out: *?*const Specials) bool {
    out.* = null;
    if (opts.n_special == 0) return true;
    const ns = opts.n_special;
    const offs = opts.special_offs orelse return false;
    const data = opts.special_data orelse return false;
    const ids = opts.special_ids orelse return false;
    if (!Specials.offsetsOk(offs[0 .. ns + 1])) return false;
    storage.* = Specials.init(data[0..offs[ns]], offs[0 .. ns + 1], ids[0..ns]);
    out.* = storage;
    return true;
}

/// Where tokens go: appended to `buf`, or (count_only) counted and dropped.
pub const Sink = struct {
    gpa: std.mem.Allocator,
    buf: *std.ArrayList(u32),
    count_only: bool,
    count: u64 = 0,
    /// An address past the text being encoded up to which its buffer may be loaded from (its
    /// bytes are never used: 16-byte piece keys and 64-byte blocks mask them off), or 0. A
    /// column's rows set it to their buffer's end, so a row's last pieces and block need no
    /// copy and no byte-by-byte key. In-process A/B (bench/ab_builds.py, 25 rounds, cl100k /
    /// o200k, CPU probe 1.4-1.8): 200k lines 1.127x / 1.107x (1.085-1.124x in earlier runs),
    /// 20k documents 0.999x / 1.044x (0.97-1.08x over five runs: noise, rows of 231 bytes on
    /// average), English 0.996x. A test maps the buffer's end next to an unmapped page.
    read_end: usize = 0,

    /// Bytes readable from s.ptr: s and what follows it up to `read_end` (an empty slice has
    /// no address inside the buffer: none past it).
    inline fn avail(sk: *const Sink, s: []const u8) usize {
        const end = @intFromPtr(s.ptr) + s.len;
        return s.len + if (s.len != 0 and sk.read_end > end) sk.read_end - end else 0;
    }

    inline fn one(sk: *Sink, id: u32) !void {
        if (!sk.count_only) try sk.buf.append(sk.gpa, id);
        sk.count += 1;
    }
};

/// `count`: sink.count_only, as a compile-time branch (counting writes no ids for pieces found
/// in the short table and reads no byte table for one-byte pieces).
fn encodeOrdinaryWith(comptime pat: pretok.Pattern, comptime count: bool, comptime shared: bool, comptime prefetch: bool, v: *const Vocab, seg: []const u8, sink: *Sink, scratch: *vocab_mod.Scratch) !void {
    // One capacity check per segment (tokens <= bytes), then pieces write straight into the
    // buffer; in count mode every piece reuses the start of it.
    // `block_slack` more where the sink can grow (a caller's fixed buffer may hold only
    // seg.len): see `fullBlock`.
    reserve(sink, seg.len + block_slack) catch try reserve(sink, seg.len);
    scratch.noteText(seg.len);
    const base = sink.buf.items.len;
    const dst: [*]u32 = sink.buf.items.ptr;
    const limit = base + seg.len;
    const room_end = sink.buf.capacity;
    var w: usize = base;
    var pos: usize = 0;
    // Tokens counted here and added to the sink once (in encode mode: w - base).
    var counted: usize = 0;
    // Bytes readable from seg.ptr (seg and what follows it in the caller's buffer).
    const avail = sink.avail(seg);
    const wide = seg.ptr[0..avail];
    const bpat: blockscan.Pat = if (pat == .cl100k) .cl100k else .o200k;
    if ((pat == .cl100k or pat == .o200k) and use_blocks and blockscan.worthBlocks(seg, avail)) {
        var stretch: usize = 32;
        // Piece starts 64 bytes at a time (blockscan.zig); the scalar scanner where a block
        // decides no piece (long pieces, non-ASCII text).
        var ahead: blockscan.Starts = undefined;
        var ahead_at: usize = std.math.maxInt(usize);
        while (pos < seg.len) {
            const b = pos;
            const r = if (prefetch and ahead_at == b) ahead else blockscan.blockStarts(bpat, seg, avail, b);
            if (prefetch) {
                // One block ahead: the next block starts at this one's last piece start (when
                // this block decides its pieces); its pieces' slots load while this block's
                // pieces are looked up.
                const m0 = r.mask & ~@as(u64, 1);
                ahead_at = std.math.maxInt(usize);
                if (!r.cut and m0 != 0) {
                    const nb = b + (63 - @clz(m0));
                    if (nb + 80 <= avail and nb < seg.len) {
                        ahead = blockscan.blockStarts(bpat, seg, avail, nb);
                        ahead_at = nb;
                        prefetchBlock(wide, nb, ahead.mask, scratch);
                    }
                }
            }
            if (count and count_ones) {
                // Counting: the block's one-byte pieces (a start followed by a start) count one
                // each without a look, and only the others are looked up, in any order: no
                // branch per piece on its length.
                const top: u6 = @intCast(63 - @clz(r.mask));
                const ones = r.mask & (r.mask >> 1);
                counted += @popCount(ones);
                var ms = r.mask & ~ones & ~(@as(u64, 1) << top);
                // A copy of the loop for full blocks (`fullBlock`): no test per piece of the
                // bytes readable for its key or of the room for its ids.
                inline for (.{ true, false }) |safe| if (safe == fullBlock(b, avail, w, room_end)) {
                    while (ms != 0) : (ms &= ms - 1) {
                        const s: u6 = @intCast(@ctz(ms));
                        const e = @as(usize, s) + 1 + @ctz((r.mask >> s) >> 1);
                        counted += try emitPiece(count, shared, safe, v, seg, wide, b + s, b + e, dst[w..limit], scratch);
                    }
                };
                pos = b + top;
            } else {
                var m = r.mask & ~@as(u64, 1);
                inline for (.{ true, false }) |safe| if (safe == fullBlock(b, avail, w, room_end)) {
                    while (m != 0) : (m &= m - 1) {
                        const end = b + @ctz(m);
                        tally(count, &w, &counted, try emitPiece(count, shared, safe, v, seg, wide, pos, end, dst[w..limit], scratch));
                        pos = end;
                    }
                };
            }
            if (r.cut or pos == b) {
                // The scalar scanner takes the text past what the block could decide (a
                // non-ASCII code point, an unfinished whitespace run, a piece longer than the
                // block). Where blocks keep stopping early (non-Latin text), the stretch doubles.
                var stop = b + r.top + 1;
                if (r.cut and r.top < 16) {
                    stretch = @min(stretch * 2, 1024);
                    stop = b + stretch;
                } else stretch = 32;
                while (pos < seg.len) {
                    const end = pretok.nextPieceEnd(pat, seg, pos);
                    tally(count, &w, &counted, try emitPiece(count, shared, false, v, seg, wide, pos, end, dst[w..limit], scratch));
                    pos = end;
                    if (pos >= stop) break;
                }
            }
        }
    } else {
        while (pos < seg.len) {
            const end = pretok.nextPieceEnd(pat, seg, pos);
            tally(count, &w, &counted, try emitPiece(count, shared, false, v, seg, wide, pos, end, dst[w..limit], scratch));
            pos = end;
        }
    }
    sink.buf.items.len = w;
    sink.count += if (count) counted else w - base;
}

/// Where a piece's n tokens go: the output advances when encoding; the count, when counting.
inline fn tally(comptime count: bool, w: *usize, counted: *usize, n: usize) void {
    if (count) counted.* += n else w.* += n;
}

/// Room for ids past a segment's end, asked of sinks that can grow, so that every block is a
/// `fullBlock` as far as the room goes.
const block_slack = 80;

/// Whether the block at `b` (output at `w`) is full: 16 bytes are readable from each of its
/// pieces' starts (b + 64 + 16 <= avail), and each of its short pieces can write 16 ids (ids <=
/// bytes, so its pieces write at most 64 from w, and a piece starts before b + 64). Its short
/// pieces' keys then load whole and their ids are written without a check of the room left.
/// Session 31, with 2..8-byte keys of one word and the count kept in a local: callgrind (20k
/// documents, cl100k, one steady pass) 168 -> 158 instructions a piece.
inline fn fullBlock(b: usize, avail: usize, w: usize, room_end: usize) bool {
    return b + 64 + 16 <= avail and w + block_slack <= room_end;
}

/// Counting skips the lookups of a block's one-byte pieces (`encodeOrdinaryWith`): they count
/// one each by a popcount of the block's starts (a start followed by a start), and the loop
/// over the other pieces has no branch on their length. Session 27, in-process A/B
/// (count_tokens_arrow, 15-21 rounds): cl100k docs 1.025x / 1.028x, English 1.036x / 1.042x,
/// code 1.000x, dictionary 1.065x, lines 0.959x; o200k docs 1.032x, English 1.036x,
/// dictionary 1.060x, lines 1.044x. The same for encoding (the one-byte pieces before each
/// longer piece written from byte_rank, two unconditionally, more in a loop): cl100k docs
/// 0.980x, English 0.953x, code 0.931x; o200k English 0.94x, docs 0.96x. Not kept. Nor
/// one-byte pieces looked up in the short table like the others when encoding (stored there
/// on first use; no branch on the length): callgrind on the 20k documents (cl100k, per call)
/// +8.4M instructions, -163k mispredicted branches; A/B code 1.00-1.08x, English cl100k
/// 1.03x, 20k documents 1.00-1.04x, lines 0.98-1.02x, multilingual 0.99x, dictionary o200k
/// 0.95-1.00x: about +1% overall, in the noise. Session 31, again on the Intel machine (after
/// the full-block change): callgrind 156 -> 164 instructions and 1.29 -> 1.12 mispredicted
/// branches a piece; A/B 20k documents 0.993x, lines 0.974x, English 1.052x. Not kept.
const count_ones = true;

/// Block scanning for cl100k and o200k (false: the scalar scanner only; for A/B timing).
/// Session 22: the scalar scanner for rows under 16 / 32 bytes instead: 200k lines 1.029x /
/// 0.982x, 20k documents 1.002x / 0.973x (noise-level; not kept).
///
/// Where a steady-state pass goes (session 29; callgrind --branch-sim on the x86-64-v3 build,
/// the 200k lines, o200k, 2.17M pieces a pass: the difference between runs of 4 and 6 calls,
/// so that the first pass's merges drop out): 432M instructions a pass (199 a piece; perf puts
/// the loop at ~3 instructions a cycle, so it is bound by them) and 2.06M mispredicted
/// branches (0.95 a piece). blockStarts 98.7M (245k blocks, ~400 instructions a block: at
/// least one a row, however short the row; 0.05M mispredictions); the scalar scanner 60M and
/// 0.48M mispredictions for the 16.5% of the pieces it takes (167 instructions and 1.34
/// mispredictions a piece: o200k's Lo/Lm/M letters end a block); the encode loop and the short
/// table's lookups ~270M (~125 a piece; the key's hash and home slot ~15, the compare ~12,
/// the non-ASCII test before Big's slot prefetch ~12 and 0.11 mispredictions a piece, the
/// answer's three ids ~19, the aging mark ~10, the piece-length switch 0.15 mispredictions);
/// Big and long pieces ~10M. No uncached merge in a steady pass. Skipping the UTF-8 check of
/// every row (and worthBlocks for rows under 64 bytes; timing only): 1.043x / 1.027x (cl100k /
/// o200k), so fusing those per-row passes cannot pay much more than that.
const use_blocks = true;

/// Prefetches the short-table slots of the pieces of the block at `b` whose ends the block
/// shows (all but the last). `b + 80 <= wide.len`: every key loads 16 readable bytes.
///
/// Performance notes (session 21, 1 thread): the corpus stream (bench/ab_stream.py: 33 MB,
/// 511k distinct pieces, 4,000-row batches; the table holds ~20 MB, so most lookups miss L2)
/// later passes cl100k 1.034-1.077x, o200k 1.074-1.075x, first pass 1.006-1.049x; the 20k
/// documents 1.011x (cold 1.017x, o200k), 200k lines 0.994x warm, 1.026x cold; English and
/// code do not reach the size (their tables stay in L2, where an earlier version that
/// prefetched on every table cost code 4-9%). Two or three blocks ahead instead of one: the
/// same within noise (1.026-1.088x), so one. Pieces of more than 16 bytes (Big, wyhash) are
/// not prefetched. The whole multilingual files (297k distinct pieces, many of them long, many
/// scanned by the scalar scanner): 0.974x (o200k) / 0.997x (cl100k), with the CPU probe at
/// 1.91x; a first run on a noisy machine had read 1.128x / 1.027x. Running the scalar scanner
/// four pieces ahead of the lookups with the same prefetch: 1.005x / 1.000x, not kept.
/// Session 29, not kept: no branch on the piece's length here (every piece prefetches, its
/// length clamped to 2..16; bytes 9..16 by an address select), since callgrind put 0.2
/// mispredicted branches a piece of the 20k documents (cl100k) on that test: documents
/// 1.002x / 0.988x, lines 0.992x / 1.022x (cl100k / o200k): noise.
/// Session 27, not kept: every piece (block or scalar scanner) staged in a ring of 16 or 64
/// before its lookup, its Short slot, bytes 9..16 and (non-ASCII) Big slot prefetched when
/// staged, as gigatoken stages a chunk (it runs the stream's later passes ~1.25x faster than
/// this): corpus stream cl100k later passes 0.998x / 0.998x (16), 0.96-1.02x (64), first
/// pass 0.97-1.00x. The lookups' misses already overlap; what remains is instructions
/// (callgrind, 20k documents: ~160 a piece, scanners included) and ~1.35 mispredicted
/// branches a piece (the piece-length switch 0.19, Short's compare 0.18, the scalar scanner
/// 0.34 for its 12% of the bytes).
/// Session 31 (a 2-core Sapphire Rapids VM at 2.0 GHz, 2 MiB L2 a core, where the 20k
/// documents ran at ~0.35x of the AMD machine's speed and their first 500 rows, repeated to the
/// same size, 1.56x faster a byte than all 20k rows): prefetching from 2^15 slots (so on the
/// documents' and lines' tables too) 0.944x / 0.955x (documents, cl100k / o200k), lines
/// 0.966x; the same with `prefetcht1` (to L2, as gigatoken stages a chunk ahead) 0.975x /
/// 0.975x; every piece table of 256 KiB or more on huge pages 0.995x / 1.031x; both (huge
/// pages and the prefetch from 2^15 slots), four A/B runs of 15-21 rounds in both orders:
/// 0.93-1.13x, median ~0.97x. Not kept. Yet callgrind's cache simulation with this machine's
/// L1d (48 KiB, 12-way) and L2 (2 MiB, 16-way) as its last level counts, in a steady pass of
/// the documents (cl100k), 0.77 L1d and 0.29 L2 read misses a piece, ~0.2 of the latter in
/// the short-table lookups: what keeps a prefetch from hiding them is not known.
/// Session 32, not kept: the block's own slots prefetched before its lookups (no block ahead),
/// from 2^15 slots: 20k documents cl100k 0.939x / 1.004x (A/B, 9 rounds, both orders).
/// Session 33, not kept: a full block's lookups in two phases, as gigatoken's emit loop: first
/// every piece's home slot loaded and compared (no branch on what the slot holds; the answers
/// and a found bit a piece on the stack), then the found answers written and the other pieces
/// looked up the usual way. Against the loop here (A/B, 11 rounds, both orders): Short and Wide
/// both, English cl100k 0.856x / 0.793x, 20k documents 0.959x / 0.894x; Short alone (a 64-bit
/// found mask, the answer words in an array), English 0.854x / 0.848x, documents 0.865x /
/// 0.886x. The second pass over the block's starts and the answers' trip through the stack cost
/// more than the mispredicted branches on slots that miss the cache could (see `Short.find` in
/// vocab.zig for what the lookups cost).
inline fn prefetchBlock(wide: []const u8, b: usize, mask: u64, scratch: *vocab_mod.Scratch) void {
    var m = mask & ~@as(u64, 1);
    var s: usize = b;
    while (m != 0) : (m &= m - 1) {
        const e = b + @ctz(m);
        const len = e - s;
        if (len >= 2 and len <= 16) vocab_mod.prefetchShort(scratch, vocab_mod.shortKeyAt(wide, s, len), len);
        s = e;
    }
}

/// Session 32, not kept: the `Short` / `Wide` slices, sizes and marking flags (and Big's slots)
/// held in locals of the encode loop and renewed after a miss or a long piece, instead of
/// loaded through `scratch.cache` for every piece (the compiler reloads them after each store
/// of ids): callgrind (one steady pass) 20k documents cl100k 137.2M -> 134.5M instructions,
/// 200k lines o200k 384.8M -> 380.4M, mispredicted branches -1%; A/B (15 rounds, both
/// orders) documents 1.002x / 0.989x, lines 0.993x / 0.990x. Fewer instructions did not make
/// the loop faster: it waits on its loads and mispredictions.
/// Encodes the piece seg[pos..end] into `out` (in count mode, only pieces not in the tables
/// write there); returns its number of tokens. `wide`: seg and the readable bytes after it;
/// `safe`: the piece lies in a `fullBlock`.
inline fn emitPiece(comptime count: bool, comptime shared: bool, comptime safe: bool, v: *const Vocab, seg: []const u8, wide: []const u8, pos: usize, end: usize, out: []u32, scratch: *vocab_mod.Scratch) !usize {
    const piece = seg[pos..end];
    const n = switch (piece.len) {
        1 => blk: {
            if (!count) out[0] = v.byte_rank[piece[0]];
            break :blk 1;
        },
        // An arm a table (vocab.zig: `Short` 2..8 bytes, `Wide` 9..16), so the lookup has no
        // second branch on the length: session 30, callgrind (20k documents, cl100k, one steady
        // pass) 193 -> 168 instructions and 1.56 -> 1.32 mispredicted branches a piece against
        // one arm and a branch in `shortPiece`; A/B 1.00-1.07x (code cl100k 1.07x).
        2...8 => try vocab_mod.shortPieceIn(false, !count, shared, v, piece, pieceKey(false, safe, wide, pos, piece), if (safe) out.ptr[0..16] else out, scratch),
        9...16 => try vocab_mod.shortPieceIn(true, !count, shared, v, piece, pieceKey(true, safe, wide, pos, piece), if (safe) out.ptr[0..16] else out, scratch),
        else => try vocab_mod.pieceLong(!count, v, piece, out, scratch),
    };
    return n;
}

/// A short piece's key: loads where 8 (2..8-byte pieces) or 16 bytes from `pos` are readable,
/// else built from the piece.
inline fn pieceKey(comptime long: bool, comptime safe: bool, wide: []const u8, pos: usize, piece: []const u8) vocab_mod.ShortKey {
    if (!long) return if (safe or pos + 8 <= wide.len) vocab_mod.shortKeyAtNarrow(wide, pos, piece.len) else vocab_mod.shortKey(piece);
    return if (safe or pos + 16 <= wide.len) vocab_mod.shortKeyAt(wide, pos, piece.len) else vocab_mod.shortKey(piece);
}

inline fn reserve(sink: *Sink, n: usize) !void {
    if (sink.count_only) sink.buf.clearRetainingCapacity();
    try sink.buf.ensureUnusedCapacity(sink.gpa, n);
}

pub fn encodeOrdinary(v: *const Vocab, seg: []const u8, sink: *Sink, scratch: *vocab_mod.Scratch) !void {
    if (seg.len == 0) return;
    switch (v.pattern) {
        // One instantiation per (count, shared, prefetch): none is a branch per piece. The
        // snapshot's jobs do not prefetch (their own tables are the second place looked in).
        inline else => |pat| switch (@as(u3, @intFromBool(sink.count_only)) | @as(u3, @intFromBool(scratch.snap != null)) << 1 |
            @as(u3, @intFromBool(scratch.snap == null and vocab_mod.shortTableBig(scratch))) << 2) {
            inline else => |k| if (k & 6 == 6) unreachable else try encodeOrdinaryWith(pat, k & 1 != 0, k & 2 != 0, k & 4 != 0, v, seg, sink, scratch),
        },
    }
}

/// Encodes valid UTF-8 `text`, recognising `specials` (if any) as their ids.
pub fn encodeText(v: *const Vocab, text: []const u8, specials: ?*const Specials, sink: *Sink, scratch: *vocab_mod.Scratch) !void {
    var start: usize = 0;
    if (specials) |sp| {
        while (sp.find(text, start)) |hit| {
            try encodeOrdinary(v, text[start..hit.pos], sink, scratch);
            try sink.one(sp.ids[hit.k]);
            start = hit.pos + sp.get(hit.k).len;
        }
    }
    try encodeOrdinary(v, text[start..], sink, scratch);
}

// ---------------------------------------------------------------------------------------------
// Arrow columns

pub const Layout = enum(u32) { offsets32 = 0, offsets64 = 1, view = 2 };

/// An Arrow string/binary array as raw buffers (buffers are unsliced: row i is element
/// arr_offset + i).
pub const Input = extern struct {
    layout: u32,
    _pad: u32 = 0,
    offsets: ?*const anyopaque,
    data: ?[*]const u8,
    validity: ?[*]const u8,
    view_buffers: ?[*]const [*]const u8,
    n_view_buffers: i64,
    arr_offset: i64,
    n_rows: i64,
    /// Buffer sizes in bytes (checked before any row is read, so a malformed array gives
    /// invalid_argument instead of an out-of-bounds read).
    offsets_len: i64,
    data_len: i64,
    validity_len: i64,
    view_buffer_lens: ?[*]const i64,

    inline fn isNull(in: *const Input, i: usize) bool {
        const bm = in.validity orelse return false;
        const k = @as(usize, @intCast(in.arr_offset)) + i;
        return (bm[k >> 3] >> @intCast(k & 7)) & 1 == 0;
    }

    /// Bytes of row i (not checking validity). Only valid after `validate` accepted the input.
    inline fn row(in: *const Input, i: usize) []const u8 {
        const k = @as(usize, @intCast(in.arr_offset)) + i;
        switch (@as(Layout, @enumFromInt(in.layout))) {
            .offsets32, .offsets64 => {
                const ab = in.bounds(k);
                return if (ab[0] == ab[1]) &.{} else in.data.?[@intCast(ab[0])..@intCast(ab[1])];
            },
            .view => {
                const views: [*]const [16]u8 = @ptrCast(in.offsets.?);
                const vw = &views[k];
                const len: usize = @intCast(std.mem.readInt(i32, vw[0..4], .little));
                if (len <= 12) return vw[4 .. 4 + len];
                const bi: usize = @intCast(std.mem.readInt(i32, vw[8..12], .little));
                const off: usize = @intCast(std.mem.readInt(i32, vw[12..16], .little));
                return in.view_buffers.?[bi][off .. off + len];
            },
        }
    }

    /// The end (an address) of the buffer row i's bytes lie in, or 0 (Sink.read_end). Only
    /// valid after `validate` accepted the input.
    inline fn readEnd(in: *const Input, i: usize) usize {
        const k = @as(usize, @intCast(in.arr_offset)) + i;
        switch (@as(Layout, @enumFromInt(in.layout))) {
            .offsets32, .offsets64 => {
                const d = in.data orelse return 0;
                return @intFromPtr(d) + @as(usize, @intCast(in.data_len));
            },
            .view => {
                const views: [*]const [16]u8 = @ptrCast(in.offsets.?);
                const vw = &views[k];
                const len = std.mem.readInt(i32, vw[0..4], .little);
                if (len <= 12) return @intFromPtr(in.offsets.?) + @as(usize, @intCast(in.offsets_len));
                const bi: usize = @intCast(std.mem.readInt(i32, vw[8..12], .little));
                return @intFromPtr(in.view_buffers.?[bi]) + @as(usize, @intCast(in.view_buffer_lens.?[bi]));
            },
        }
    }

    /// Start and end offsets of element k (offsets layouts).
    inline fn bounds(in: *const Input, k: usize) [2]i64 {
        if (in.layout == @intFromEnum(Layout.offsets32)) {
            const o: [*]const i32 = @ptrCast(@alignCast(in.offsets.?));
            return .{ o[k], o[k + 1] };
        }
        const o: [*]const i64 = @ptrCast(@alignCast(in.offsets.?));
        return .{ o[k], o[k + 1] };
    }

    inline fn rowLen(in: *const Input, i: usize) usize {
        return in.row(i).len;
    }

    /// Checks buffer sizes, offsets (non-negative, non-decreasing, inside the data buffer) and
    /// views of valid rows (length >= 0, buffer index and range inside the buffers). Returns the
    /// total bytes of valid rows, or the first bad row (-1 for a buffer-level problem).
    fn validate(in: *const Input) union(enum) { ok: usize, bad_row: i64 } {
        if (in.n_rows < 0 or in.arr_offset < 0 or in.layout > 2) return .{ .bad_row = -1 };
        const n: usize = @intCast(in.n_rows);
        if (n == 0) return .{ .ok = 0 };
        const first: usize = @intCast(in.arr_offset);
        const end = std.math.add(usize, first, n) catch return .{ .bad_row = -1 };
        if (in.offsets == null) return .{ .bad_row = -1 };
        if (in.validity != null and in.validity_len < (end + 7) / 8) return .{ .bad_row = -1 };
        var total: usize = 0;
        switch (@as(Layout, @enumFromInt(in.layout))) {
            .offsets32, .offsets64 => {
                const width: usize = if (in.layout == 0) 4 else 8;
                if (in.offsets_len < 0 or @as(usize, @intCast(in.offsets_len)) / width < end + 1) return .{ .bad_row = -1 };
                if (@intFromPtr(in.offsets.?) % width != 0) return .{ .bad_row = -1 };
                const data_len: i64 = if (in.data == null) 0 else in.data_len;
                for (0..n) |i| {
                    const ab = in.bounds(first + i);
                    if (ab[0] < 0 or ab[1] < ab[0] or ab[1] > data_len) return .{ .bad_row = @intCast(i) };
                    if (!in.isNull(i)) total += @intCast(ab[1] - ab[0]);
                }
            },
            .view => {
                if (in.offsets_len < 0 or @as(usize, @intCast(in.offsets_len)) / 16 < end) return .{ .bad_row = -1 };
                const views: [*]const [16]u8 = @ptrCast(in.offsets.?);
                for (0..n) |i| {
                    if (in.isNull(i)) continue;
                    const vw = &views[first + i];
                    const len = std.mem.readInt(i32, vw[0..4], .little);
                    if (len < 0) return .{ .bad_row = @intCast(i) };
                    if (len > 12) {
                        const bi = std.mem.readInt(i32, vw[8..12], .little);
                        const off = std.mem.readInt(i32, vw[12..16], .little);
                        if (in.view_buffers == null or in.view_buffer_lens == null or bi < 0 or bi >= in.n_view_buffers or off < 0)
                            return .{ .bad_row = @intCast(i) };
                        const blen = in.view_buffer_lens.?[@intCast(bi)];
                        if (@as(i64, off) + len > blen) return .{ .bad_row = @intCast(i) };
                    }
                    total += @intCast(len);
                }
            },
        }
        return .{ .ok = total };
    }
};

pub const Options = extern struct {
    threads: u32,
    count_only: u32,
    errors_replace: u32,
    n_special: u32,
    max_chunk_values: i64,
    special_data: ?[*]const u8,
    special_offs: ?[*]const u32,
    special_ids: ?[*]const u32,
};

pub const Output = extern struct {
    handle: ?*anyopaque = null,
    offsets: ?[*]i32 = null,
    values: ?[*]u32 = null,
    n_values: i64 = 0,
    validity: ?[*]u8 = null,
    null_count: i64 = 0,
    chunk_rows: ?[*]i64 = null,
    chunk_values: ?[*]i64 = null,
    n_chunks: i64 = 0,
    counts: ?[*]u32 = null,
    total_tokens: i64 = 0,
    err_row: i64 = -1,
    err_offset: i64 = -1,
    err_msg: [256]u8 = @splat(0),
};

/// Memory behind an Output; freed as one by at_result_free.
pub const Owned = struct {
    offsets: []i32 = &.{},
    values: []u32 = &.{},
    validity: []u8 = &.{},
    chunk_rows: []i64 = &.{},
    chunk_values: []i64 = &.{},
    counts: []u32 = &.{},
    bytes: []u8 = &.{},
    offsets64: []i64 = &.{},
    /// When `values` is a task's buffer handed over whole: that allocation and its allocator.
    values_mem: []u32 = &.{},
    values_alloc: ?std.mem.Allocator = null,

    pub fn free(o: *Owned, gpa: std.mem.Allocator) void {
        gpa.free(o.offsets);
        if (o.values_alloc) |a| freeTokens(a, o.values_mem, o.values.len, true) else gpa.free(o.values);
        gpa.free(o.validity);
        gpa.free(o.chunk_rows);
        gpa.free(o.chunk_values);
        gpa.free(o.counts);
        gpa.free(o.bytes);
        gpa.free(o.offsets64);
        gpa.destroy(o);
    }
};

/// Outputs of multi-task calls with at least this many ids go through bufcache.out_allocator.
const out_min_ids = 64 << 10;

/// Big task token buffers are mappings of their own: they are freed one by one while the result
/// is assembled and must go back to the OS then (a malloc heap would keep them resident and
/// double the peak), except for the few bufcache.zig keeps for the next call, within its
/// resident budget. Peak is about input + output + one task buffer.
const big_task_alloc = bufcache.allocator;

/// Frees a task's token buffer; big ones go to bufcache (kept for the next call if `recycle`),
/// told how much of them was written.
fn freeTokens(alloc: std.mem.Allocator, mem: []u32, used: usize, recycle: bool) void {
    if (mem.len == 0) return;
    if (alloc.vtable != big_task_alloc.vtable) return alloc.free(mem);
    const bytes = std.mem.sliceAsBytes(mem);
    if (recycle) bufcache.release(bytes, used * 4) else bufcache.discard(bytes);
}

/// Gives back the pages of a finished task buffer past its tokens (with huge pages, the last
/// one is mostly unused; splitting it keeps the peak at input + output + a few pages a task).
/// Only for buffers that may hold huge pages: for the others bufcache counts the pages an
/// earlier use left resident (its `lent` records), and one madvise and its TLB shootdown per
/// task cost 2-thread docs 4.5% and lines 6.5%.
fn releaseTail(tokens: *std.ArrayList(u32)) void {
    const mem = std.mem.sliceAsBytes(tokens.allocatedSlice());
    const lo = std.mem.alignForward(usize, @intFromPtr(mem.ptr) + tokens.items.len * 4, 4096);
    const hi = std.mem.alignBackward(usize, @intFromPtr(mem.ptr) + mem.len, 4096);
    if (hi <= lo) return;
    _ = std.os.linux.madvise(@ptrFromInt(lo), hi - lo, std.os.linux.MADV.DONTNEED);
}

/// Asks for transparent huge pages over the 2 MiB-aligned part of a big buffer: the encoder
/// writes its tokens front to back, and 4 KiB pages cost one fault each (~6% of a one-thread
/// English column in perf: fault entry, zeroing, LRU locks).
/// Returns whether it did (only then can the buffer hold a huge page).
pub fn adviseHuge(mem: []u8) bool {
    const huge = 2 << 20;
    const lo = std.mem.alignForward(usize, @intFromPtr(mem.ptr), huge);
    const hi = std.mem.alignBackward(usize, @intFromPtr(mem.ptr) + mem.len, huge);
    if (hi <= lo) return false;
    _ = std.os.linux.madvise(@ptrFromInt(lo), hi - lo, std.os.linux.MADV.HUGEPAGE);
    return true;
}
const big_task_bytes = 64 << 10;

/// Ids in a 2 MiB huge page (the step arenas are sized and counted in).
const huge_ids = @import("hugealloc.zig").huge / 4;

const Task = struct {
    /// Allocator of `tokens`: mmap for big tasks, malloc for small ones (no syscall per call).
    alloc: std.mem.Allocator,
    row_begin: usize,
    row_end: usize,
    bytes: usize,
    /// One row big enough to cut (`encodeTextParallel` / longpar.zig): encoded after the pool
    /// job, on all the job's threads.
    split: bool = false,
    /// `tokens` was advised huge pages (it spans an aligned 2 MiB).
    huge: bool = false,
    tokens: std.ArrayList(u32) = .empty,
    /// Arena mode (`Ctx.arena_cap` > 0): the task's ids are `len` ids from `off` in the arena
    /// of slot `arena` (the worker that ran it), not in `tokens`.
    arena: u32 = 0,
    off: usize = 0,
    len: usize = 0,
    status: Status = .ok,
    err_row: usize = 0,
    err_offset: usize = 0,
    /// The tokens of the row over `Ctx.row_limit` (0: the status is not that).
    err_count: usize = 0,
};

const Slot = struct {
    scratch: vocab_mod.Scratch,
    tmp: std.ArrayList(u32) = .empty,
    /// Arena mode: the ids of every task this worker ran in the call, one after another
    /// (bufcache.allocator; kept for the next call like a task buffer).
    arena: std.ArrayList(u32) = .empty,

    /// Gives the arena back to bufcache (kept for the next call if `recycle`).
    fn dropArena(s: *Slot, recycle: bool) void {
        if (s.arena.capacity == 0) return;
        // A mapping that may hold huge pages (bufcache maps those from 4 MiB up) is counted up
        // to the end of its last huge page written, and keeps it: giving the tail back
        // (releaseTail) split that page, and a worker that ran a few more tasks in the next
        // call faulted 4 KiB pages there again (2 threads, 200k lines: ~80 more faults a call).
        const used = if (s.arena.capacity * 4 >= bufcache.huge_min)
            @min(std.mem.alignForward(usize, s.arena.items.len, huge_ids), s.arena.capacity)
        else
            s.arena.items.len;
        freeTokens(big_task_alloc, s.arena.allocatedSlice(), used, recycle);
        s.arena = .empty;
    }
};

const Ctx = struct {
    gpa: std.mem.Allocator,
    v: *const Vocab,
    in: *const Input,
    opts: *const Options,
    specials: ?*const Specials,
    tasks: []Task,
    slots: []Slot,
    counts: []u32,
    /// Most tokens a row may have: what one list<int32> chunk holds (encoding), or what a count
    /// holds (counting). A row over it ends its task with `.too_large`.
    row_limit: u64,
    /// Arena mode when > 0: tasks append their ids to their worker's `Slot.arena`, first
    /// mapped with room for this many ids (see `arena_max_bytes`).
    arena_cap: usize = 0,

    fn runTask(ctx_ptr: *anyopaque, t: usize, worker: usize) void {
        const ctx: *Ctx = @ptrCast(@alignCast(ctx_ptr));
        if (ctx.tasks[t].split) return;
        ctx.runOne(&ctx.tasks[t], &ctx.slots[worker], 1);
    }

    fn slotIndex(ctx: *const Ctx, slot: *const Slot) u32 {
        return @intCast((@intFromPtr(slot) - @intFromPtr(ctx.slots.ptr)) / @sizeOf(Slot));
    }

    fn runOne(ctx: *Ctx, task: *Task, slot: *Slot, row_threads: usize) void {
        ctx.doTask(task, slot, row_threads) catch |e| {
            task.status = switch (e) {
                error.OutOfMemory => .out_of_memory,
                error.TooLarge => .too_large,
            };
        };
    }

    /// row_threads > 1: each row may use the pool itself (a split task, run outside the job).
    fn doTask(ctx: *Ctx, task: *Task, slot: *Slot, row_threads: usize) error{ OutOfMemory, TooLarge }!void {
        const count_only = ctx.opts.count_only != 0;
        slot.scratch.bind(ctx.v, @min(ctx.slots.len, ctx.tasks.len));
        const in_arena = !count_only and ctx.arena_cap > 0;
        if (in_arena) {
            if (slot.arena.capacity == 0) try slot.arena.ensureTotalCapacityPrecise(big_task_alloc, @max(ctx.arena_cap, task.bytes, 1));
            // Room for the task's worst case (one id a byte): a rare second mapping (and copy)
            // when this worker ran much more than its share.
            try slot.arena.ensureUnusedCapacity(big_task_alloc, @max(task.bytes, 1));
            task.arena = ctx.slotIndex(slot);
            task.off = slot.arena.items.len;
        } else if (!count_only) {
            try task.tokens.ensureTotalCapacity(task.alloc, @max(task.bytes, 1));
            if (task.alloc.vtable == big_task_alloc.vtable) task.huge = adviseHuge(std.mem.sliceAsBytes(task.tokens.allocatedSlice()));
        }
        var sink: Sink = .{
            .gpa = if (count_only) ctx.gpa else if (in_arena) big_task_alloc else task.alloc,
            .buf = if (count_only) &slot.tmp else if (in_arena) &slot.arena else &task.tokens,
            .count_only = count_only,
        };
        defer if (in_arena) {
            task.len = slot.arena.items.len - task.off;
        };
        var i = task.row_begin;
        while (i < task.row_end) : (i += 1) {
            if (ctx.in.isNull(i)) {
                ctx.counts[i] = 0;
                continue;
            }
            var text = ctx.in.row(i);
            sink.read_end = ctx.in.readEnd(i);
            if (utf8.firstInvalidIn(text, sink.avail(text))) |bad| {
                if (ctx.opts.errors_replace == 0) {
                    task.status = .invalid_utf8;
                    task.err_row = i;
                    task.err_offset = bad;
                    return;
                }
                try slot.scratch.text.resize(ctx.gpa, utf8.repairBound(text.len));
                const n = utf8.repair(text, slot.scratch.text.items);
                text = slot.scratch.text.items[0..n];
                sink.read_end = 0;
            }
            const before = sink.count;
            errdefer task.err_row = i;
            if (row_threads > 1) {
                try ctx.encodeRowParallel(text, &sink, slot, row_threads);
            } else try encodeText(ctx.v, text, ctx.specials, &sink, &slot.scratch);
            const c = sink.count - before;
            if (c > ctx.row_limit) {
                task.status = .too_large;
                task.err_row = i;
                task.err_count = c;
                return;
            }
            ctx.counts[i] = @intCast(c);
        }
        // Only a buffer that can hold huge pages has resident pages past its ids that bufcache
        // does not know of (a huge page faults in 2 MiB at once).
        if (!count_only and task.huge) releaseTail(&task.tokens);
    }

    /// One big row on the pool: cut at line starts and between words (into the sink's free
    /// room, or only counted), else on this thread with its long pieces cut into segments.
    fn encodeRowParallel(ctx: *Ctx, text: []const u8, sink: *Sink, slot: *Slot, threads: usize) error{OutOfMemory}!void {
        if (sink.count_only) {
            if (try encodeTextParallel(ctx.gpa, ctx.v, text, ctx.specials, null, threads)) |got| {
                sink.count += got;
                return;
            }
        } else {
            try sink.buf.ensureUnusedCapacity(sink.gpa, text.len);
            if (try encodeTextParallel(ctx.gpa, ctx.v, text, ctx.specials, sink.buf.unusedCapacitySlice(), threads)) |got| {
                sink.buf.items.len += got;
                sink.count += got;
                return;
            }
        }
        slot.scratch.piece_threads = threads;
        defer slot.scratch.piece_threads = 1;
        try encodeText(ctx.v, text, ctx.specials, sink, &slot.scratch);
    }
};

/// `pool.Job.after` of a many-thread column: `vocab.publishSnapshot` over the job's scratches.
const Publish = struct {
    v: *const Vocab,
    slots: []Slot,

    fn run(p: *anyopaque) void {
        const pb: *Publish = @ptrCast(@alignCast(p));
        var ptrs: [pool.max_workers]*vocab_mod.Scratch = undefined;
        const n = @min(pb.slots.len, ptrs.len);
        for (pb.slots[0..n], 0..) |*s, i| ptrs[i] = &s.scratch;
        vocab_mod.publishSnapshot(pb.v, ptrs[0..n]);
    }
};

const CopyCtx = struct {
    tasks: []Task,
    starts: []const usize,
    values: []u32,
    /// Arena mode: the workers' slots, whose arenas hold the tasks' ids (freed after the job).
    slots: ?[]Slot,
    /// Keep the task buffers for the next call: only when they fit the cache's budget together
    /// (else they would pass through it while the output fills, and raise the peak by the budget).
    recycle: bool,

    fn runTask(ctx_ptr: *anyopaque, k: usize, _: usize) void {
        const ctx: *CopyCtx = @ptrCast(@alignCast(ctx_ptr));
        const t = &ctx.tasks[k];
        if (ctx.slots) |slots| {
            @memcpy(ctx.values[ctx.starts[k]..][0..t.len], slots[t.arena].arena.items[t.off..][0..t.len]);
            return;
        }
        @memcpy(ctx.values[ctx.starts[k]..][0..t.tokens.items.len], t.tokens.items);
        freeTokens(t.alloc, t.tokens.allocatedSlice(), t.tokens.items.len, ctx.recycle);
        t.tokens = .empty;
    }
};

/// The biggest column (bytes of text) whose multi-task encode writes its ids into one arena
/// per worker instead of a buffer per task. A call used to map, fault and unmap up to 16 task
/// buffers a thread (bufcache keeps 64 mappings and 32 MiB of them), so at 16 threads most of
/// a call's 256 buffers were fresh mappings each call; the arenas are one mapping a worker,
/// kept for the next call. Above this size the per-task buffers stay: each is freed as soon as
/// its ids are copied into the output, which keeps the peak of a big column at about input +
/// output (an arena is freed only after the whole copy: its ids and the output are both
/// resident at the end, input + output + ids).
///
/// Session 28 (no 16-core machine: 16 threads on this 2-core one, which shows the syscalls and
/// faults if not their cost on real cores; 16 MB columns, the pipeline's batch size, cl100k,
/// steady state after 8 calls): page faults a call English 3,237 -> 312, 20k documents 5,099
/// -> 258, 200k lines 5,278 -> 195; system time 0.36-0.56 s -> 0.02-0.05 s over 15 calls;
/// MB/s 287 -> 445 (1.55x), 159 -> 233 (1.47x), 248 -> 385 (1.55x). Two threads (bench/
/// ab_builds.py --threads 2, 15 rounds, both orders): bench-sized English 1.00x, code 1.00x,
/// lines 1.02x / 1.01x, 20k documents 0.98x / 0.96x (o200k), noise on a busy machine.
/// A first version gave back each arena's tail past its ids (releaseTail): at two threads a
/// worker that ran a few more tasks in the next call faulted 4 KiB pages in the split huge
/// page (lines 0.90x); counting the arena to the end of its last huge page fixed it.
/// Not kept: arenas without huge pages where a worker's share is under 4 MiB of text
/// (MADV_NOHUGEPAGE; at 16 threads a worker writes ~1 MB of ids into 2 MiB pages): 16 threads,
/// 16 MB English 416-479 MB/s against 552-646 with them, 20k documents 230-312 against 221-242.
/// Nor waves for bigger columns (at most 8 MiB of text at a time into the arenas, each wave's
/// ids copied into an output reserved for the worst case and cut to size, the kept output
/// grown by mremap): page faults a call at 16 threads on 40 MB columns 10-14k -> 0.5-1k, but
/// the 100 MB memory check + 4.5 MiB (2 threads), and on 44 MB of varied text (the corpus
/// stream and the 200k lines) 2 threads 138-149 against 173-179 MB/s, 16 threads 114-125
/// against 115-127: each wave ends on a barrier and its copy evicts the piece tables from the
/// caches. The output of such a column is a fresh mapping each call anyway (it is bigger than
/// bufcache.out_cap), and on this virtual machine zeroing it costs more than the task buffers'
/// mappings did.
const arena_max_bytes: usize = 32 << 20;

fn setErr(out: *Output, comptime fmt: []const u8, args: anytype) void {
    const s = std.fmt.bufPrint(out.err_msg[0 .. out.err_msg.len - 1], fmt, args) catch out.err_msg[0 .. out.err_msg.len - 1];
    out.err_msg[s.len] = 0;
}

/// Encodes (or counts) a column. On success fills `out` (owner in out.handle).
pub fn encodeColumn(gpa: std.mem.Allocator, v: *const Vocab, in: *const Input, opts: *const Options, out: *Output) Status {
    out.* = .{};
    const total_bytes = switch (in.validate()) {
        .ok => |t| t,
        .bad_row => |r| {
            out.err_row = r;
            if (r >= 0) {
                setErr(out, "row {d}: malformed Arrow data (offsets or view out of range)", .{r});
            } else setErr(out, "malformed Arrow array (buffer sizes, offset or layout)", .{});
            return .invalid_argument;
        },
    };
    const n: usize = @intCast(in.n_rows);
    var specials_storage: Specials = undefined;
    var specials: ?*const Specials = null;
    if (!specialsFromOptions(opts, &specials_storage, &specials)) return .invalid_argument;

    const owned = gpa.create(Owned) catch return .out_of_memory;
    owned.* = .{};
    var ok = false;
    defer if (!ok) owned.free(gpa);

    // One more than the rows: an encoded column turns its counts into its offsets in place.
    owned.counts = gpa.alloc(u32, n + 1) catch return .out_of_memory;
    const counts = owned.counts[0..n];

    // Split rows into tasks of roughly equal bytes.
    const threads: usize = pool.slotCount(if (opts.threads == 0) 1 else opts.threads);
    defer if (threads > 1) pool.noteCallEnd();
    const target: usize = if (threads <= 1 or total_bytes < (if (pool.backToBack(threads)) split_min_awake else split_min))
        @max(total_bytes, 1)
    else
        @max(@as(usize, 32 << 10), @min(@as(usize, 4 << 20), total_bytes / (threads * 16) + 1));
    var tasks: std.ArrayList(Task) = .empty;
    defer {
        for (tasks.items) |*t| t.tokens.deinit(t.alloc);
        tasks.deinit(gpa);
    }
    {
        var begin: usize = 0;
        var acc: usize = 0;
        for (0..n) |i| {
            const len = if (in.isNull(i)) 0 else in.rowLen(i);
            if (threads > 1 and len >= par_min_bytes and len >= total_bytes / (2 * threads)) {
                // Half a thread's share or more in one row: the job could not balance it, so
                // the row itself goes on all threads, after the job. (Rows of a task's size
                // but less than that stay whole tasks: many 1 MB books on 16 threads balance
                // as rows, and each split row costs a pool run.)
                if (begin < i) {
                    const alloc = if (acc >= big_task_bytes) big_task_alloc else gpa;
                    tasks.append(gpa, .{ .alloc = alloc, .row_begin = begin, .row_end = i, .bytes = acc }) catch return .out_of_memory;
                }
                tasks.append(gpa, .{ .alloc = big_task_alloc, .row_begin = i, .row_end = i + 1, .bytes = len, .split = true }) catch return .out_of_memory;
                begin = i + 1;
                acc = 0;
                continue;
            }
            acc += len;
            if (acc >= target or i + 1 == n) {
                const alloc = if (acc >= big_task_bytes) big_task_alloc else gpa;
                tasks.append(gpa, .{ .alloc = alloc, .row_begin = begin, .row_end = i + 1, .bytes = acc }) catch return .out_of_memory;
                begin = i + 1;
                acc = 0;
            }
        }
    }
    const slots = gpa.alloc(Slot, threads) catch return .out_of_memory;
    defer {
        for (slots) |*s| {
            s.scratch.deinit();
            s.tmp.deinit(gpa);
            s.dropArena(false);
        }
        gpa.free(slots);
    }
    for (slots) |*s| s.* = .{ .scratch = vocab_mod.Scratch.init(gpa) };

    // Encoding: one list<int32> chunk's values (max_chunk_values: tests' smaller limit).
    const max_chunk: u64 = if (opts.max_chunk_values > 0) @intCast(opts.max_chunk_values) else std.math.maxInt(i32);
    const row_limit: u64 = if (opts.count_only != 0) std.math.maxInt(u32) else max_chunk;
    var ctx: Ctx = .{ .gpa = gpa, .v = v, .in = in, .opts = opts, .specials = specials, .tasks = tasks.items, .slots = slots, .counts = counts, .row_limit = row_limit };
    if (opts.count_only == 0 and tasks.items.len > 1 and total_bytes <= arena_max_bytes) {
        // Room for twice a worker's share of the ids' worst case (one a byte) plus a task, in
        // 2 MiB steps so that the next call of a similar column takes the same mappings back.
        const share = 2 * (total_bytes / threads) + target;
        ctx.arena_cap = std.mem.alignForward(usize, @min(share, total_bytes) + 1, huge_ids);
    }
    var job: pool.Job = .{ .ctx = &ctx, .run = Ctx.runTask, .n_tasks = tasks.items.len, .max_helpers = 0 };
    // Many-thread jobs refresh the vocabulary's shared snapshot of short pieces after their
    // last pool job (counting: this one; encoding: the copy of the ids into the output).
    var publish: Publish = .{ .v = v, .slots = slots };
    const publish_after: ?*const fn (*anyopaque) void = if (@min(slots.len, tasks.items.len) >= vocab_mod.snap_min_share) Publish.run else null;
    if (opts.count_only != 0) {
        job.after = publish_after;
        job.after_ctx = &publish;
    }
    pool.run(&job, threads);
    for (tasks.items) |*t| {
        if (t.split) ctx.runOne(t, &slots[0], threads);
    }

    // Tasks cover the rows in order and each stops at its first bad row (invalid UTF-8, or
    // more tokens than `row_limit`): the first failed task names the column's first bad row.
    for (tasks.items) |*t| {
        if (t.status != .ok) {
            out.err_row = @intCast(t.err_row);
            out.err_offset = @intCast(t.err_offset);
            switch (t.status) {
                .invalid_utf8 => setErr(out, "row {d}: invalid UTF-8 at byte offset {d}", .{ t.err_row, t.err_offset }),
                .too_large => if (t.err_count > 0 and opts.count_only == 0)
                    setErr(out, "row {d}: {d} tokens do not fit one list<int32> (limit {d})", .{ t.err_row, t.err_count, max_chunk })
                else
                    setErr(out, "row {d}: too large (a row must have fewer than 2**32 tokens and pieces under 4 GiB)", .{t.err_row}),
                .out_of_memory => setErr(out, "out of memory", .{}),
                else => setErr(out, "internal error", .{}),
            }
            return t.status;
        }
    }

    // Validity (re-based to offset 0).
    var null_count: usize = 0;
    if (in.validity != null) {
        for (0..n) |i| {
            if (in.isNull(i)) null_count += 1;
        }
        if (null_count > 0) {
            owned.validity = gpa.alloc(u8, (n + 7) / 8) catch return .out_of_memory;
            @memset(owned.validity, 0);
            for (0..n) |i| {
                if (!in.isNull(i)) owned.validity[i >> 3] |= @as(u8, 1) << @intCast(i & 7);
            }
            out.validity = owned.validity.ptr;
        }
    }
    out.null_count = @intCast(null_count);

    var total: u64 = 0;
    for (counts) |c| total += c;
    out.total_tokens = @intCast(total);
    if (opts.count_only != 0) out.counts = counts.ptr;

    if (opts.count_only == 0) {
        // Chunk boundaries so that each chunk's int32 offsets stay within max_chunk.
        var n_chunks: usize = 1;
        {
            var acc: u64 = 0;
            for (counts) |c| {
                if (acc + c > max_chunk) {
                    n_chunks += 1;
                    acc = 0;
                }
                acc += c;
            }
        }
        owned.chunk_rows = gpa.alloc(i64, n_chunks + 1) catch return .out_of_memory;
        owned.chunk_values = gpa.alloc(i64, n_chunks + 1) catch return .out_of_memory;
        if (n_chunks == 1) {
            // One chunk (a column under 2^31 ids): the counts become the offsets in place, so
            // the peak holds one array of a row's size, not two (the 100 MB memory check's
            // 1.8M rows: 7 MB less, while the ids are copied into the output).
            var acc: u32 = 0;
            for (counts) |*c| {
                const k = c.*;
                c.* = acc;
                acc += k;
            }
            owned.counts[n] = acc;
            owned.offsets = @ptrCast(owned.counts);
            owned.counts = &.{};
        } else {
            owned.offsets = gpa.alloc(i32, n + n_chunks) catch return .out_of_memory;
            var acc: u64 = 0; // within chunk
            var base: u64 = 0; // values before this chunk
            var ch: usize = 0;
            owned.offsets[0] = 0;
            for (counts, 0..) |c, i| {
                if (acc + c > max_chunk) {
                    base += acc;
                    acc = 0;
                    ch += 1;
                    owned.chunk_rows[ch] = @intCast(i);
                    owned.chunk_values[ch] = @intCast(base);
                    owned.offsets[i + ch] = 0;
                }
                acc += c;
                owned.offsets[i + ch + 1] = @intCast(acc);
            }
        }
        owned.chunk_rows[0] = 0;
        owned.chunk_values[0] = 0;
        owned.chunk_rows[n_chunks] = @intCast(n);
        owned.chunk_values[n_chunks] = @intCast(total);
        const handed_over = tasks.items.len == 1 and total > 0;
        if (handed_over) {
            // One task (one thread, or a small column): its buffer becomes the output as is.
            const t = &tasks.items[0];
            owned.values_mem = t.tokens.allocatedSlice();
            owned.values_alloc = t.alloc;
            owned.values = t.tokens.items;
            t.tokens = .empty;
        } else if (total >= out_min_ids) {
            // Into the output freed with the last result when it fits (bufcache.out_allocator):
            // its pages are resident already.
            owned.values_mem = bufcache.out_allocator.alloc(u32, total) catch return .out_of_memory;
            owned.values_alloc = bufcache.out_allocator;
            owned.values = owned.values_mem[0..total];
        } else {
            // Small (or empty): malloc, and the kept output stays for the next big call.
            owned.values = gpa.alloc(u32, @max(total, 1)) catch return .out_of_memory;
        }
        if (!handed_over) {
            // Tasks' ids into the output, on the pool (each task copies its own and frees its
            // buffer, so the copy and the output's first-touch page faults run in parallel).
            const starts = gpa.alloc(usize, tasks.items.len) catch return .out_of_memory;
            defer gpa.free(starts);
            var pos: usize = 0;
            const in_arena = ctx.arena_cap > 0;
            for (tasks.items, starts) |*t, *st| {
                st.* = pos;
                pos += if (in_arena) t.len else t.tokens.items.len;
            }
            std.debug.assert(pos == total);
            const recycle = total * 4 <= bufcache.resident_cap;
            var cc: CopyCtx = .{ .tasks = tasks.items, .starts = starts, .values = owned.values, .slots = if (in_arena) slots else null, .recycle = recycle };
            // Not kept (session 28): the copy's tasks taken in order by every thread (one
            // counter instead of a range a thread), so that a big column's output fills its huge
            // pages one after another instead of one a thread at a time: 100 MB memory check on
            // 16 threads (on 2 cores) output + 64.7-69.6 -> 44.2-44.6 MiB, 2 threads 32-33 ->
            // 30.6; but 16 threads on 40 MB English 0.89-0.96x, with more system time: the
            // threads then fault the same huge page at once and wait for one of them to zero
            // it. The device measured + 55.3 MiB on 16 real cores with the ranges.
            var cjob: pool.Job = .{ .ctx = &cc, .run = CopyCtx.runTask, .n_tasks = tasks.items.len, .max_helpers = 0 };
            cjob.after = publish_after;
            cjob.after_ctx = &publish;
            pool.run(&cjob, threads);
            if (in_arena) for (slots) |*s| s.dropArena(recycle);
        }
        out.offsets = owned.offsets.ptr;
        out.values = owned.values.ptr;
        out.n_values = @intCast(total);
        out.chunk_rows = owned.chunk_rows.ptr;
        out.chunk_values = owned.chunk_values.ptr;
        out.n_chunks = @intCast(n_chunks);
    }
    out.handle = owned;
    ok = true;
    return .ok;
}

/// The smallest column split into tasks: 48 KiB when the call comes within the pool's polling
/// window of the last multi-thread call (`pool.backToBack`: back-to-back batches), else 256 KiB,
/// since waking a sleeping helper (25-130 us on a virtual machine, and on this one its CPU then runs slowly
/// for a while) costs more than half of a smaller column's time.
/// Back-to-back 2-thread calls on English (bench/bench_batches.py), 2 threads / 1 thread:
/// 64 KB columns 1.00x -> 1.79x, 128 KB 1.01x -> 2.09x, 250 KB 1.00x -> 1.88x. Split whatever
/// the helpers do, calls 2 ms apart (helpers asleep): 64 KB 0.92x -> 0.63x, 300 KB 0.81x ->
/// 0.64x; with polling off altogether, 64 KB split ran 0.76x, 128 KB 1.14x, 250 KB 1.61x.
const split_min: usize = 256 << 10;
const split_min_awake: usize = 48 << 10;

// ---------------------------------------------------------------------------------------------
// One big text on several threads

/// Smallest text worth splitting, and the smallest chunk.
pub const par_min_bytes = 256 << 10;
const par_chunk_min = 64 << 10;
const par_chunk_max = 128 << 10;

/// A position p where the pattern ends a piece whatever follows p, and where the pieces before
/// p do not depend on the text after it. Three kinds:
/// - text[p-2] a visible ASCII character, text[p-1] '\n', text[p] an ASCII letter. The '\n'
///   ends its piece in all patterns (a lone newline, or the tail of a punctuation run), the
///   letter cannot take '\n' as its optional prefix, and the one look-ahead that sees past the
///   '\n' (`\s+(?!\S)` / `\s++$` on a one-char run) picks the same extent at the end of a chunk
///   as before a letter.
/// - The same after "\r\n" (text[p-3] visible ASCII), for the patterns with `\s*[\r\n]+`
///   (cl100k, o200k, qwen2), which take "\r\n" whole either way; gpt2's `\s+(?!\S)` would take
///   "\r\n" whole at the end of a chunk but "\r", "\n" before a letter.
/// - text[p-1] an ASCII letter, text[p] ASCII but not a letter or an apostrophe (every word
///   end: before a space, punctuation, a digit, a line break; base64 and hex blobs). A piece
///   that holds a letter ends there in every pattern (letter runs, contractions, o200k's cased
///   runs; only an apostrophe could continue one, as o200k's suffix), so a piece starts at p,
///   and the letter run before p ends there at the end of a chunk too; the pieces from p on
///   look only forward.
/// tests: "chunk starts" below checks every such p in random texts against the pretokenizer.
inline fn isChunkStart(pat: pretok.Pattern, text: []const u8, p: usize) bool {
    const c = text[p - 1];
    if (c == '\n') {
        if (!isAsciiLetter(text[p])) return false;
        const a = text[p - 2];
        if (a > 0x20 and a < 0x7F) return true;
        return a == '\r' and p >= 3 and pat != .gpt2 and text[p - 3] > 0x20 and text[p - 3] < 0x7F;
    }
    const d = text[p];
    return isAsciiLetter(c) and d < 0x80 and !isAsciiLetter(d) and d != '\'';
}

inline fn isAsciiLetter(c: u8) bool {
    return (c | 0x20) -% 'a' < 26;
}

/// The first chunk start at or after `from` (>= 3), if any. Candidates (a letter after '\n', a
/// word's end) come 32 at a time from vector compares: texts made of one separator (1 MB of
/// spaces or newlines) must not cost a call per byte.
fn nextChunkStart(pat: pretok.Pattern, text: []const u8, from: usize) ?usize {
    std.debug.assert(from >= 3);
    const V = @Vector(32, u8);
    const lane = 32;
    var p = from;
    while (p + lane + 1 <= text.len) : (p += lane) {
        const prev: V = text[p - 1 ..][0..lane].*;
        const cur: V = text[p..][0..lane].*;
        const after_nl: u32 = @bitCast(prev == @as(V, @splat('\n')));
        const ascii: u32 = @bitCast(cur < @as(V, @splat(0x80)));
        const apos: u32 = @bitCast(cur == @as(V, @splat('\'')));
        const cur_letter = letterBits(cur);
        var bits = (after_nl & cur_letter) | (letterBits(prev) & ascii & ~cur_letter & ~apos);
        while (bits != 0) : (bits &= bits - 1) {
            const i = p + @ctz(bits);
            if (isChunkStart(pat, text, i)) return i;
        }
    }
    while (p + 1 < text.len) : (p += 1) {
        if (isChunkStart(pat, text, p)) return p;
    }
    return null;
}

/// A chunk start inside a run of ASCII digits, at or just after `p` (`from` < p: a chunk start
/// or 0), for the patterns whose only digit rule is `\p{N}{1,3}` (cl100k, o200k): no other
/// rule takes a digit, so a run of digits is cut into threes from its first digit, and every
/// multiple of 3 from there (or from a chunk start inside the run) starts a piece whose text
/// does not depend on what comes before. The run must start after an ASCII byte (a non-ASCII
/// `\p{N}` before it would belong to the run). 1 MB of digits otherwise has no chunk start.
/// tests: "digit cuts" below.
fn digitCut(pat: pretok.Pattern, text: []const u8, from: usize, p: usize) ?usize {
    if (pat != .cl100k and pat != .o200k) return null;
    if (p >= text.len or !std.ascii.isDigit(text[p])) return null;
    var j = p;
    while (j > from and std.ascii.isDigit(text[j - 1])) j -= 1;
    if (j > from and text[j - 1] >= 0x80) return null;
    // Not at the run's first digit: the left chunk must end in one (spaces before a digit
    // split as `\s+(?!\S)` says, which they would not at the end of a chunk).
    const c = j + @max(1, (p - j + 2) / 3) * 3;
    if (c <= from or c >= text.len) return null;
    for (text[p .. c + 1]) |b| if (!std.ascii.isDigit(b)) return null;
    return c;
}

/// `digitCut` in the first run of ASCII digits within 256 bytes from p that has a place to cut
/// (numbers between spaces or commas, with no letter to cut at).
fn digitCutNear(pat: pretok.Pattern, text: []const u8, from: usize, p: usize) ?usize {
    if (pat != .cl100k and pat != .o200k) return null;
    const end = @min(text.len, p + 256);
    for (text[p..end], p..) |b, d| {
        // p's own run, then each run that starts in the window (a run too short to cut
        // leaves the next one its chance)
        if (std.ascii.isDigit(b) and (d == p or !std.ascii.isDigit(text[d - 1]))) {
            if (digitCut(pat, text, from, d)) |c| return c;
        }
    }
    return null;
}

inline fn letterBits(v: @Vector(32, u8)) u32 {
    const V = @Vector(32, u8);
    return @bitCast((v | @as(V, @splat(0x20))) -% @as(V, @splat('a')) < @as(V, @splat(26)));
}

/// Whether the specials allow chunking (none contains a newline or a space, so none spans a
/// chunk start).
fn specialsSplittable(specials: ?*const Specials) bool {
    const sp = specials orelse return true;
    return std.mem.indexOfAny(u8, sp.data, "\n ") == null;
}

const ParCtx = struct {
    v: *const Vocab,
    text: []const u8,
    specials: ?*const Specials,
    starts: []const usize, // chunk k is text[starts[k]..starts[k+1]]
    /// The round's chunks are first..first + n_tasks; chunk k writes its ids at
    /// buf[starts[k] - starts[first]..] (tokens <= bytes). null: count only.
    buf: ?[]u32,
    first: usize = 0,
    gpa: std.mem.Allocator,
    counts: []usize,
    failed: std.atomic.Value(bool) = .init(false),
    slots: []Slot,

    fn runTask(ctx_ptr: *anyopaque, i: usize, worker: usize) void {
        const ctx: *ParCtx = @ptrCast(@alignCast(ctx_ptr));
        const k = ctx.first + i;
        const a = ctx.starts[k];
        const b = ctx.starts[k + 1];
        const out = if (ctx.buf) |d| d[a - ctx.starts[ctx.first] ..][0 .. b - a] else null;
        ctx.counts[k] = encodeChunk(ctx.gpa, ctx.v, ctx.text[a..b], ctx.specials, out, &ctx.slots[worker], 1, ctx.slots.len) catch {
            ctx.failed.store(true, .monotonic);
            return;
        };
    }
};

/// Encodes `text` on `slot` into `out` (room for text.len ids), or only counts (out null, the
/// slot's tmp then holds each piece's ids); long pieces may use `piece_threads` threads.
/// Returns the id count.
fn encodeChunk(gpa: std.mem.Allocator, v: *const Vocab, text: []const u8, specials: ?*const Specials, out: ?[]u32, slot: *Slot, piece_threads: usize, share: usize) error{OutOfMemory}!usize {
    slot.scratch.bind(v, share);
    slot.scratch.piece_threads = piece_threads;
    defer slot.scratch.piece_threads = 1;
    var buf: std.ArrayList(u32) = if (out) |o| .initBuffer(o) else .empty;
    var sink: Sink = if (out != null)
        .{ .gpa = no_alloc, .buf = &buf, .count_only = false }
    else
        .{ .gpa = gpa, .buf = &slot.tmp, .count_only = true };
    try encodeText(v, text, specials, &sink, &slot.scratch);
    return sink.count;
}

/// An allocator that always fails (sinks over caller memory must never grow).
pub const no_alloc = std.mem.Allocator{ .ptr = undefined, .vtable = &std.mem.Allocator.VTable{
    .alloc = struct {
        fn f(_: *anyopaque, _: usize, _: std.mem.Alignment, _: usize) ?[*]u8 {
            return null;
        }
    }.f,
    .resize = std.mem.Allocator.noResize,
    .remap = std.mem.Allocator.noRemap,
    .free = std.mem.Allocator.noFree,
} };

/// Encodes valid UTF-8 `text` into `dst` (dst.len >= text.len; null: only count) on up to
/// `threads` threads by cutting it at `isChunkStart` positions; returns the number of ids, or
/// null when the text cannot be cut (then the caller encodes it on one thread). Same ids as
/// `encodeText`.
///
/// Chunks run in rounds of about 2 * threads chunks (at least 2 MiB of text), each into a round
/// buffer at its own byte offset, and are then copied to the end of `dst`'s ids in order: only
/// the output and one round buffer are ever written (16 threads: about 18 MiB), whatever the
/// text's size. A chunk with no cut for 4 times the target length (a 1 MB word, a blob) is
/// left out of the rounds and encoded in its turn straight into `dst`, its long pieces on the
/// pool (longpar.zig).
pub fn encodeTextParallel(gpa: std.mem.Allocator, v: *const Vocab, text: []const u8, specials: ?*const Specials, dst: ?[]u32, threads: usize) error{OutOfMemory}!?usize {
    if (threads <= 1 or text.len < par_min_bytes or !specialsSplittable(specials)) return null;
    if (dst) |d| std.debug.assert(d.len >= text.len);
    const target = std.math.clamp(text.len / (threads * 8), par_chunk_min, par_chunk_max);
    var starts: std.ArrayList(usize) = .empty;
    defer starts.deinit(gpa);
    try starts.append(gpa, 0);
    var p: usize = target;
    while (p + par_chunk_min / 2 < text.len) {
        const q = digitCutNear(v.pattern, text, starts.items[starts.items.len - 1], p) orelse
            nextChunkStart(v.pattern, text, p) orelse break;
        if (text.len - q < par_chunk_min / 2) break;
        try starts.append(gpa, q);
        p = q + target;
    }
    if (starts.items.len < 2) return null;
    try starts.append(gpa, text.len);
    const n_chunks = starts.items.len - 1;
    const counts = try gpa.alloc(usize, n_chunks);
    defer gpa.free(counts);
    const n_slots = pool.slotCount(threads);
    const slots = try gpa.alloc(Slot, n_slots);
    defer {
        for (slots) |*s| {
            s.scratch.deinit();
            s.tmp.deinit(gpa);
        }
        gpa.free(slots);
    }
    for (slots) |*s| s.* = .{ .scratch = vocab_mod.Scratch.init(gpa) };
    const big = @max(4 * target, longpar.min_len);
    // Counting needs no buffer: one round. Else at least 2 MiB of text a round (fewer
    // barriers: 1 MB on 2 threads in 4 rounds of 256 KiB ran 1.36 ms, in one 1.2x faster).
    const round_bytes = if (dst == null) text.len else @max(2 * n_slots * target, 2 << 20);
    // The round buffer: a round's chunks before the one that passes round_bytes, plus that one.
    var round_mem: []u32 = &.{};
    defer freeTokens(big_task_alloc, round_mem, round_mem.len, true);
    if (dst != null) round_mem = try big_task_alloc.alloc(u32, @min(text.len, round_bytes + big));
    var ctx: ParCtx = .{ .v = v, .text = text, .specials = specials, .starts = starts.items, .buf = if (dst != null) round_mem else null, .gpa = gpa, .counts = counts, .slots = slots };
    var w: usize = 0; // ids written to dst
    var k: usize = 0;
    while (k < n_chunks) {
        const len_k = starts.items[k + 1] - starts.items[k];
        if (len_k >= big) {
            // In its turn, on this thread, its long pieces on the pool.
            const out = if (dst) |d| d[w..] else null;
            w += try encodeChunk(gpa, v, text[starts.items[k]..starts.items[k + 1]], specials, out, &slots[0], threads, n_slots);
            k += 1;
            continue;
        }
        // A round: the chunks from k until round_bytes or a big chunk.
        var end = k;
        while (end < n_chunks and starts.items[end] - starts.items[k] < round_bytes and
            starts.items[end + 1] - starts.items[end] < big) end += 1;
        ctx.first = k;
        var job: pool.Job = .{ .ctx = &ctx, .run = ParCtx.runTask, .n_tasks = end - k, .max_helpers = 0 };
        pool.run(&job, n_slots);
        if (ctx.failed.load(.monotonic)) return error.OutOfMemory;
        for (k..end) |c| {
            if (dst) |d| @memcpy(d[w..][0..counts[c]], round_mem[starts.items[c] - starts.items[k] ..][0..counts[c]]);
            w += counts[c];
        }
        k = end;
    }
    return w;
}

/// Test helper: fragments drawn from `frags` into `buf` until at least 200 bytes.
fn fragmentText(r: std.Random, frags: []const []const u8, buf: []u8) []u8 {
    var len: usize = 0;
    while (len < 200) {
        const f = frags[r.uintLessThan(usize, frags.len)];
        @memcpy(buf[len..][0..f.len], f);
        len += f.len;
    }
    return buf[0..len];
}

/// Test helper: ends[i] = whether a piece of the whole text ends at i.
fn markPieceEnds(comptime pat: pretok.Pattern, text: []const u8, ends: []bool) void {
    @memset(ends[0 .. text.len + 1], false);
    var pos: usize = 0;
    while (pos < text.len) {
        pos = pretok.nextPieceEnd(pat, text, pos);
        ends[pos] = true;
    }
}

/// Test helper: text[0..c] and text[c..] pretokenized alone give exactly the whole text's piece
/// ends (`markPieceEnds`) on their side of c.
fn expectCutKeepsPieces(comptime pat: pretok.Pattern, text: []const u8, c: usize, ends: []const bool) !void {
    try std.testing.expect(ends[c]);
    var q: usize = 0;
    var n: usize = 0;
    while (q < c) : (n += 1) {
        q = pretok.nextPieceEnd(pat, text[0..c], q);
        try std.testing.expect(ends[q]);
    }
    try std.testing.expectEqual(std.mem.count(bool, ends[1 .. c + 1], &.{true}), n);
    q = c;
    n = 0;
    while (q < text.len) : (n += 1) {
        q = c + pretok.nextPieceEnd(pat, text[c..], q - c);
        try std.testing.expect(ends[q]);
    }
    try std.testing.expectEqual(std.mem.count(bool, ends[c + 1 .. text.len + 1], &.{true}), n);
}

test "chunk starts: the pieces of both sides equal the whole text's, for every pattern" {
    var prng = std.Random.DefaultPrng.init(0xC0FFEE);
    const r = prng.random();
    const frags = [_][]const u8{
        " ", " ", "  ", "\n", "\n", "\r\n", "\r", "\t", "a", "b", "Z", "q", "xy", "'s", "'S", "'ll",
        ".", "!", "//", "/", "1", "42", "\xc3\xa9", "\xc3\x89", "\xcc\x81", "\xe4\xb8\xad", "\xc2\xa0", " \n", ".\n", "-\r\n",
        "+", "=", "_", ":", "\"", "(", "'", "'t", "\xe2\x80\x99", "Ab", "aB",
    };
    var buf: [400]u8 = undefined;
    var ends_full: [401]bool = undefined;
    var checked: usize = 0;
    for (0..6000) |_| {
        const text = fragmentText(r, &frags, &buf);
        const len = text.len;
        inline for (.{ pretok.Pattern.cl100k, pretok.Pattern.o200k, pretok.Pattern.gpt2, pretok.Pattern.qwen2 }) |pat| {
            markPieceEnds(pat, text, &ends_full);
            for (3..len - 1) |p| {
                if (!isChunkStart(pat, text, p)) continue;
                checked += 1;
                try expectCutKeepsPieces(pat, text, p, &ends_full);
            }
            // nextChunkStart finds the first one.
            var want: ?usize = null;
            for (3..len - 1) |p| if (isChunkStart(pat, text, p)) {
                want = p;
                break;
            };
            try std.testing.expectEqual(want, nextChunkStart(pat, text, 3));
        }
    }
    try std.testing.expect(checked > 40_000);
}

test "digit cuts: the pieces of both sides equal the whole text's (cl100k, o200k)" {
    var prng = std.Random.DefaultPrng.init(0xD161);
    const r = prng.random();
    const frags = [_][]const u8{ "1", "2", "42", "123", "9", "0", " ", "a", "x1", ".", "\n", "\xd9\xa3", "\xc2\xb2", "\xc3\xa9", "'s", "-" };
    var buf: [400]u8 = undefined;
    var ends_full: [401]bool = undefined;
    var checked: usize = 0;
    for (0..3000) |_| {
        const text = fragmentText(r, &frags, &buf);
        const len = text.len;
        inline for (.{ pretok.Pattern.cl100k, pretok.Pattern.o200k }) |pat| {
            markPieceEnds(pat, text, &ends_full);
            for (1..len) |p| {
                const c = digitCut(pat, text, 0, p) orelse continue;
                checked += 1;
                try std.testing.expect(c >= p and c < len);
                try expectCutKeepsPieces(pat, text, c, &ends_full);
                // A chunk start inside the run serves as its start for the next cut.
                if (digitCut(pat, text, c, c + 1)) |c2| try std.testing.expect(ends_full[c2]);
            }
        }
    }
    try std.testing.expect(checked > 20_000);
}
