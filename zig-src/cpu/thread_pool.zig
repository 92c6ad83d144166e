//! A persistent fork-join pool: `threads - 1` workers plus the calling thread run the tasks of one
//! job at a time. Workers are created once (airllm_init) because spawning threads per op would
//! cost more than a decode-sized op itself; between jobs they spin briefly (ops arrive back to back
//! during a forward pass) and then sleep on a futex.
const std = @import("std");
const Futex = std.Thread.Futex;
const Atomic = std.atomic.Value;

pub const max_threads = 256;

/// A job: `run(ctx, i)` for every task index i < n_tasks, in any order, on any thread.
const Job = struct {
    run: *const fn (ctx: *const anyopaque, task: usize) void,
    ctx: *const anyopaque,
    n_tasks: usize,
};

// Spins of `pause` (tens of cycles each) before a worker goes to sleep: long enough to bridge
// the gap between two ops of one forward pass, short enough not to burn a core when idle.
const spin_limit = 2000;

var workers: [max_threads]std.Thread = undefined;
var n_workers: usize = 0;
/// Serialises jobs: the pool runs one at a time (callers may come from several JS threads).
var dispatch_lock: std.Thread.Mutex = .{};

var job: Job = undefined;
/// Bumped once per job; workers wait for it to change.
var generation = Atomic(u32).init(0);
var next_task = Atomic(usize).init(0);
/// Workers that have not yet finished the current job; the caller waits for 0 so that `job`
/// is never overwritten while a worker may still read it.
var active = Atomic(u32).init(0);
var sleepers = Atomic(u32).init(0);
var stopping = Atomic(bool).init(false);

/// Threads that take part in a job (workers + the caller). Always >= 1.
pub fn concurrency() usize {
    return n_workers + 1;
}

/// Creates the workers. threads == 0 means one per CPU. Calling it again with the same count is a
/// no-op; with another count the pool is rebuilt. Returns the resulting concurrency.
pub fn init(threads: u32) usize {
    const wanted: usize = @min(max_threads, if (threads == 0) std.Thread.getCpuCount() catch 1 else threads);
    dispatch_lock.lock();
    defer dispatch_lock.unlock();
    if (wanted == n_workers + 1) return wanted;
    stopLocked();
    stopping.store(false, .seq_cst);
    var i: usize = 0;
    while (i + 1 < wanted) : (i += 1) {
        workers[i] = std.Thread.spawn(.{ .stack_size = 1 << 20 }, workerMain, .{generation.load(.seq_cst)}) catch break;
        n_workers = i + 1;
    }
    return n_workers + 1;
}

/// Joins the workers; later jobs run on the calling thread alone. Idempotent.
pub fn deinit() void {
    dispatch_lock.lock();
    defer dispatch_lock.unlock();
    stopLocked();
}

fn stopLocked() void {
    if (n_workers == 0) return;
    stopping.store(true, .seq_cst);
    _ = generation.fetchAdd(1, .seq_cst);
    Futex.wake(&generation, std.math.maxInt(u32));
    for (workers[0..n_workers]) |w| w.join();
    n_workers = 0;
}

fn workerMain(start_generation: u32) void {
    var seen = start_generation;
    while (true) {
        var spins: usize = 0;
        while (generation.load(.acquire) == seen) {
            if (spins < spin_limit) {
                std.atomic.spinLoopHint();
                spins += 1;
            } else {
                // Dekker pairing with `run`: either the dispatcher sees us in `sleepers` and
                // wakes us, or our futex wait sees the new generation and returns at once.
                _ = sleepers.fetchAdd(1, .seq_cst);
                Futex.wait(&generation, seen);
                _ = sleepers.fetchSub(1, .seq_cst);
            }
        }
        seen = generation.load(.acquire);
        if (stopping.load(.acquire)) return;
        drain();
        if (active.fetchSub(1, .acq_rel) == 1) Futex.wake(&active, 1);
    }
}

