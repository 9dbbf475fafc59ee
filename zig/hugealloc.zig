//! An allocator for big tables that are probed at random: allocations of `min_bytes` and more
//! are mappings of their own, 2 MiB-aligned, with MADV_HUGEPAGE (transparent huge pages where
//! the kernel allows them; plain pages otherwise, with no other change); smaller ones go to
//! malloc. Which of the two a buffer came from follows from its length alone, so `free` and
//! `resize` need no header.
//!
//! Used for the vocabulary's tables (pair table, token table, the long-piece encoder's records,
//! trie and Bloom filter: 20-35 MB per vocabulary): random probes over tens of MB of 4 KiB
//! pages miss the TLB (the second-level TLB maps ~12 MB). Not for the per-thread piece tables
//! that grow within a memory budget: a huge page faults in 2 MiB at once, past what the
//! budget counts.
//! Performance notes: see vocab.zig ("Session 11").
const std = @import("std");
const linux = std.os.linux;

pub const min_bytes: usize = 1 << 20;
pub const huge: usize = 2 << 20;

pub const allocator: std.mem.Allocator = .{ .ptr = undefined, .vtable = &vtable };
const vtable: std.mem.Allocator.VTable = .{ .alloc = alloc, .resize = resize, .remap = remap, .free = free };
const c = std.heap.c_allocator;

inline fn mapped(len: usize) bool {
    return len >= min_bytes;
}

fn mapLen(len: usize) usize {
    return std.mem.alignForward(usize, len, huge);
}

fn alloc(_: *anyopaque, n: usize, alignment: std.mem.Alignment, ra: usize) ?[*]u8 {
    if (!mapped(n)) return c.vtable.alloc(c.ptr, n, alignment, ra);
    if (alignment.toByteUnits() > huge or n > std.math.maxInt(usize) / 2) return null;
    return mapAligned(mapLen(n));
}

/// A mapping of exactly `len` bytes (a multiple of the page, < maxInt / 2) that starts on a
/// 2 MiB boundary, advised MADV_HUGEPAGE: munmap(ptr, len) frees all of it. Also bufcache.zig's
/// big token buffers.
pub fn mapAligned(len: usize) ?[*]u8 {
    // Over-map by one huge page, then trim to a 2 MiB-aligned start and the exact length.
    const rc = linux.mmap(null, len + huge, .{ .READ = true, .WRITE = true }, .{ .TYPE = .PRIVATE, .ANONYMOUS = true }, -1, 0);
    if (linux.errno(rc) != .SUCCESS) return null;
    const start = std.mem.alignForward(usize, rc, huge);
    if (start > rc) _ = linux.munmap(@ptrFromInt(rc), start - rc);
    const tail = rc + len + huge - (start + len);
    if (tail > 0) _ = linux.munmap(@ptrFromInt(start + len), tail);
    _ = linux.madvise(@ptrFromInt(start), len, linux.MADV.HUGEPAGE);
    return @ptrFromInt(start);
}

fn resize(_: *anyopaque, memory: []u8, alignment: std.mem.Alignment, new_len: usize, ra: usize) bool {
    const was = mapped(memory.len);
    if (was != mapped(new_len)) return false;
    if (!was) return c.vtable.resize(c.ptr, memory, alignment, new_len, ra);
    // In place while the mapping keeps its size (free unmaps mapLen(len)).
    return mapLen(new_len) == mapLen(memory.len);
}

fn remap(ctx: *anyopaque, memory: []u8, alignment: std.mem.Alignment, new_len: usize, ra: usize) ?[*]u8 {
    if (!mapped(memory.len) and !mapped(new_len)) return c.vtable.remap(c.ptr, memory, alignment, new_len, ra);
    return if (resize(ctx, memory, alignment, new_len, ra)) memory.ptr else null;
}

fn free(_: *anyopaque, memory: []u8, alignment: std.mem.Alignment, ra: usize) void {
    if (!mapped(memory.len)) return c.vtable.free(c.ptr, memory, alignment, ra);
    _ = linux.munmap(@alignCast(memory.ptr), mapLen(memory.len));
}

test "small and big buffers, resize across the threshold, free" {
    const a = allocator;
    const s = try a.alloc(u8, 100);
    @memset(s, 1);
    const b = try a.alloc(u64, 3 << 17); // 3 MiB
    try std.testing.expect(@intFromPtr(b.ptr) % huge == 0);
    @memset(b, 7);
    // Growing a small buffer past the threshold moves it to a mapping (and back down again).
    const g = try a.realloc(s, 2 << 20);
    try std.testing.expectEqual(@as(u8, 1), g[99]);
    try std.testing.expect(@intFromPtr(g.ptr) % huge == 0);
    const h = try a.realloc(g, 50);
    try std.testing.expectEqual(@as(u8, 1), h[49]);
    // Within one mapping's size: in place.
    try std.testing.expect(a.resize(b, (3 << 17) - 10));
    a.free(b[0 .. (3 << 17) - 10]);
    a.free(h);
}
