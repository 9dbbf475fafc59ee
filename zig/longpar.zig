//! One long piece (a 1 MB word with no break the split pattern honours: random letters, a DNA or
//! base64 blob, a run of CJK) encoded on the thread pool, with the same ids as one thread.
//!
//! Why it is exact. BPE's output for a piece is the one token sequence that spells it in which
//! every adjacent pair is compatible (longpiece.zig's file comment). So: cut the piece into
//! segments, encode each segment with `overlap` bytes of the next one on its own (each result is
//! itself a compatible chain), and join segment k's result to segment k+1's at a position p in
//! the overlap where both have a token boundary and the token of k ending at p is compatible
//! with the token of k+1 starting at p. The joined sequence spells the piece and every adjacent
//! pair in it is compatible, so it is the piece's BPE, whatever p was picked. When two results
//! share no such position in the overlap (periodic runs such as 'ab' * N can stay out of step),
//! the caller encodes the piece on one thread instead.
//!
//! Memory is bounded whatever the piece's size: each segment encodes into a buffer of
//! (segment + overlap) ids; all at once while that stays under 16 MiB, else in rounds of 2 per
//! thread (16 threads: 2 * 16 * (256 KiB + 4 KiB) * 4 B = 33 MiB).
//!
//! Performance notes (1 MB pieces through encode_to_numpy, 2 threads against 1 on the 2-core
//! machine, interleaved in one process, medians of 5; cl100k / o200k):
//! - random letters 1.83 / 1.90x (16.4 -> 9.0 ms, 19.9 -> 10.5), DNA (ACGT) 1.78 / 1.78x,
//!   random CJK 1.65 / 1.62x, spaces 1.75 / 1.77x, 'a' 1.58 / 1.62x, "abc" 1.68 / 1.71x.
//! - Rounds of 2 segments per thread with a barrier between them (4 rounds for 1 MB): random
//!   letters 1.71x; all segments in one round while the buffers stay under 16 MiB: 1.83x.
//! - Segment lengths rounded down to 64 KiB, with the last segment taking the rest (1 MB: 15
//!   segments, one thread gets 8): 1.65-1.75x; cuts at k * len / n rounded to 4 KiB (8 equal
//!   segments): 1.83-1.90x.
//! - Cuts at arbitrary positions: 1 MB of spaces never joined (0.79x: the parallel work thrown
//!   away, then one thread); cuts at multiples of 4 KiB: every run here joins.
const std = @import("std");
const vocab = @import("vocab.zig");
const longpiece = @import("longpiece.zig");
const pool = @import("pool.zig");
const Vocab = vocab.Vocab;

/// Pieces at least this long are cut into segments when more than one thread is allowed.
pub const min_len = 256 << 10;
/// Bytes each segment's encoding runs past the segment's end, where the join is looked for.
/// Random letters and CJK share a compatible boundary within a few tokens of the cut.
const overlap_default = 4 << 10;
/// Cut positions are multiples of this: runs whose BPE repeats with a period dividing it (runs
/// of one character give power-of-two tokens) are cut where their tokens line up.
const cut_align = 4 << 10;
const seg_len_min = 64 << 10;
const seg_len_max = 256 << 10;
/// Segments per thread (dynamic scheduling evens out their costs).
const segs_per_thread = 4;
/// All segments' buffers at once up to this; past it, rounds of round_per_thread per thread.
const round_bytes_max = 16 << 20;
const round_per_thread = 2;

comptime {
    // A join must fall after the previous one: segments longer than two overlaps plus an
    // alignment step keep the overlaps apart.
    std.debug.assert(seg_len_min > 2 * overlap_default + cut_align);
    std.debug.assert(min_len >= 2 * seg_len_min);
}

