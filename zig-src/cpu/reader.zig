//! Native read-ahead: a few threads that `pread` file ranges into host memory. bun:ffi calls are
//! synchronous, so a 100 MB read on the JS thread would stall everything queued behind it; here
//! the JS thread only submits (fd, offset, bytes, dst) and gets a ticket, and waits on the ticket
//! when it actually needs the bytes. Requests are cut into chunks so that several threads share
//! one large read (one thread rarely saturates an NVMe queue or the page-cache copy).
const std = @import("std");

/// Requests in flight at once (submitted and not yet waited on); a ticket's slot is ticket % this.
pub const max_requests = 256;
/// Bytes one thread reads in one go: large enough to amortise the syscall, small enough that
/// several threads split a layer-sized request.
pub const chunk_bytes = 4 << 20;

pub const pending: i32 = -2;
pub const unknown_ticket: i32 = -1;
/// errno reported for a range that runs past the end of the file.
const EIO: i32 = 5;

const Request = struct {
    ticket: u64 = 0,
    fd: i32 = -1,
    offset: u64 = 0,
    bytes: u64 = 0,
    dst: usize = 0,
    /// Chunks handed to threads so far.
    next_chunk: u64 = 0,
    chunks: u64 = 0,
    /// Chunks not yet finished; the request is done at 0.
    unfinished: u64 = 0,
    /// First errno seen (0 = ok).
    status: i32 = 0,
};

pub const Reader = struct {
    lock: std.Thread.Mutex = .{},
    work: std.Thread.Condition = .{},
    done: std.Thread.Condition = .{},
    requests: [max_requests]Request = [_]Request{.{}} ** max_requests,
    /// Next ticket to hand out (tickets start at 1; 0 means "slot free").
    next_ticket: u64 = 1,
    /// Oldest ticket that may still have chunks to hand out.
    head: u64 = 1,
    stopping: bool = false,
    threads: [16]std.Thread = undefined,
    n_threads: usize = 0,
    /// For profiling: bytes read, and the wall time during which at least one chunk was being
    /// read (so bytes / active_ns is the achieved disk bandwidth, however many threads read).
    bytes_read: u64 = 0,
    active_ns: u64 = 0,
    in_flight: u32 = 0,
    active_since: i128 = 0,

    pub fn create(n: u32) ?*Reader {
        const r = std.heap.c_allocator.create(Reader) catch return null;
        r.* = .{};
        const want = @min(@max(n, 1), r.threads.len);
        while (r.n_threads < want) : (r.n_threads += 1) {
            r.threads[r.n_threads] = std.Thread.spawn(.{ .stack_size = 256 << 10 }, worker, .{r}) catch break;
        }
        if (r.n_threads == 0) {
            std.heap.c_allocator.destroy(r);
            return null;
        }
        return r;
    }

    /// Stops the threads after the chunks already running; requests left unread stay unfinished.
    pub fn destroy(r: *Reader) void {
        r.lock.lock();
        r.stopping = true;
        r.work.broadcast();
        r.lock.unlock();
        for (r.threads[0..r.n_threads]) |t| t.join();
        std.heap.c_allocator.destroy(r);
    }

    /// Queues a read of `bytes` at `offset` of `fd` into `dst`; 0 when max_requests are in flight.
    pub fn submit(r: *Reader, fd: i32, offset: u64, bytes: u64, dst: usize) u64 {
        r.lock.lock();
        defer r.lock.unlock();
        const ticket = r.next_ticket;
        const slot = &r.requests[ticket % max_requests];
        if (slot.ticket != 0) return 0;
        const chunks = (bytes + chunk_bytes - 1) / chunk_bytes;
        slot.* = .{ .ticket = ticket, .fd = fd, .offset = offset, .bytes = bytes, .dst = dst, .chunks = chunks, .unfinished = chunks };
        r.next_ticket += 1;
        if (chunks > 0) r.work.broadcast();
        return ticket;
    }

    fn find(r: *Reader, ticket: u64) ?*Request {
        const slot = &r.requests[ticket % max_requests];
        return if (ticket != 0 and slot.ticket == ticket) slot else null;
    }

    /// Blocks until the ticket's read is done, frees its slot, returns 0 or the errno.
    pub fn wait(r: *Reader, ticket: u64) i32 {
        r.lock.lock();
        defer r.lock.unlock();
        const req = r.find(ticket) orelse return unknown_ticket;
        while (req.unfinished > 0) r.done.wait(&r.lock);
        const status = req.status;
        req.ticket = 0;
        return status;
    }

    /// `pending` while the read runs, else its result (the slot stays taken until `wait`).
    pub fn poll(r: *Reader, ticket: u64) i32 {
        r.lock.lock();
        defer r.lock.unlock();
        const req = r.find(ticket) orelse return unknown_ticket;
        return if (req.unfinished > 0) pending else req.status;
    }

    /// Bytes read so far and the nanoseconds during which reads were running.
    pub fn stats(r: *Reader, out: *[2]u64) void {
        r.lock.lock();
        defer r.lock.unlock();
        out[0] = r.bytes_read;
        out[1] = r.active_ns;
    }

    /// The next chunk to read, under the lock: (request, chunk index).
    fn take(r: *Reader) ?struct { *Request, u64 } {
        while (r.head < r.next_ticket) : (r.head += 1) {
            const req = &r.requests[r.head % max_requests];
            if (req.ticket == r.head and req.next_chunk < req.chunks) {
                req.next_chunk += 1;
                return .{ req, req.next_chunk - 1 };
            }
        }
        return null;
    }

    fn worker(r: *Reader) void {
        r.lock.lock();
        defer r.lock.unlock();
        while (true) {
            if (r.stopping) return;
            const job = r.take() orelse {
                r.work.wait(&r.lock);
                continue;
            };
            const req, const chunk = job;
            const lo = chunk * chunk_bytes;
            const n = @min(chunk_bytes, req.bytes - lo);
            const fd = req.fd;
            const offset = req.offset + lo;
            const dst: [*]u8 = @ptrFromInt(req.dst + lo);
            if (r.in_flight == 0) r.active_since = std.time.nanoTimestamp();
            r.in_flight += 1;
            r.lock.unlock();
            const status = readAll(fd, dst, n, offset);
            r.lock.lock();
            r.in_flight -= 1;
            if (r.in_flight == 0) r.active_ns += @intCast(std.time.nanoTimestamp() - r.active_since);
            r.bytes_read += n;
            if (status != 0 and req.status == 0) req.status = status;
            req.unfinished -= 1;
            if (req.unfinished == 0) r.done.broadcast();
        }
    }
};

