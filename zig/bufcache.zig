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
//! shootdowns of the munmaps). Since session 28 a multi-task column of up to 32 MiB writes
//! its ids into one buffer a worker (encode.zig, `arena_max_bytes`), taken from and given
//! back to this cache like a task buffer: 16 threads no longer need 256 mappings a call,
//! more than the 64 slots below hold.
//!
//! Bounds: at most `slots` mappings are kept, and together they keep at most `resident_cap`
//! bytes resident. `release` is told how much of a buffer was written (the rest was never
//! touched, or was given back already); a buffer that does not fit evicts the oldest kept ones,
//! and one bigger than the cap keeps only its first `resident_cap` bytes (the rest goes back
//! with MADV_DONTNEED). A plain `free` counts the whole buffer as written. Mappings are split
//! to the size asked for, so `free` always sees the exact mapping. The lock is tried for a few
//! microseconds (`lockBriefly`): under longer contention the buffer is mapped or unmapped
//! directly, as without the cache.
//!
//! The first version counted every kept buffer as wholly resident and trimmed the newest one
//! when the cap was reached: after the benchmark's cl100k rows, stale buffers filled the
//! budget, so every o200k buffer was given back before reuse (o200k encode 20% below count).
//!
//! A kept mapping handed out again may still hold resident pages past what its new owner
//! writes (an earlier batch wrote more): `take` records how many bytes may be, and `release`
//! counts at least that many, so task buffers need no madvise of their tails (encode.zig's
//! releaseTail, now only for buffers that can hold huge pages). Measured, 2 threads: docs
//! +1.6%, lines +3.2% (the madvise's TLB shootdown reaches every CPU of the process, so this
//! grows with cores); RSS over 240 calls of mixed column sizes and thread counts stays at
//! 237-253 MiB.
//!
//! The output of a multi-task call (its `values`, which the tasks' ids are copied into) has a
//! slot of its own (`out_allocator`): served from the task buffers' cache, the 200k-lines output
//! (12 MB) evicted the task buffers (0.89x). Through malloc, perf put 16% of a 2-thread English
//! column in the page faults of the copy and 4% in brk trims; with the slot, in separate
//! processes (one library each), 2-thread English 3.0-3.3 -> 2.3-2.7 ms a call (1.15-1.4x),
//! code 1.06-1.09x, docs, lines, dictionary and multilingual within noise. bench/ab_builds.py
//! cannot show it: its builds share one malloc, which reuses the other build's freed output.
//!
//! Session 27: fresh mappings of 4 MiB and more (task buffers, the output) start on a 2 MiB
//! boundary and are advised huge pages from their first byte (`mapFresh`). Before, a task
//! buffer's head up to its first 2 MiB boundary took 4 KiB pages, and that head is about what a
//! task writes on two threads; the output of a column too big for `out_cap` was not advised at
//! all. A 40 MB column of the 20k documents (cl100k, the last result still alive, as in a
//! pipeline): 2 threads 867k -> 40k page faults over ~40 calls (perf stat), 267 -> 320 MB/s;
//! in-process A/B 1.09x; one thread unchanged (1 -> 1 k faults a call); bench-sized columns
//! 0.99-1.00x. The 100 MB memory check: output + 41.4 / 16.8 MiB (cl100k / o200k, 2 threads)
//! against + 38.8 / 11.2 before. On 16 threads a task's buffer is under 4 MiB (tasks are 1/16
//! of a thread's share), so only the output changes there.
const std = @import("std");
const hugealloc = @import("hugealloc.zig");

const page = std.heap.page_size_min;
/// Enough for every task buffer of a multi-thread call (tasks are ~1/16 of a thread's share).
const slots = 64;
/// 32 MiB (was 16): a multi-task call recycles its task buffers only when their ids fit it
/// together (encode.zig, CopyCtx.recycle), and with 16 a 20 MB English column on two threads
/// (18 MB of ids) mapped, faulted, zeroed and unmapped all its task buffers on every call:
/// 32 ran it 1.21x faster (20 MB of the 20k documents 1.13x; bench/ab_builds.py --repeat-mb 20
/// --threads 2). The bound on the kept pages is what a process keeps between calls.
pub const resident_cap: usize = 32 << 20;

const Entry = struct { ptr: ?[*]align(page) u8 = null, len: usize = 0, resident: usize = 0, age: u64 = 0 };

var lock: std.atomic.Mutex = .unlocked;

