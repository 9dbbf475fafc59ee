//! A persistent pool of worker threads for data-parallel jobs.
//!
//! One job runs at a time. The submitting thread takes part in its own job, and workers join
//! until `max_helpers` have. A second caller that finds the pool busy runs its job inline on its
//! own thread instead of waiting, so concurrent Python threads never block one another.
//!
//! Tasks are cut into one contiguous range per thread of the job: each thread takes the tasks of
//! its own range first (the caller range 0, worker i range i), then helps with the others'. A
//! column encoded again goes to the same threads as before, so each thread's piece tables hold
//! the pieces of its own part of the column. (With one shared counter, which thread got which
//! task changed from call to call: each thread's aging window saw only some of its tasks, found a
//! fifth of its entries unused, dropped them and merged them again a few calls later; two
//! threads on the English column rebuilt a table every ~15 calls.) Measured with two threads
//! (bench/ab_builds.py --threads 2, 15 rounds, the build before in the same process), cl100k:
//! English 1.17x, 20k documents 1.15x, multilingual 1.09x, dictionary 1.09x, code 1.07x, 200k
//! lines 1.03x, English count_tokens_arrow 1.10x; o200k: English 1.09x, documents 1.11x, code
//! 1.10x. A job joins only workers 1..max_helpers: after one call on 8 threads had started 7
//! workers, whichever woke first used to join a 2-thread call, each time another thread with
//! tables of its own: 2-thread English 338-356 MB/s against 689-727 now, 20k documents 250
//! against 459 (the same process, alternated).
//! Polling (session 21): a worker that ran a job polls for the next one for 300 us before it
//! sleeps on the condition variable, and the submitting thread polls for the helpers' end
//! before it sleeps; no polling when a job asks for more threads than the process has CPUs.
//! On this 2-core virtual machine a condition-variable wake-up of an idle CPU costs 25-130 us:
//! a microbenchmark of 32 pure-compute tasks on 2 threads took 139 us against 129 on one thread
//! (the helper joined when the caller was done), 85 us polling; 1.3 ms of work 1.855x -> 1.911x.
//! encode_arrow on 2 threads, back-to-back calls on English (one thread 828-837 us a call):
//! 300 KB columns 1.88x -> 1.98x one thread, 1 MB 1.85x -> 1.93x (700 -> 720 MB/s); with
//! gc.collect() between calls (bench/ab_builds.py --threads 2) +-2%: what it saves is the wake
//! of the copy job after an encode job and the caller's own wake at the end.
//! After `fork()` the child must call `forget()` (threads do not survive fork); the old state is
//! leaked on purpose, since its mutexes may be held by threads that no longer exist.
const std = @import("std");
const c = std.c;

pub const Job = struct {
    ctx: *anyopaque,
    run: *const fn (ctx: *anyopaque, task: usize, worker: usize) void,
    n_tasks: usize,
    next_task: std.atomic.Value(usize) = .init(0),
    max_helpers: usize,
    helpers: usize = 0, // guarded by Pool.mu
    /// Ranges the tasks are cut into (`run` sets it for a job on the pool; 0: one counter).
    parts: usize = 0,
    /// Called once the job has run on the pool, while every worker is idle and the pool still
    /// held (nothing else runs on the workers: their thread-local state may be read). Not
    /// called when the job ran on the caller alone.
    after: ?*const fn (ctx: *anyopaque) void = null,
    after_ctx: *anyopaque = undefined,

    /// `home`: the range this thread takes first.
    fn work(j: *Job, worker: usize, home: usize) void {
        if (j.parts <= 1) {
            while (true) {
                const t = j.next_task.fetchAdd(1, .monotonic);
                if (t >= j.n_tasks) return;
                j.run(j.ctx, t, worker);
            }
        }
        for (0..j.parts) |k| {
            const r = (home + k) % j.parts;
            const end = (r + 1) * j.n_tasks / j.parts;
            while (true) {
                const t = ranges[r].next.fetchAdd(1, .monotonic);
                if (t >= end) break;
                j.run(j.ctx, t, worker);
            }
        }
    }
};

pub const max_workers = 256;

/// The next task of each range of the job on the pool (guarded by `submit_mu`: one job at a
/// time uses them). A cache line each.
const Range = struct { next: std.atomic.Value(usize) align(64) = .init(0) };
var ranges: [max_workers]Range = @splat(.{});