/// pread until all `n` bytes are in (short reads happen on pipes and huge requests), retrying EINTR.
fn readAll(fd: i32, dst: [*]u8, n: u64, offset: u64) i32 {
    var got: u64 = 0;
    while (got < n) {
        const rc = std.c.pread64(fd, dst + got, n - got, @intCast(offset + got));
        if (rc < 0) {
            const e = std.posix.errno(rc);
            if (e == .INTR) continue;
            return @intCast(@intFromEnum(e));
        }
        if (rc == 0) return EIO;
        got += @intCast(rc);
    }
    return 0;
}

test "reader reads ranges of a file in chunks, concurrently" {
    const path = "/tmp/airllm-reader-test.bin";
    const size = 3 * chunk_bytes + 12345;
    const data = try std.testing.allocator.alloc(u8, size);
    defer std.testing.allocator.free(data);
    for (data, 0..) |*b, i| b.* = @truncate(i *% 2654435761 >> 7);
    {
        const f = try std.fs.createFileAbsolute(path, .{});
        defer f.close();
        try f.writeAll(data);
    }
    defer std.fs.deleteFileAbsolute(path) catch {};
    const f = try std.fs.openFileAbsolute(path, .{});
    defer f.close();

    const r = Reader.create(3) orelse return error.NoReader;
    defer r.destroy();
    const out = try std.testing.allocator.alloc(u8, size);
    defer std.testing.allocator.free(out);
    const a = r.submit(f.handle, 0, 1000, @intFromPtr(out.ptr));
    const b = r.submit(f.handle, 1000, size - 1000, @intFromPtr(out.ptr) + 1000);
    try std.testing.expectEqual(@as(i32, 0), r.wait(b));
    try std.testing.expect(r.poll(a) == 0 or r.poll(a) == pending);
    try std.testing.expectEqual(@as(i32, 0), r.wait(a));
    try std.testing.expectEqualSlices(u8, data, out);
    try std.testing.expectEqual(unknown_ticket, r.wait(a));
    // Past the end of the file: EIO, not a hang.
    const c = r.submit(f.handle, size - 10, 20, @intFromPtr(out.ptr));
    try std.testing.expectEqual(EIO, r.wait(c));
}