/// How a piece is cut: n_segs segments, segment k from cut(k) (k * len / n_segs rounded down
/// to `cut_align`), each encoded `overlap` bytes past the next cut.
pub const Plan = struct {
    n_segs: usize,
    cut_align: usize,
    overlap: usize,

    pub fn forPiece(len: usize, threads: usize) Plan {
        var n = @max(threads, 1) * segs_per_thread;
        if (len / n > seg_len_max) n = (len + seg_len_max - 1) / seg_len_max;
        if (len / n < seg_len_min) n = @max(len / seg_len_min, 1);
        return .{ .n_segs = n, .cut_align = cut_align, .overlap = overlap_default };
    }
    fn cut(p: Plan, len: usize, k: usize) usize {
        if (k >= p.n_segs) return len;
        const c: usize = @intCast(@as(u128, k) * len / p.n_segs);
        return c / p.cut_align * p.cut_align;
    }
    /// Room for the longest segment's ids.
    fn stride(p: Plan, len: usize) usize {
        return len / p.n_segs + p.cut_align + p.overlap + 1;
    }
    /// Whether every join falls after the previous one.
    fn valid(p: Plan, len: usize) bool {
        return p.n_segs >= 2 and p.cut_align >= 1 and len / p.n_segs > 2 * p.overlap + p.cut_align;
    }
};

const Round = struct {
    v: *const Vocab,
    piece: []const u8,
    plan: Plan,
    first: usize, // the round's first segment
    bufs: []u32, // segment first + i writes bufs[i * stride ..][0..stride]
    stride: usize,
    counts: []usize,
    scratches: []vocab.Scratch, // one per worker slot
    failed: std.atomic.Value(bool) = .init(false),

    fn segStart(r: *const Round, k: usize) usize {
        return r.plan.cut(r.piece.len, k);
    }
    /// Segment k's encoded range: to the next cut plus the overlap (the last: to the end).
    fn segEnd(r: *const Round, k: usize) usize {
        if (k + 1 == r.plan.n_segs) return r.piece.len;
        return @min(r.piece.len, r.segStart(k + 1) + r.plan.overlap);
    }

    fn runTask(ctx: *anyopaque, i: usize, worker: usize) void {
        const r: *Round = @ptrCast(@alignCast(ctx));
        const k = r.first + i;
        const scratch = &r.scratches[worker];
        scratch.bind(r.v, r.scratches.len);
        const text = r.piece[r.segStart(k)..r.segEnd(k)];
        std.debug.assert(text.len <= r.stride);
        const out = r.bufs[i * r.stride ..][0..text.len];
        r.counts[i] = vocab.encodeLongPiece(r.v, text, out, scratch) catch {
            r.failed.store(true, .monotonic);
            return;
        };
    }
};

/// The part of a segment's result not written out yet: ids toks[from..], the first starting at
/// byte `at` of the piece; the last ends at byte `end`.
const Pending = struct {
    toks: []u32,
    from: usize,
    at: usize,
    end: usize,
};

/// BPE of `piece` (>= min_len bytes) on up to `threads` threads into `out` (room for piece.len
/// ids). Returns the id count, or null when two segments found no join (then encode it on one
/// thread). Same ids as one thread.
pub fn encode(gpa: std.mem.Allocator, v: *const Vocab, piece: []const u8, out: []u32, threads: usize) error{OutOfMemory}!?usize {
    return encodePlanned(gpa, v, piece, out, threads, Plan.forPiece(piece.len, threads));
}