fn drain() void {
    while (true) {
        const i = next_task.fetchAdd(1, .monotonic);
        if (i >= job.n_tasks) return;
        job.run(job.ctx, i);
    }
}

/// Runs func(ctx, i) for i in 0..n_tasks across the pool and returns when all are done.
/// A single task runs inline: no worker is woken for it. Jobs do not nest: func must not call
/// `run` itself.
pub fn run(n_tasks: usize, ctx: anytype, comptime func: fn (@TypeOf(ctx), usize) void) void {
    const Ctx = @TypeOf(ctx);
    const Wrap = struct {
        fn call(p: *const anyopaque, i: usize) void {
            func(@as(Ctx, @ptrCast(@alignCast(p))), i);
        }
    };
    if (n_tasks == 0) return;
    if (n_tasks == 1) return func(ctx, 0);
    dispatch_lock.lock();
    defer dispatch_lock.unlock();
    if (n_workers == 0) {
        for (0..n_tasks) |i| func(ctx, i);
        return;
    }
    job = .{ .run = Wrap.call, .ctx = @ptrCast(ctx), .n_tasks = n_tasks };
    next_task.store(0, .monotonic);
    active.store(@intCast(n_workers), .release);
    _ = generation.fetchAdd(1, .seq_cst);
    if (sleepers.load(.seq_cst) > 0) Futex.wake(&generation, std.math.maxInt(u32));
    drain();
    var spins: usize = 0;
    while (true) {
        const left = active.load(.acquire);
        if (left == 0) break;
        if (spins < spin_limit) {
            std.atomic.spinLoopHint();
            spins += 1;
        } else {
            Futex.wait(&active, left);
        }
    }
}

/// Tasks to use for work whose total cost is `work` units when each task should carry at least
/// `min_work` (below that, waking a thread costs more than it saves). A few tasks per thread
/// let fast threads pick up the slack of threads the OS delays.
pub fn taskCount(work: usize, min_work: usize, per_thread: usize) usize {
    const by_work = @max(1, work / @max(min_work, 1));
    return @min(by_work, concurrency() * per_thread);
}

/// func(ctx, lo, hi) over contiguous chunks covering [0, n): one chunk per thread, chunk
/// boundaries on multiples of `align_to`, and a single inline call when n < 2 * min_per_task.
pub fn forRange(n: usize, min_per_task: usize, align_to: usize, ctx: anytype, comptime func: fn (@TypeOf(ctx), usize, usize) void) void {
    if (n == 0) return;
    const tasks = taskCount(n, min_per_task, 1);
    const chunk = std.mem.alignForward(usize, std.math.divCeil(usize, n, tasks) catch unreachable, align_to);
    const Range = struct {
        ctx: @TypeOf(ctx),
        n: usize,
        chunk: usize,
        fn call(r: *const @This(), i: usize) void {
            const lo = i * r.chunk;
            func(r.ctx, lo, @min(r.n, lo + r.chunk));
        }
    };
    run(std.math.divCeil(usize, n, chunk) catch unreachable, &Range{ .ctx = ctx, .n = n, .chunk = chunk }, Range.call);
}

test "run visits every task exactly once, with and without workers" {
    const Ctx = struct {
        hits: []Atomic(u32),
        fn visit(self: *const @This(), i: usize) void {
            _ = self.hits[i].fetchAdd(1, .monotonic);
        }
    };
    var hits: [1000]Atomic(u32) = undefined;
    for ([_]u32{ 1, 3 }) |threads| {
        _ = init(threads);
        for (&hits) |*h| h.* = Atomic(u32).init(0);
        for (0..50) |_| run(hits.len, &Ctx{ .hits = &hits }, Ctx.visit);
        for (&hits) |*h| try std.testing.expectEqual(@as(u32, 50), h.load(.monotonic));
    }
    deinit();
    deinit();
    try std.testing.expectEqual(@as(usize, 1), concurrency());
}