/// The lock, tried for a few microseconds: the critical sections scan 64 entries, and the way
/// around the cache (a fresh mapping and its page faults, or an unmap and its TLB shootdown on
/// every core) costs far more. (With one try only, the tasks of a 16-thread job, which start
/// and end together, mostly went around it.)
fn lockBriefly() bool {
    for (0..4096) |_| {
        if (lock.tryLock()) return true;
        std.atomic.spinLoopHint();
    }
    return false;
}
var cache: [slots]Entry = @splat(.{});
var clock: u64 = 0;

/// Kept mappings handed out again, with how many bytes from their start may still be resident
/// from their earlier use (`stale`): `release` counts at least that much, so a caller need not
/// give back the pages past what it wrote (a madvise and a TLB shootdown per buffer). Slots
/// are filled under `lock` (by `take`) and emptied by the buffer's one owner (`forgetLent`).
const lent_slots = 2 * slots;
var lent_ptr: [lent_slots]std.atomic.Value(usize) = @splat(.init(0));
var lent_stale: [lent_slots]usize = @splat(0);

/// The stale bytes recorded for `p` (0 if none), forgetting the record.
fn forgetLent(p: usize) usize {
    for (&lent_ptr, 0..) |*slot, i| {
        if (slot.load(.acquire) == p) {
            const stale = lent_stale[i];
            slot.store(0, .release);
            return stale;
        }
    }
    return 0;
}

pub const allocator: std.mem.Allocator = .{ .ptr = undefined, .vtable = &vtable };
const vtable: std.mem.Allocator.VTable = .{ .alloc = alloc, .resize = resize, .remap = remap, .free = free };

fn alloc(_: *anyopaque, n: usize, alignment: std.mem.Alignment, ra: usize) ?[*]u8 {
    if (alignment.toByteUnits() <= page and n < std.math.maxInt(usize) - (2 << 20)) {
        const want = std.mem.alignForward(usize, n, page);
        if (take(want)) |p| return p;
    }
    return mapFresh(n, alignment, ra);
}

const huge = hugealloc.huge;
/// Fresh mappings from this size up start on a 2 MiB boundary and ask for huge pages.
pub const huge_min = 4 << 20;

/// A fresh mapping for `n` bytes. From `huge_min` up it starts on a 2 MiB boundary with
/// MADV_HUGEPAGE (`hugealloc.mapAligned`, exactly the page-rounded length, so munmap of it
/// frees it all), so that the encoder's first writes already fill huge pages. An unaligned
/// mapping has up to 2 MiB of 4 KiB pages before its first boundary, which is about what one
/// task of a two-thread call writes (a 40 MB column: 32 tasks of ~1.2 MB of ids each): perf
/// stat counted ~22k page faults a call there against ~1k on one thread.
fn mapFresh(n: usize, alignment: std.mem.Alignment, ra: usize) ?[*]u8 {
    const want = std.mem.alignForward(usize, n, page);
    if (alignment.toByteUnits() <= page and want >= huge_min and n < std.math.maxInt(usize) / 2) return hugealloc.mapAligned(want);
    return std.heap.page_allocator.vtable.alloc(undefined, n, alignment, ra);
}

/// The smallest kept mapping of `want` to `2 * want` bytes, cut to `want`.
fn take(want: usize) ?[*]u8 {
    if (!lockBriefly()) return null;
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
    const stale = @min(e.resident, want);
    if (stale > 0) {
        // Record what may still be resident; with no slot free, a fresh mapping instead.
        const slot = for (&lent_ptr, 0..) |*lp, i| {
            if (lp.load(.acquire) == 0) break i;
        } else {
            lock.unlock();
            return null;
        };
        lent_stale[slot] = stale;
        lent_ptr[slot].store(@intFromPtr(e.ptr.?), .release);
    }
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
    release(memory, memory.len);
}

/// Frees a buffer of this allocator of which only the first `used` bytes were written (pages
/// past them are counted too when an earlier use of the mapping may have left them resident).
pub fn release(memory: []u8, used: usize) void {
    const len = std.mem.alignForward(usize, memory.len, page);
    const stale = forgetLent(@intFromPtr(memory.ptr));
    const res = @max(std.mem.alignForward(usize, used, page), stale);
    if (!keep(@alignCast(memory.ptr), len, @min(len, res))) unmap(memory);
}

/// Frees a buffer of this allocator without keeping it.
pub fn discard(memory: []u8) void {
    _ = forgetLent(@intFromPtr(memory.ptr));
    unmap(memory);
}

fn unmap(memory: []u8) void {
    const p: [*]align(page) u8 = @alignCast(memory.ptr);
    std.posix.munmap(p[0..std.mem.alignForward(usize, memory.len, page)]);
}