const State = struct {
    submit_mu: c.pthread_mutex_t = .{},
    mu: c.pthread_mutex_t = .{},
    cv_work: c.pthread_cond_t = .{},
    cv_done: c.pthread_cond_t = .{},
    generation: u64 = 0,
    job: ?*Job = null,
    inside: usize = 0,
    n_started: usize = 0,
    /// How long a worker that finished a job polls for the next one before it sleeps (ns; set
    /// per job by `run`, 0 when the job has more threads than the process has CPUs).
    spin_ns: u64 = 0,
};

/// Polling window after a job, in microseconds: ARROWTOK_POOL_SPIN_US, default `default_spin_us`
/// (0: sleep at once). Read once, at the first job on the pool.
const default_spin_us = 300;
var spin_cfg: std.atomic.Value(u64) = .init(std.math.maxInt(u64));
var cpu_count: usize = 0;

fn spinWindow(threads: usize) u64 {
    var ns = spin_cfg.load(.acquire);
    if (ns == std.math.maxInt(u64)) {
        var us: u64 = default_spin_us;
        if (c.getenv("ARROWTOK_POOL_SPIN_US")) |e| us = std.fmt.parseInt(u64, std.mem.span(e), 10) catch default_spin_us;
        ns = @as(u64, @min(us, 100_000)) * 1000;
        cpu_count = std.Thread.getCpuCount() catch 1;
        spin_cfg.store(ns, .release);
    }
    // Polling threads would take the CPUs of the job's own threads.
    return if (threads <= cpu_count) ns else 0;
}

/// End of the last call that asked for more than one thread (`noteCallEnd`), in ns.
var last_call_end: std.atomic.Value(u64) = .init(0);

/// Callers with threads > 1 note when they end (whether or not they used the pool).
pub fn noteCallEnd() void {
    last_call_end.store(nowNs(), .monotonic);
}

/// Whether a call on `threads` threads comes back to back: the pool polls for jobs of that
/// size, and the last multi-thread call ended less than the polling window ago. Then a small
/// job is worth splitting: its helpers are polling already, or will be after this one; a
/// sleeping helper's wake-up on every call is not.
pub fn backToBack(threads: usize) bool {
    if (threads <= 1) return false;
    const ns = spinWindow(threads);
    return ns > 0 and nowNs() -% last_call_end.load(.monotonic) < ns;
}

fn nowNs() u64 {
    var ts: c.timespec = undefined;
    _ = c.clock_gettime(.MONOTONIC, &ts);
    return @as(u64, @intCast(ts.sec)) *% 1_000_000_000 +% @as(u64, @intCast(ts.nsec));
}

/// Polls until `done()` or `ns` have passed (a pause between polls, the clock every 64).
inline fn pollFor(ns: u64, ctx: anytype, comptime done: fn (@TypeOf(ctx)) bool) void {
    if (ns == 0) return;
    const t0 = nowNs();
    var k: usize = 1;
    while (!done(ctx)) : (k += 1) {
        std.atomic.spinLoopHint();
        if (k & 63 == 0 and nowNs() -% t0 > ns) return;
    }
}

var state_storage: State = .{};
var state: *State = &state_storage;

/// `seen`: the generation when the worker was spawned, so a job posted while it starts is not missed.
/// `index`: 1 for the first worker spawned, 2 for the next, ... (its range in a job; it joins
/// only jobs with at least `index` helpers).
fn workerMain(s: *State, start_generation: u64, index: usize) void {
    _ = c.pthread_mutex_lock(&s.mu);
    var seen: u64 = start_generation;
    var spin: u64 = 0; // the window after a job this worker ran
    while (true) {
        if (s.generation == seen and spin > 0) {
            // A job often follows soon (the copy after an encode job, the next batch): polling
            // saves the wake-up, which costs 25-130 us on a virtual machine's idle CPU.
            const ns = spin;
            spin = 0;
            _ = c.pthread_mutex_unlock(&s.mu);
            pollFor(ns, .{ s, seen }, struct {
                fn f(a: struct { *State, u64 }) bool {
                    return @atomicLoad(u64, &a[0].generation, .acquire) != a[1];
                }
            }.f);
            _ = c.pthread_mutex_lock(&s.mu);
        }
        while (s.generation == seen) _ = c.pthread_cond_wait(&s.cv_work, &s.mu);
        seen = s.generation;
        const j = s.job orelse continue;
        // Workers 1..max_helpers only: the same OS threads (and their piece tables) serve the
        // same ranges call after call, also after a job on more threads started more workers.
        if (j.helpers >= j.max_helpers or index > j.max_helpers) continue;
        j.helpers += 1;
        const slot = j.helpers;
        spin = s.spin_ns;
        _ = @atomicRmw(usize, &s.inside, .Add, 1, .monotonic);
        _ = c.pthread_mutex_unlock(&s.mu);
        j.work(slot, index);
        _ = c.pthread_mutex_lock(&s.mu);
        if (@atomicRmw(usize, &s.inside, .Sub, 1, .release) == 1) _ = c.pthread_cond_signal(&s.cv_done);
    }
}

