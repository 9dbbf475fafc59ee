//! Token ids -> text, for a list<int32> column (output: large_string buffers).
const std = @import("std");
const vocab_mod = @import("vocab.zig");
const utf8 = @import("utf8.zig");
const enc = @import("encode.zig");
const Vocab = vocab_mod.Vocab;
const Status = enc.Status;

pub const ListInput = extern struct {
    large: u32, // 0: int32 offsets, 1: int64 offsets
    _pad: u32 = 0,
    offsets: ?*const anyopaque,
    values: ?[*]const u32, // already shifted by the child array's offset
    validity: ?[*]const u8,
    arr_offset: i64,
    n_rows: i64,
    offsets_len: i64, // bytes
    n_values: i64, // ids available at `values`
    validity_len: i64, // bytes
};

pub const DecodeOutput = extern struct {
    handle: ?*anyopaque = null,
    offsets: ?[*]i64 = null,
    data: ?[*]u8 = null,
    n_bytes: i64 = 0,
    validity: ?[*]u8 = null,
    null_count: i64 = 0,
    err_row: i64 = -1,
    err_offset: i64 = -1,
    err_msg: [256]u8 = @splat(0),
};

fn setErr(out: *DecodeOutput, comptime fmt: []const u8, args: anytype) void {
    const s = std.fmt.bufPrint(out.err_msg[0 .. out.err_msg.len - 1], fmt, args) catch out.err_msg[0 .. out.err_msg.len - 1];
    out.err_msg[s.len] = 0;
}

/// Appends the bytes of `ids` to `buf`; returns the index of an unknown id, if any.
pub fn appendBytes(gpa: std.mem.Allocator, v: *const Vocab, ids: []const u32, buf: *std.ArrayList(u8)) error{OutOfMemory}!?usize {
    for (ids, 0..) |id, k| {
        const b = v.idBytes(id) orelse return k;
        try buf.appendSlice(gpa, b);
    }
    return null;
}

inline fn listBounds(in: *const ListInput, k: usize) [2]i64 {
    if (in.large != 0) {
        const o: [*]const i64 = @ptrCast(@alignCast(in.offsets.?));
        return .{ o[k], o[k + 1] };
    }
    const o: [*]const i32 = @ptrCast(@alignCast(in.offsets.?));
    return .{ o[k], o[k + 1] };
}

pub fn decodeColumn(gpa: std.mem.Allocator, v: *const Vocab, in: *const ListInput, out: *DecodeOutput) Status {
    out.* = .{};
    if (in.n_rows < 0 or in.arr_offset < 0 or in.n_values < 0) return .invalid_argument;
    const n: usize = @intCast(in.n_rows);
    if (n > 0) {
        // Check buffer sizes and every offset before reading any row.
        if (in.offsets == null) return .invalid_argument;
        const end = std.math.add(usize, @intCast(in.arr_offset), n) catch return .invalid_argument;
        const width: usize = if (in.large != 0) 8 else 4;
        if (in.offsets_len < 0 or @as(usize, @intCast(in.offsets_len)) / width < end + 1) return .invalid_argument;
        if (@intFromPtr(in.offsets.?) % width != 0) return .invalid_argument;
        if (in.validity != null and in.validity_len < (end + 7) / 8) return .invalid_argument;
        for (0..n) |i| {
            const ab = listBounds(in, @as(usize, @intCast(in.arr_offset)) + i);
            if (ab[0] < 0 or ab[1] < ab[0] or ab[1] > in.n_values) {
                out.err_row = @intCast(i);
                setErr(out, "row {d}: malformed list offsets", .{i});
                return .invalid_argument;
            }
        }
    }
    const owned = gpa.create(enc.Owned) catch return .out_of_memory;
    owned.* = .{};
    var ok = false;
    defer if (!ok) owned.free(gpa);
    owned.offsets64 = gpa.alloc(i64, n + 1) catch return .out_of_memory;
    var data: std.ArrayList(u8) = .empty;
    defer data.deinit(gpa);
    var raw: std.ArrayList(u8) = .empty;
    defer raw.deinit(gpa);
    var null_count: usize = 0;
    const base: usize = @intCast(in.arr_offset);
    owned.offsets64[0] = 0;
    for (0..n) |i| {
        const k = base + i;
        const is_null = if (in.validity) |bm| (bm[k >> 3] >> @intCast(k & 7)) & 1 == 0 else false;
        if (is_null) {
            null_count += 1;
        } else {
            const ab = listBounds(in, k);
            const a: usize = @intCast(ab[0]);
            const b: usize = @intCast(ab[1]);
            if (b > a and in.values == null) return .invalid_argument;
            raw.clearRetainingCapacity();
            const ids = if (b > a) in.values.?[a..b] else &[_]u32{};
            if (appendBytes(gpa, v, ids, &raw) catch return .out_of_memory) |bad| {
                out.err_row = @intCast(i);
                out.err_offset = @intCast(bad);
                setErr(out, "row {d}: unknown token id {d} at position {d}", .{ i, @as(i32, @bitCast(ids[bad])), bad });
                return .unknown_token;
            }
            if (utf8.firstInvalid(raw.items) == null) {
                data.appendSlice(gpa, raw.items) catch return .out_of_memory;
            } else {
                data.ensureUnusedCapacity(gpa, utf8.repairBound(raw.items.len)) catch return .out_of_memory;
                const m = utf8.repair(raw.items, data.unusedCapacitySlice());
                data.items.len += m;
            }
        }
        owned.offsets64[i + 1] = @intCast(data.items.len);
    }
    if (null_count > 0) {
        owned.validity = gpa.alloc(u8, (n + 7) / 8) catch return .out_of_memory;
        @memset(owned.validity, 0);
        const bm = in.validity.?;
        for (0..n) |i| {
            const k = base + i;
            if ((bm[k >> 3] >> @intCast(k & 7)) & 1 != 0) owned.validity[i >> 3] |= @as(u8, 1) << @intCast(i & 7);
        }
        out.validity = owned.validity.ptr;
    }
    out.null_count = @intCast(null_count);
    owned.bytes = data.toOwnedSlice(gpa) catch return .out_of_memory;
    out.data = owned.bytes.ptr;
    out.n_bytes = @intCast(owned.bytes.len);
    out.offsets = owned.offsets64.ptr;
    out.handle = owned;
    ok = true;
    return .ok;
}
