// WriteQueue: bytes waiting for a stream socket, as a FIFO of chunks that
// one writev(2) sends several of at a time.
//
// Writes are copied in, so the caller's buffer is free as soon as `append`
// returns. Small writes (frames, acks) are coalesced into the tail chunk,
// whose size grows with the queue depth (512 B up to 16 KiB), so a burst of
// small frames costs a few allocations and one writev, not one syscall each.
// A large write gets a chunk of exactly its size (one copy, no regrowth).
// Chunks are freed as soon as they are written, and an empty queue holds no
// memory beyond its three words, which is what keeps an idle connection small.
//
// Ownership: the queue owns its chunk memory. It is a struct without deinit,
// so its owner must call `removeAll()` before dropping it (TCPConnection
// does so when it closes and in deinit). Thread: its owner's loop thread.
#if canImport(Glibc)
import Glibc
#endif

struct WriteQueue {
    /// Most chunks handed to one writev(2) (IOV_MAX is 1024 on Linux; more
    /// than this only lengthens one syscall without saving any).
    static let maxIOVecs = 64
    static let smallChunk = 512
    static let coalesceLimit = 16 * 1024

    private struct Chunk {
        let base: UnsafeMutableRawPointer
        let capacity: Int
        var start: Int
        var end: Int
    }

    private var chunks: [Chunk] = []
    private var head = 0
    /// Bytes queued and not yet written.
    private(set) var count = 0

    var isEmpty: Bool { count == 0 }

    /// Copies `bytes` to the end of the queue.
    mutating func append(_ bytes: UnsafeRawBufferPointer) {
        let n = bytes.count
        guard n > 0, let src = bytes.baseAddress else { return }
        let last = chunks.count - 1
        if last >= head, chunks[last].capacity - chunks[last].end >= n {
            (chunks[last].base + chunks[last].end).copyMemory(from: src, byteCount: n)
            chunks[last].end += n
        } else {
            let cap = n >= Self.coalesceLimit ? n : max(n, min(Self.coalesceLimit, max(Self.smallChunk, 2 * count)))
            let base = UnsafeMutableRawPointer.allocate(byteCount: cap, alignment: 16)
            base.copyMemory(from: src, byteCount: n)
            chunks.append(Chunk(base: base, capacity: cap, start: 0, end: n))
        }
        count += n
    }

    /// One writev(2) of at most `maxIOVecs` chunks and `budget` bytes; the
    /// bytes written are removed from the queue. Returns the result and how
    /// many bytes were offered (a short write means the socket is full).
    mutating func write(to fd: Int32, budget: Int) throws -> (result: IOResult<Int>, offered: Int) {
        let n = min(chunks.count - head, Self.maxIOVecs)
        guard n > 0, budget > 0 else { return (.value(0), 0) }
        let (result, offered): (IOResult<Int>, Int) = try withUnsafeTemporaryAllocation(of: iovec.self, capacity: n) { iov in
            var offered = 0
            var used = 0
            for i in 0..<n {
                let c = chunks[head + i]
                let len = min(c.end - c.start, budget - offered)
                if len <= 0 { break }
                iov[i] = iovec(iov_base: c.base + c.start, iov_len: len)
                offered += len
                used += 1
            }
            return (try Syscalls.writev(fd, iov.baseAddress!, Int32(used)), offered)
        }
        if case .value(let written) = result { removeFirst(written) }
        return (result, offered)
    }

    /// Drops `n` written bytes from the front, freeing finished chunks.
    mutating func removeFirst(_ n: Int) {
        precondition(n >= 0 && n <= count, "WriteQueue.removeFirst(\(n)) of \(count) queued bytes")
        var left = n
        while left > 0 {
            let avail = chunks[head].end - chunks[head].start
            if left >= avail {
                chunks[head].base.deallocate()
                head += 1
                left -= avail
            } else {
                chunks[head].start += left
                left = 0
            }
        }
        count -= n
        if head == chunks.count {
            // Drained: hold nothing while idle (the next burst reallocates).
            chunks = []
            head = 0
        } else if head >= 32 && head * 2 >= chunks.count {
            chunks.removeFirst(head)
            head = 0
        }
    }

    /// Frees everything; returns how many bytes were discarded unsent.
    @discardableResult
    mutating func removeAll() -> Int {
        for i in head..<chunks.count { chunks[i].base.deallocate() }
        let dropped = count
        chunks = []
        head = 0
        count = 0
        return dropped
    }
}
