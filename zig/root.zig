//! arrowtok C ABI. Every export returns a status (see encode.Status) and never panics across the
//! boundary: errors become codes plus a message in the caller's output struct. Handles (vocab,
//! results) are owned by the caller and freed with the matching *_free call.
const std = @import("std");
const builtin = @import("builtin");
const pretok = @import("pretok.zig");
const blockscan = @import("blockscan.zig");
const vocab_mod = @import("vocab.zig");
const enc = @import("encode.zig");
const dec = @import("decode.zig");
const pool = @import("pool.zig");
const utf8 = @import("utf8.zig");
const Vocab = vocab_mod.Vocab;
const Status = enc.Status;

const gpa = std.heap.c_allocator;
/// The vocabulary's tables: big ones on huge pages (hugealloc.zig).
const vocab_gpa = @import("hugealloc.zig").allocator;

comptime {
    _ = pretok; // pretok.zig exports at_pretokenize (tests)
}

const abi_version: u32 = 4;

export fn at_abi_version() u32 {
    return abi_version;
}

export fn at_cpu_name() [*:0]const u8 {
    return std.fmt.comptimePrint("{s}", .{builtin.cpu.model.name});
}

/// Loads a .tiktoken file's contents. pattern: 0 = cl100k, 1 = o200k.
/// On a parse error, *bad_line gets the 1-based line number (0 if not line-specific).
export fn at_vocab_load_tiktoken(data: ?[*]const u8, len: usize, pattern: u32, out_handle: ?*?*Vocab, bad_line_out: ?*u64) i32 {
    const out = out_handle orelse return @intFromEnum(Status.invalid_argument);
    const bad_line = bad_line_out orelse return @intFromEnum(Status.invalid_argument);
    out.* = null;
    bad_line.* = 0;
    if (pattern > 1) return @intFromEnum(Status.invalid_argument);
    const d = data orelse return @intFromEnum(Status.invalid_argument);
    const pat: pretok.Pattern = @enumFromInt(@as(u8, @intCast(pattern)));
    const v = vocab_mod.loadTiktoken(vocab_gpa, pat, d[0..len], bad_line) catch |e| return switch (e) {
        error.OutOfMemory => @intFromEnum(Status.out_of_memory),
        else => @intFromEnum(Status.bad_vocab),
    };
    out.* = v;
    return 0;
}

/// Loads a merge-list (Hugging Face byte-level BPE) vocabulary: n tokens as bytes
/// data[offs[k]..offs[k+1]] with ids[k]; merges as (left id, right id) pairs in priority order
/// (merges[2r], merges[2r+1]). pattern: a scanner id (see pretok.Pattern). flags bit 0:
/// ignore_merges (a piece that is a whole token is that token). *bad gets the 1-based index of a
/// bad token or merge.
export fn at_vocab_load_merges(data: ?[*]const u8, offs: ?[*]const u32, ids: ?[*]const u32, n: usize, merges: ?[*]const u32, n_merges: usize, pattern: u32, flags: u32, out_handle: ?*?*Vocab, bad_out: ?*u64) i32 {
    const out = out_handle orelse return @intFromEnum(Status.invalid_argument);
    const bad = bad_out orelse return @intFromEnum(Status.invalid_argument);
    out.* = null;
    bad.* = 0;
    const pat = std.enums.fromInt(pretok.Pattern, pattern) orelse return @intFromEnum(Status.invalid_argument);
    if (n == 0) return @intFromEnum(Status.invalid_argument);
    const d = data orelse return @intFromEnum(Status.invalid_argument);
    const o = offs orelse return @intFromEnum(Status.invalid_argument);
    const i = ids orelse return @intFromEnum(Status.invalid_argument);
    if (!enc.Specials.offsetsOk(o[0 .. n + 1])) return @intFromEnum(Status.invalid_argument);
    const m: []const [2]u32 = if (n_merges == 0) &.{} else @ptrCast((merges orelse return @intFromEnum(Status.invalid_argument))[0 .. 2 * n_merges]);
    const v = vocab_mod.loadMerges(vocab_gpa, pat, d[0..o[n]], o[0 .. n + 1], i[0..n], m, flags & 1 != 0, bad) catch |e| return switch (e) {
        error.OutOfMemory => @intFromEnum(Status.out_of_memory),
        error.TooLarge => @intFromEnum(Status.too_large),
        else => @intFromEnum(Status.bad_vocab),
    };
    out.* = v;
    return 0;
}