/// Runs `job` on up to `threads` threads (the caller included). Workers are started lazily.
/// Slot 0 is the caller; helpers get slots 1..threads-1 (unique within this job).
pub fn run(job: *Job, threads: usize) void {
    const want = @min(@max(threads, 1), max_workers);
    if (want <= 1 or job.n_tasks <= 1) {
        job.max_helpers = 0;
        job.work(0, 0);
        return;
    }
    const s = state;
    if (c.pthread_mutex_trylock(&s.submit_mu) != .SUCCESS) {
        // Another caller holds the pool: do our job alone rather than wait.
        job.max_helpers = 0;
        job.work(0, 0);
        return;
    }
    defer _ = c.pthread_mutex_unlock(&s.submit_mu);
    _ = c.pthread_mutex_lock(&s.mu);
    while (s.n_started < want - 1) {
        const t = std.Thread.spawn(.{ .stack_size = 1 << 20 }, workerMain, .{ s, s.generation, s.n_started + 1 }) catch break;
        t.detach();
        s.n_started += 1;
    }
    // No more helpers than tasks to share (the others would only wake, and poll after).
    job.max_helpers = @min(want - 1, s.n_started, job.n_tasks - 1);
    job.parts = job.max_helpers + 1;
    for (0..job.parts) |r| ranges[r].next.store(r * job.n_tasks / job.parts, .monotonic);
    s.job = job;
    s.spin_ns = spinWindow(want);
    @atomicStore(u64, &s.generation, s.generation +% 1, .release);
    _ = c.pthread_cond_broadcast(&s.cv_work);
    _ = c.pthread_mutex_unlock(&s.mu);

    job.work(0, 0);

    // Every task is taken; helpers may still run theirs. Poll for them before sleeping (the
    // lock below still decides: a helper that joins after this sees no job).
    pollFor(s.spin_ns, s, struct {
        fn f(st: *State) bool {
            return @atomicLoad(usize, &st.inside, .acquire) == 0;
        }
    }.f);
    _ = c.pthread_mutex_lock(&s.mu);
    s.job = null;
    while (s.inside > 0) _ = c.pthread_cond_wait(&s.cv_done, &s.mu);
    _ = c.pthread_mutex_unlock(&s.mu);
    if (job.after) |f| f(job.after_ctx);
}

/// Worker slots a job may see: indices are < this.
pub fn slotCount(threads: usize) usize {
    return @min(@max(threads, 1), max_workers);
}

/// Called in a forked child: start from a fresh state (the old one is leaked).
pub fn forget() void {
    const fresh = std.heap.c_allocator.create(State) catch {
        state_storage = .{};
        state = &state_storage;
        return;
    };
    fresh.* = .{};
    state = fresh;
}

test "every task runs exactly once, whatever the numbers of tasks and threads" {
    const Ctx = struct {
        hits: []std.atomic.Value(u32),
        fn run(p: *anyopaque, t: usize, worker: usize) void {
            const ctx: *@This() = @ptrCast(@alignCast(p));
            std.debug.assert(worker < max_workers);
            _ = ctx.hits[t].fetchAdd(1, .monotonic);
        }
    };
    const gpa = std.testing.allocator;
    for ([_]usize{ 1, 2, 3, 7, 64, 1000 }) |n| {
        for ([_]usize{ 1, 2, 3, 8 }) |threads| {
            const hits = try gpa.alloc(std.atomic.Value(u32), n);
            defer gpa.free(hits);
            for (hits) |*h| h.* = .init(0);
            var ctx: Ctx = .{ .hits = hits };
            var job: Job = .{ .ctx = &ctx, .run = Ctx.run, .n_tasks = n, .max_helpers = 0 };
            run(&job, threads);
            for (hits) |*h| try std.testing.expectEqual(@as(u32, 1), h.load(.monotonic));
        }
    }
}