/// Keeps the mapping, evicting the oldest kept ones while the slots or the resident budget
/// are short.
fn keep(p: [*]align(page) u8, len: usize, used: usize) bool {
    if (!lockBriefly()) return false;
    const res = @min(used, resident_cap);
    while (true) {
        var total: usize = 0;
        var free_slot: ?usize = null;
        var oldest: ?usize = null;
        for (cache, 0..) |e, i| {
            if (e.ptr == null) {
                free_slot = i;
                continue;
            }
            total += e.resident;
            if (oldest == null or e.age < cache[oldest.?].age) oldest = i;
        }
        if (free_slot) |i| {
            if (total + res <= resident_cap) {
                clock += 1;
                cache[i] = .{ .ptr = p, .len = len, .resident = res, .age = clock };
                break;
            }
        }
        const o = oldest orelse unreachable; // a free slot and no room: something is kept
        std.posix.munmap(cache[o].ptr.?[0..cache[o].len]);
        cache[o] = .{};
    }
    lock.unlock();
    if (res < used) _ = std.os.linux.madvise(@ptrCast(p + res), used - res, std.os.linux.MADV.DONTNEED);
    return true;
}

/// The output (`values`) of the last multi-task call, kept whole for the next call's output
/// (encode.zig): at 2+ threads the tasks' ids are copied into it, and a fresh one cost perf's
/// 2-thread English column 16% in page faults and 4% in the heap's brk trims. One mapping of at
/// most `out_cap` bytes, apart from the task buffers' budget (through it, the 10 MB output of
/// the 200k-lines column evicted the task buffers: 0.89x).
var out_ptr: ?[*]align(page) u8 = null;
var out_len: usize = 0;
pub const out_cap: usize = 32 << 20;

pub const out_allocator: std.mem.Allocator = .{ .ptr = undefined, .vtable = &out_vtable };
const out_vtable: std.mem.Allocator.VTable = .{ .alloc = outAlloc, .resize = resize, .remap = remap, .free = outFree };

fn outAlloc(_: *anyopaque, n: usize, alignment: std.mem.Alignment, ra: usize) ?[*]u8 {
    if (alignment.toByteUnits() <= page and lockBriefly()) {
        const want = std.mem.alignForward(usize, n, page);
        const p = out_ptr;
        const len = out_len;
        out_ptr = null;
        out_len = 0;
        lock.unlock();
        if (p) |q| {
            // The kept one if it fits (cut to size), else it goes now, before the new one.
            if (len >= want and len / 2 <= want) {
                if (len > want) std.posix.munmap(@alignCast(q[want..len]));
                return q;
            }
            std.posix.munmap(q[0..len]);
        }
    }
    return mapFresh(n, alignment, ra);
}

fn outFree(_: *anyopaque, memory: []u8, _: std.mem.Alignment, _: usize) void {
    const len = std.mem.alignForward(usize, memory.len, page);
    const p: [*]align(page) u8 = @alignCast(memory.ptr);
    if (len <= out_cap and lockBriefly()) {
        const old = out_ptr;
        const old_len = out_len;
        out_ptr = p;
        out_len = len;
        lock.unlock();
        if (old) |q| std.posix.munmap(q[0..old_len]);
        return;
    }
    std.posix.munmap(p[0..len]);
}

fn residentTotal() usize {
    var res: usize = 0;
    for (cache) |e| res += e.resident;
    return res;
}

fn emptyCache() void {
    for (&cache) |*e| {
        if (e.ptr) |q| std.posix.munmap(q[0..e.len]);
        e.* = .{};
    }
}

test "bufcache: big fresh mappings start on a 2 MiB boundary and free exactly" {
    defer emptyCache();
    emptyCache();
    for ([_]usize{ huge_min, huge_min + 4096, 9 << 20 }) |n| {
        const b = try allocator.alloc(u8, n);
        try std.testing.expectEqual(@as(usize, 0), @intFromPtr(b.ptr) % huge);
        @memset(b, 1);
        discard(b); // unmapped whole: a later map may reuse the range
        const o = try out_allocator.alloc(u8, n);
        try std.testing.expectEqual(@as(usize, 0), @intFromPtr(o.ptr) % huge);
        @memset(o, 2);
        out_allocator.free(o);
    }
    // Below huge_min: the page allocator as before (no alignment promised).
    const small = try allocator.alloc(u8, huge_min - 4096);
    discard(small);
}