/// BPE of pre-split pieces (the fallback for split patterns without a scanner): pieces are
/// data[ends[k-1]..ends[k]] (ends[-1] = 0), tokens go to out_tokens (cap >= the last end).
export fn at_encode_pieces(v: ?*const Vocab, data: ?[*]const u8, ends: ?[*]const u64, n_pieces: usize, out_tokens: ?[*]u32, cap: usize, out_n_in: ?*i64) i32 {
    const out_n = out_n_in orelse return @intFromEnum(Status.invalid_argument);
    out_n.* = 0;
    const vv = v orelse return @intFromEnum(Status.invalid_argument);
    if (n_pieces == 0) return 0;
    const e = ends orelse return @intFromEnum(Status.invalid_argument);
    const d = data orelse return @intFromEnum(Status.invalid_argument);
    const dst = out_tokens orelse return @intFromEnum(Status.invalid_argument);
    var prev: u64 = 0;
    for (e[0..n_pieces]) |end| {
        if (end < prev) return @intFromEnum(Status.invalid_argument);
        prev = end;
    }
    if (cap < prev) return @intFromEnum(Status.buffer_too_small);
    var scratch = vocab_mod.Scratch.init(gpa);
    defer scratch.deinit();
    scratch.bind(vv, 1);
    var pos: usize = 0;
    var start: usize = 0;
    for (e[0..n_pieces]) |end_u| {
        const end: usize = @intCast(end_u);
        if (end > start) {
            pos += vocab_mod.encodePiece(vv, d[start..end], dst[pos..cap], &scratch) catch return @intFromEnum(Status.out_of_memory);
        }
        start = end;
    }
    out_n.* = @intCast(pos);
    return 0;
}

/// Why the last at_vocab_load_tiktoken failed, for messages: 1 bad line, 2 duplicate, 3 missing byte, 4 too large.
export fn at_vocab_set_specials(v: ?*Vocab, data: ?[*]const u8, offs: ?[*]const u32, ids: ?[*]const u32, n: u32) i32 {
    const vv = v orelse return @intFromEnum(Status.invalid_argument);
    if (n == 0) {
        vocab_mod.setSpecials(vv, &.{}, &[_]u32{0}, &.{}) catch return @intFromEnum(Status.out_of_memory);
        return 0;
    }
    const o = offs orelse return @intFromEnum(Status.invalid_argument);
    const d = data orelse return @intFromEnum(Status.invalid_argument);
    const i = ids orelse return @intFromEnum(Status.invalid_argument);
    if (!enc.Specials.offsetsOk(o[0 .. n + 1])) return @intFromEnum(Status.invalid_argument);
    vocab_mod.setSpecials(vv, d[0..o[n]], o[0 .. n + 1], i[0..n]) catch return @intFromEnum(Status.out_of_memory);
    return 0;
}

export fn at_vocab_free(v: ?*Vocab) void {
    if (v) |vv| vv.deinit();
}

export fn at_vocab_n_ids(v: ?*const Vocab) u32 {
    return if (v) |vv| vv.n_ids else 0;
}

export fn at_vocab_max_token_len(v: ?*const Vocab) u64 {
    return if (v) |vv| vv.max_token_len else 0;
}

/// Rank of a byte string (for `encode_single_token`), or -1.
export fn at_vocab_rank(v: ?*const Vocab, data: ?[*]const u8, len: usize) i64 {
    const vv = v orelse return -1;
    if (len == 0) return -1;
    const d = data orelse return -1;
    const r = vv.rank(d[0..len]);
    return if (r == vocab_mod.no_rank) -1 else r;
}

