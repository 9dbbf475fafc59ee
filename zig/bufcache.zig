//! An allocator for big token buffers that keeps the last few freed ones mapped.
//!
//! Token buffers are mmap'ed (they must go back to the OS when freed, see encode.zig). A fresh
//! mapping costs one page fault per page the encoder writes, plus zeroing, plus the munmap:
//! perf put 10.6% of a one-thread English column (1.9 MB, one 7.5 MB task buffer) in the kernel,
//! and that was most of the gap between `encode_arrow` and `count_tokens_arrow`. A pipeline or
//! a benchmark encodes batch after batch of about the same size, so the buffer freed with one
//! batch's result fits the next batch.
//!
//! At two threads a call has ~32 task buffers, each a fresh mapping: perf put 18.6% of a
//! two-thread encode of the 20k-document column in the kernel (faults, zeroing, TLB
//! shootdowns of the munmaps).
//!
//! Bounds: at most `slots` mappings are kept, and together they keep at most `resident_cap`
//! bytes resident (the part past that is given back with MADV_DONTNEED before it is kept; pages
//! never written were never resident). Mappings are split to the size asked for, so `free`
//! always sees the exact mapping. The lock is only ever tried: under contention the buffer is
//! mapped or unmapped directly, as without the cache.
//!
//! Not for the output of a multi-task call (its `values`, which the tasks' ids are copied into):
//! served from here too, two-thread docs/lines/English ran 6-11% slower than through malloc.
const std = @import("std");

const page = std.heap.page_size_min;
/// Enough for every task buffer of a multi-thread call (tasks are ~1/16 of a thread's share).
const slots = 64;
pub const resident_cap: usize = 16 << 20;

const Entry = struct { ptr: ?[*]align(page) u8 = null, len: usize = 0, resident: usize = 0 };

var lock: std.atomic.Mutex = .unlocked;
var cache: [slots]Entry = @splat(.{});

pub const allocator: std.mem.Allocator = .{ .ptr = undefined, .vtable = &vtable };
const vtable: std.mem.Allocator.VTable = .{ .alloc = alloc, .resize = resize, .remap = remap, .free = free };

fn alloc(_: *anyopaque, n: usize, alignment: std.mem.Alignment, ra: usize) ?[*]u8 {
    if (alignment.toByteUnits() <= page and n < std.math.maxInt(usize) - (2 << 20)) {
        const want = std.mem.alignForward(usize, n, page);
        if (take(want)) |p| return p;
    }
    return std.heap.page_allocator.vtable.alloc(undefined, n, alignment, ra);
}

/// The smallest kept mapping of `want` to `2 * want` bytes, cut to `want`.
fn take(want: usize) ?[*]u8 {
    if (!lock.tryLock()) return null;
    var best: ?usize = null;
    for (cache, 0..) |e, i| {
        // Not one much bigger than asked for: cutting it would waste what was kept for a
        // bigger buffer (several small task buffers and one big one alternate at 2+ threads).
        if (e.ptr != null and e.len >= want and e.len / 2 <= want and (best == null or e.len < cache[best.?].len)) best = i;
    }
    const e = if (best) |i| cache[i] else {
        lock.unlock();
        return null;
    };
    cache[best.?] = .{};
    lock.unlock();
    const p = e.ptr.?;
    if (e.len > want) std.posix.munmap(@alignCast(p[want..e.len]));
    return p;
}

fn resize(_: *anyopaque, memory: []u8, _: std.mem.Alignment, new_len: usize, _: usize) bool {
    // In place only when the mapping keeps its size (free must see the whole mapping).
    return std.mem.alignForward(usize, new_len, page) == std.mem.alignForward(usize, memory.len, page);
}

fn remap(ctx: *anyopaque, memory: []u8, alignment: std.mem.Alignment, new_len: usize, ra: usize) ?[*]u8 {
    return if (resize(ctx, memory, alignment, new_len, ra)) memory.ptr else null;
}

fn free(_: *anyopaque, memory: []u8, _: std.mem.Alignment, _: usize) void {
    const len = std.mem.alignForward(usize, memory.len, page);
    const p: [*]align(page) u8 = @alignCast(memory.ptr);
    if (keep(p, len)) return;
    std.posix.munmap(p[0..len]);
}

/// Keeps the mapping if a slot is free or holds a smaller one (which is then unmapped).
fn keep(p: [*]align(page) u8, len: usize) bool {
    if (!lock.tryLock()) return false;
    var used: usize = 0;
    var victim: usize = 0;
    for (cache, 0..) |e, i| {
        used += e.resident;
        if (e.len < cache[victim].len) victim = i;
    }
    const old = cache[victim];
    if (old.ptr != null and old.len >= len) {
        lock.unlock();
        return false;
    }
    // What may stay resident: the cap less what the other slots keep.
    const room = resident_cap - @min(resident_cap, used - old.resident);
    const res = @min(len, room);
    cache[victim] = .{ .ptr = p, .len = len, .resident = res };
    lock.unlock();
    if (res < len) _ = std.os.linux.madvise(@ptrCast(p + res), len - res, std.os.linux.MADV.DONTNEED);
    if (old.ptr) |q| std.posix.munmap(q[0..old.len]);
    return true;
}

test "bufcache: reuse, split, bounded residency" {
    const a = allocator;
    const b1 = try a.alloc(u8, 3 << 20);
    @memset(b1, 7);
    const addr = @intFromPtr(b1.ptr);
    a.free(b1);
    // A smaller request reuses the kept mapping (cut to size), a much smaller one does not.
    const small = try a.alloc(u8, 1 << 20);
    try std.testing.expect(@intFromPtr(small.ptr) != addr);
    a.free(small);
    const b2 = try a.alloc(u8, 2 << 20);
    try std.testing.expectEqual(addr, @intFromPtr(b2.ptr));
    // A bigger one than any kept gets a fresh mapping.
    const b3 = try a.alloc(u8, 40 << 20);
    @memset(b3, 1);
    a.free(b2);
    a.free(b3);
    var res: usize = 0;
    for (cache) |e| res += e.resident;
    try std.testing.expect(res <= resident_cap);
    // Both kept; take them back out so the test leaves the cache empty.
    const c1 = try a.alloc(u8, 40 << 20);
    const c2 = try a.alloc(u8, 1 << 20);
    try std.testing.expect(c1.len == 40 << 20 and c2.len == 1 << 20);
    a.free(c1);
    a.free(c2);
    for (&cache) |*e| {
        if (e.ptr) |q| std.posix.munmap(q[0..e.len]);
        e.* = .{};
    }
}