/// `encode` with the cut given (tests use short segments, to join often).
pub fn encodePlanned(gpa: std.mem.Allocator, v: *const Vocab, piece: []const u8, out: []u32, threads: usize, plan: Plan) error{OutOfMemory}!?usize {
    if (!plan.valid(piece.len) or out.len < piece.len) return null;
    const n_segs = plan.n_segs;
    const stride = plan.stride(piece.len);
    const per_round = if (n_segs * stride * 4 <= round_bytes_max) n_segs else @min(n_segs, @max(threads, 1) * round_per_thread);
    const bufs = try gpa.alloc(u32, per_round * stride);
    defer gpa.free(bufs);
    const carry = try gpa.alloc(u32, stride);
    defer gpa.free(carry);
    const counts = try gpa.alloc(usize, per_round);
    defer gpa.free(counts);
    // join's boundary list: (position - join start, id index), at most one per overlap byte
    const ends = try gpa.alloc(u64, plan.overlap + 1);
    defer gpa.free(ends);
    const n_slots = pool.slotCount(threads);
    const scratches = try gpa.alloc(vocab.Scratch, n_slots);
    defer {
        for (scratches) |*s| s.deinit();
        gpa.free(scratches);
    }
    for (scratches) |*s| s.* = vocab.Scratch.init(gpa);

    var r: Round = .{
        .v = v,
        .piece = piece,
        .plan = plan,
        .first = 0,
        .bufs = bufs,
        .stride = stride,
        .counts = counts,
        .scratches = scratches,
    };
    var written: usize = 0;
    var pending: ?Pending = null;
    while (r.first < n_segs) {
        const in_round = @min(per_round, n_segs - r.first);
        var job: pool.Job = .{ .ctx = &r, .run = Round.runTask, .n_tasks = in_round, .max_helpers = 0 };
        pool.run(&job, n_slots);
        if (r.failed.load(.monotonic)) return error.OutOfMemory;
        for (0..in_round) |i| {
            const k = r.first + i;
            const seg: Pending = .{
                .toks = bufs[i * stride ..][0..counts[i]],
                .from = 0,
                .at = r.segStart(k),
                .end = r.segEnd(k),
            };
            if (pending) |p| {
                const j = join(v, p, seg, ends) orelse return null;
                const emit = p.toks[p.from..j.left];
                @memcpy(out[written..][0..emit.len], emit);
                written += emit.len;
                pending = .{ .toks = seg.toks, .from = j.right, .at = j.at, .end = seg.end };
            } else pending = seg;
        }
        // The round's buffers are rewritten next round: keep the last result's unwritten ids.
        const p = &pending.?;
        const rest = p.toks[p.from..];
        std.mem.copyForwards(u32, carry[0..rest.len], rest);
        p.toks = carry[0..rest.len];
        p.from = 0;
        r.first += in_round;
    }
    const p = pending.?;
    const rest = p.toks[p.from..];
    @memcpy(out[written..][0..rest.len], rest);
    return written + rest.len;
}

const Join = struct {
    left: usize, // left.toks[..left] end at `at`
    right: usize, // right.toks[right..] start at `at`
    at: usize,
};

/// The first position at or after right.at where `left` (which runs past it) and `right` both
/// have a token boundary and the two tokens there are compatible.
fn join(v: *const Vocab, left: Pending, right: Pending, ends: []u64) ?Join {
    std.debug.assert(left.end > right.at and right.at > left.at);
    // Left's boundaries at or after right.at, from its end backwards, as
    // (position - right.at) << 32 | index of the id that starts there.
    var n: usize = 0;
    var pos = left.end;
    var i = left.toks.len;
    while (i > left.from and pos >= right.at and n < ends.len) {
        ends[n] = (@as(u64, pos - right.at) << 32) | i;
        n += 1;
        i -= 1;
        pos -= v.tokenBytes(left.toks[i]).len;
    }
    // Both in increasing position: left's are ends[n-1], ends[n-2], ...
    var q = right.at;
    var j = right.from;
    while (n > 0 and j < right.toks.len) {
        const lp = right.at + (ends[n - 1] >> 32);
        if (lp < q) {
            n -= 1;
        } else if (lp > q) {
            q += v.tokenBytes(right.toks[j]).len;
            j += 1;
        } else {
            const li: usize = @as(u32, @truncate(ends[n - 1]));
            if (longpiece.compatible(v, left.toks[li - 1], right.toks[j])) return .{ .left = li, .right = j, .at = q };
            n -= 1;
        }
    }
    return null;
}