/// Encodes one text. out_tokens must hold `cap` ids; tokens <= bytes (errors=replace: <= 3 * bytes).
export fn at_encode_text(
    v: ?*const Vocab,
    data: ?[*]const u8,
    len: usize,
    opts_in: ?*const enc.Options,
    out_tokens: ?[*]u32,
    cap: usize,
    out_n_in: ?*i64,
    err_offset_in: ?*i64,
) i32 {
    const out_n = out_n_in orelse return @intFromEnum(Status.invalid_argument);
    const err_offset = err_offset_in orelse return @intFromEnum(Status.invalid_argument);
    const opts = opts_in orelse return @intFromEnum(Status.invalid_argument);
    out_n.* = 0;
    err_offset.* = -1;
    const vv = v orelse return @intFromEnum(Status.invalid_argument);
    if (len == 0) return 0;
    const d = data orelse return @intFromEnum(Status.invalid_argument);
    const dst = out_tokens orelse return @intFromEnum(Status.invalid_argument);
    var text = d[0..len];
    var scratch = vocab_mod.Scratch.init(gpa);
    defer scratch.deinit();
    scratch.bind(vv, 1);
    if (utf8.firstInvalid(text)) |bad| {
        if (opts.errors_replace == 0) {
            err_offset.* = @intCast(bad);
            return @intFromEnum(Status.invalid_utf8);
        }
        scratch.text.resize(gpa, utf8.repairBound(len)) catch return @intFromEnum(Status.out_of_memory);
        text = scratch.text.items[0..utf8.repair(text, scratch.text.items)];
    }
    if (cap < text.len) return @intFromEnum(Status.buffer_too_small);
    // A large caller buffer (encode_to_numpy's fresh array) fills front to back: huge pages
    // spare a page fault per 4 KiB.
    // (Only the part the tokens can reach: at most one per byte; `cap` itself is the caller's.)
    if (text.len >= 1 << 19) _ = enc.adviseHuge(std.mem.sliceAsBytes(dst[0..text.len]));
    var buf: std.ArrayList(u32) = .initBuffer(dst[0..cap]);
    // The sink must not reallocate caller memory: capacity >= text.len >= tokens, and
    // encodePiece only asks for piece.len more.
    var specials_storage: enc.Specials = undefined;
    var specials: ?*const enc.Specials = null;
    if (!enc.specialsFromOptions(opts, &specials_storage, &specials)) return @intFromEnum(Status.invalid_argument);
    const threads: usize = if (opts.threads > 1) @intCast(opts.threads) else 1;
    if (enc.encodeTextParallel(gpa, vv, text, specials, dst[0..cap], threads) catch return @intFromEnum(Status.out_of_memory)) |n| {
        out_n.* = @intCast(n);
        return 0;
    }
    // Not cut: its long pieces may still use the pool (longpar.zig).
    scratch.piece_threads = threads;
    var sink: enc.Sink = .{ .gpa = enc.no_alloc, .buf = &buf, .count_only = false };
    enc.encodeText(vv, text, specials, &sink, &scratch) catch return @intFromEnum(Status.out_of_memory);
    out_n.* = @intCast(buf.items.len);
    return 0;
}

/// The arguments of `at_encode_text` in one caller-owned block, so the per-call cost of a
/// foreign call from Python (one conversion per argument) is paid for two arguments, not eight.
pub const TextCall = extern struct {
    vocab: ?*const Vocab,
    opts: ?*const enc.Options,
    out: ?[*]u32,
    cap: u64,
    len: u64,
    got: i64,
    bad_offset: i64,
};

/// `at_encode_text` with its arguments in `blk` (in: vocab, opts, out, cap, len; out: got,
/// bad_offset) and the text in `data`.
export fn at_encode_text_blk(blk_in: ?*TextCall, data: ?[*]const u8) i32 {
    const b = blk_in orelse return @intFromEnum(Status.invalid_argument);
    return at_encode_text(b.vocab, data, @intCast(b.len), b.opts, b.out, @intCast(b.cap), &b.got, &b.bad_offset);
}

/// `at_encode_text_blk` for a short text whose length comes as an argument: returns the number
/// of ids written (>= 0) or minus the status (`blk.got` and `blk.bad_offset` are set as there).
/// Python calls it through ctypes *without* argtypes (bytes go as their buffer's address, an
/// int as a C int, the block as a byref), which takes ~0.25 us of conversion off a ~2 us call;
/// `len` is a C int for that reason, so the caller keeps texts under 2^31 bytes (it uses it
/// below 256 KiB).
export fn at_encode_small(blk_in: ?*TextCall, data: ?[*]const u8, len: c_int) c_int {
    const b = blk_in orelse return -@intFromEnum(Status.invalid_argument);
    if (len < 0) return -@intFromEnum(Status.invalid_argument);
    b.len = @intCast(len);
    const st = at_encode_text_blk(b, data);
    if (st != 0) return -st;
    return std.math.cast(c_int, b.got) orelse -@intFromEnum(Status.invalid_argument);
}