test "bufcache: pages left resident by an earlier use are counted on release" {
    const a = allocator;
    defer emptyCache();
    emptyCache();
    const b1 = try a.alloc(u8, 4 << 20);
    @memset(b1, 3);
    a.free(b1); // kept, 4 MiB resident
    const b2 = try a.alloc(u8, 4 << 20);
    try std.testing.expectEqual(@intFromPtr(b1.ptr), @intFromPtr(b2.ptr));
    release(b2, 4096); // one page written now, but 4 MiB may still be resident
    var found = false;
    for (cache) |e| {
        if (e.ptr != null and @intFromPtr(e.ptr.?) == @intFromPtr(b1.ptr)) {
            found = true;
            try std.testing.expectEqual(@as(usize, 4 << 20), e.resident);
        }
    }
    try std.testing.expect(found);
    for (lent_ptr) |lp| try std.testing.expectEqual(@as(usize, 0), lp.load(.monotonic));
    // Cut to a smaller size: only the part kept can be stale.
    const b3 = try a.alloc(u8, 3 << 20);
    try std.testing.expectEqual(@intFromPtr(b1.ptr), @intFromPtr(b3.ptr));
    discard(b3);
    for (lent_ptr) |lp| try std.testing.expectEqual(@as(usize, 0), lp.load(.monotonic));
    // A fresh mapping counts what was written.
    const f = try a.alloc(u8, 1 << 20);
    release(f, 8192);
    for (cache) |e| {
        if (e.ptr != null and @intFromPtr(e.ptr.?) == @intFromPtr(f.ptr)) try std.testing.expectEqual(@as(usize, 8192), e.resident);
    }
}

test "bufcache: reuse, split, bounded residency, oldest out first" {
    const a = allocator;
    defer emptyCache();
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
    release(b2, 1 << 20);
    // Buffers released with little written count little: twenty 8 MiB buffers with 512 KiB
    // written each fit the budget (and the older small ones stay too).
    var bufs: [20][]u8 = undefined;
    for (&bufs) |*b| b.* = try a.alloc(u8, 8 << 20);
    for (bufs) |b| release(b, 512 << 10);
    try std.testing.expect(residentTotal() <= resident_cap);
    var kept: usize = 0;
    for (cache) |e| kept += @intFromBool(e.ptr != null);
    try std.testing.expectEqual(@as(usize, 22), kept);
    // One written in full past the cap evicts the oldest first and keeps only the cap.
    const big = try a.alloc(u8, 40 << 20);
    @memset(big, 1);
    const newest_before = bufs[19].ptr;
    a.free(big);
    try std.testing.expect(residentTotal() <= resident_cap);
    var found_big = false;
    var found_newest = false;
    for (cache) |e| {
        if (e.ptr == null) continue;
        if (@intFromPtr(e.ptr.?) == @intFromPtr(big.ptr)) {
            found_big = true;
            try std.testing.expectEqual(resident_cap, e.resident);
        }
        if (@intFromPtr(e.ptr.?) == @intFromPtr(newest_before)) found_newest = true;
    }
    try std.testing.expect(found_big);
    try std.testing.expect(!found_newest); // everything older went, to make room
    // 64 slots at most: the oldest are unmapped beyond that.
    var many: [70][]u8 = undefined;
    for (&many) |*b| b.* = try a.alloc(u8, 64 << 10);
    for (many) |b| release(b, 4096);
    kept = 0;
    for (cache) |e| kept += @intFromBool(e.ptr != null);
    try std.testing.expectEqual(@as(usize, slots), kept);
}

test "bufcache: the last output is kept whole for the next one that fits" {
    const a = out_allocator;
    defer {
        if (out_ptr) |q| std.posix.munmap(q[0..out_len]);
        out_ptr = null;
        out_len = 0;
    }
    const o1 = try a.alloc(u32, 300_000);
    @memset(o1, 7);
    a.free(o1);
    // 1x to 2x the size asked for: the same mapping, cut to size.
    const o2 = try a.alloc(u32, 200_000);
    try std.testing.expectEqual(@intFromPtr(o1.ptr), @intFromPtr(o2.ptr));
    try std.testing.expect(out_ptr == null);
    a.free(o2);
    try std.testing.expectEqual(std.mem.alignForward(usize, 800_000, page), out_len);
    // More than twice the size: a new mapping, and the kept one goes.
    const o3 = try a.alloc(u32, 50_000);
    try std.testing.expect(@intFromPtr(o3.ptr) != @intFromPtr(o2.ptr));
    try std.testing.expect(out_ptr == null);
    a.free(o3);
    // Bigger than the cap: the kept one (too small) went when it was asked for, and this one
    // is not kept.
    const big = try a.alloc(u8, out_cap + page);
    try std.testing.expect(out_ptr == null);
    a.free(big);
    try std.testing.expect(out_ptr == null);
}