// ---------------------------------------------------------------------------------------------
// Tests: short segments on trained vocabularies, so a piece has many joins.

fn expectPlanned(v: *const Vocab, piece: []const u8, threads: usize, plan: Plan, scratch: *vocab.Scratch, joined: *usize, fell_back: *usize) !void {
    const gpa = std.testing.allocator;
    const want = try gpa.alloc(u32, piece.len);
    defer gpa.free(want);
    const got = try gpa.alloc(u32, piece.len);
    defer gpa.free(got);
    const nw = try vocab.mergeHeap(v, piece, want, scratch);
    if (try encodePlanned(gpa, v, piece, got, threads, plan)) |ng| {
        try std.testing.expectEqualSlices(u32, want[0..nw], got[0..ng]);
        joined.* += 1;
    } else fell_back.* += 1;
}

test "segments joined at compatible boundaries equal the heap merge" {
    const gpa = std.testing.allocator;
    var arena_state = std.heap.ArenaAllocator.init(gpa);
    defer arena_state.deinit();
    const arena = arena_state.allocator();
    var prng = std.Random.DefaultPrng.init(0x10C9);
    const r = prng.random();
    var corpus_buf: [3000]u8 = undefined;
    const piece_buf = try gpa.alloc(u8, 6000);
    defer gpa.free(piece_buf);
    var scratch = vocab.Scratch.init(gpa);
    defer scratch.deinit();
    var joined: usize = 0;
    var fell_back: usize = 0;
    for (0..6) |round| {
        const alphabet = if (round % 2 == 0) "abcd" else "ab";
        const corpus = longpiece.randomText(r, &corpus_buf, alphabet);
        const toks = try longpiece.trainedTokens(gpa, arena, corpus, 40 + 30 * round);
        const v = try longpiece.vocabFrom(gpa, toks.items);
        defer v.deinit();
        try std.testing.expect(v.long.ready());
        for (0..60) |_| {
            const n = r.intRangeAtMost(usize, 600, piece_buf.len);
            const piece = longpiece.randomText(r, piece_buf[0..n], alphabet);
            const plan: Plan = .{
                .n_segs = r.intRangeAtMost(usize, 2, 9),
                .cut_align = if (r.boolean()) 1 else 16,
                .overlap = r.intRangeAtMost(usize, 8, 48),
            };
            if (!plan.valid(n)) continue;
            try expectPlanned(v, piece, r.intRangeAtMost(usize, 1, 4), plan, &scratch, &joined, &fell_back);
        }
    }
    // Joins are found far more often than not (a failure only costs the one-thread path).
    try std.testing.expect(joined > 200);
    try std.testing.expect(joined > 4 * fell_back);
}

test "runs of one byte join where the cuts are aligned" {
    const gpa = std.testing.allocator;
    const v = try longpiece.vocabFrom(gpa, &.{ "--", "----", "--------", "----------------" });
    defer v.deinit();
    try std.testing.expect(v.long.ready());
    var scratch = vocab.Scratch.init(gpa);
    defer scratch.deinit();
    const buf = try gpa.alloc(u8, 5000);
    defer gpa.free(buf);
    @memset(buf, '-');
    var joined: usize = 0;
    var fell_back: usize = 0;
    for ([_]usize{ 1000, 1001, 1015, 4096, 5000 }) |n| {
        try expectPlanned(v, buf[0..n], 2, .{ .n_segs = 4, .cut_align = 16, .overlap = 32 }, &scratch, &joined, &fell_back);
    }
    try std.testing.expectEqual(@as(usize, 0), fell_back);
    // Misaligned cuts may not join; then the answer is null, never wrong ids.
    for ([_]usize{ 1000, 1001, 1015, 4096, 5000 }) |n| {
        try expectPlanned(v, buf[0..n], 2, .{ .n_segs = 7, .cut_align = 1, .overlap = 32 }, &scratch, &joined, &fell_back);
    }
}