/// Encodes or counts an Arrow string/binary column. See encode.Input / Options / Output.
export fn at_encode_column(v: ?*const Vocab, in: ?*const enc.Input, opts: ?*const enc.Options, out: ?*enc.Output) i32 {
    const o = out orelse return @intFromEnum(Status.invalid_argument);
    const vv = v orelse return @intFromEnum(Status.invalid_argument);
    const i = in orelse return @intFromEnum(Status.invalid_argument);
    const op = opts orelse return @intFromEnum(Status.invalid_argument);
    return @intFromEnum(enc.encodeColumn(gpa, vv, i, op, o));
}

export fn at_decode_column(v: ?*const Vocab, in: ?*const dec.ListInput, out: ?*dec.DecodeOutput) i32 {
    const o = out orelse return @intFromEnum(Status.invalid_argument);
    const vv = v orelse return @intFromEnum(Status.invalid_argument);
    const i = in orelse return @intFromEnum(Status.invalid_argument);
    return @intFromEnum(dec.decodeColumn(gpa, vv, i, o));
}

/// Decodes ids to bytes (no UTF-8 repair). Writes at most cap bytes; *needed gets the full size
/// (call again with a larger buffer when needed > cap). *bad_index gets the index of an unknown id.
export fn at_decode_tokens(v: ?*const Vocab, ids: ?[*]const u32, n: usize, out: ?[*]u8, cap: usize, needed_out: ?*u64, bad_index_out: ?*i64) i32 {
    const needed = needed_out orelse return @intFromEnum(Status.invalid_argument);
    const bad_index = bad_index_out orelse return @intFromEnum(Status.invalid_argument);
    needed.* = 0;
    bad_index.* = -1;
    const vv = v orelse return @intFromEnum(Status.invalid_argument);
    // NULL out only with cap 0 (a size query: buffer_too_small and *needed); with room claimed
    // and nowhere to write it, "ok" would hand back bytes that were never written.
    if (out == null and cap != 0) return @intFromEnum(Status.invalid_argument);
    if (n == 0) return 0;
    const p = ids orelse return @intFromEnum(Status.invalid_argument);
    var total: usize = 0;
    for (p[0..n], 0..) |id, k| {
        const b = vv.idBytes(id) orelse {
            bad_index.* = @intCast(k);
            return @intFromEnum(Status.unknown_token);
        };
        if (out) |o| {
            if (total + b.len <= cap) @memcpy(o[total..][0..b.len], b);
        }
        total += b.len;
    }
    needed.* = total;
    return if (total > cap) @intFromEnum(Status.buffer_too_small) else 0;
}

/// `at_decode_tokens` with its arguments in one block (in: vocab, ids, n, out, cap; out: needed,
/// bad_index), so a short list from Python costs two field stores and one foreign call with no
/// argtypes conversion. Returns the status.
pub const DecodeCall = extern struct {
    vocab: ?*const Vocab,
    ids: ?[*]const u32,
    n: u64,
    out: ?[*]u8,
    cap: u64,
    needed: u64,
    bad_index: i64,
};

export fn at_decode_blk(blk_in: ?*DecodeCall) i32 {
    const b = blk_in orelse return @intFromEnum(Status.invalid_argument);
    const n = std.math.cast(usize, b.n) orelse return @intFromEnum(Status.invalid_argument);
    const cap = std.math.cast(usize, b.cap) orelse return @intFromEnum(Status.invalid_argument);
    return at_decode_tokens(b.vocab, b.ids, n, b.out, cap, &b.needed, &b.bad_index);
}

export fn at_result_free(handle: ?*anyopaque) void {
    const h: *enc.Owned = @ptrCast(@alignCast(handle orelse return));
    h.free(gpa);
}

/// In a forked child: drop the parent's thread pool state (its threads do not exist here).
export fn at_after_fork_child() void {
    pool.forget();
    vocab_mod.afterForkChild();
}

test {
    std.testing.refAllDecls(@This());
    _ = utf8;
    _ = vocab_mod;
    _ = blockscan;
    _ = @import("bufcache.zig");
    _ = @import("hugealloc.zig");
    _ = @import("longpar.zig");
}
