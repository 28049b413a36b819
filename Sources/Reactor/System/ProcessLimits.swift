// ProcessLimits: the tuning a server does for itself at start.
#if canImport(Glibc)
import Glibc
#endif
import CSystem

public enum ProcessLimits {
    /// Raises the RLIMIT_NOFILE soft limit to the hard limit.
    /// Returns the limits before and after so the caller can log them.
    public static func raiseDescriptorLimit() throws -> (before: UInt64, after: UInt64, hard: UInt64) {
        var rl = rlimit()
        _ = try Syscalls.blocking("getrlimit(RLIMIT_NOFILE)") { getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &rl) }
        let before = UInt64(rl.rlim_cur)
        if rl.rlim_cur < rl.rlim_max {
            rl.rlim_cur = rl.rlim_max
            _ = try Syscalls.blocking("setrlimit(RLIMIT_NOFILE)") { setrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &rl) }
        }
        return (before, UInt64(rl.rlim_cur), UInt64(rl.rlim_max))
    }

    /// The current soft descriptor limit.
    public static func descriptorLimit() -> UInt64 {
        var rl = rlimit()
        getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &rl)
        return UInt64(rl.rlim_cur)
    }

    /// Sets the soft descriptor limit (tests use this to provoke EMFILE).
    public static func setDescriptorLimit(_ soft: UInt64) throws {
        var rl = rlimit()
        getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &rl)
        rl.rlim_cur = rlim_t(soft)
        _ = try Syscalls.blocking("setrlimit(RLIMIT_NOFILE)") { setrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &rl) }
    }

    /// Descriptors open in this process. Since Linux 6.2 `stat` of
    /// /proc/self/fd reports the count as its size (no directory listing,
    /// which costs milliseconds with 10^4 descriptors); older kernels
    /// report 0 there, and the entries are counted instead.
    public static func openDescriptorCount() -> Int {
        var st = stat()
        if stat("/proc/self/fd", &st) == 0 && st.st_size > 0 { return Int(st.st_size) }
        guard let dir = opendir("/proc/self/fd") else { return -1 }
        defer { closedir(dir) }
        var n = 0
        while readdir(dir) != nil { n += 1 }
        return n - 3  // ".", ".." and the directory stream itself
    }

    /// The kernel's listen backlog cap (net.core.somaxconn), or nil if unreadable.
    public static func somaxconn() -> Int? {
        readSmallFile("/proc/sys/net/core/somaxconn").flatMap { Int($0.trimmingSpaces()) }
    }

    /// Resident set size of this process in bytes (from /proc/self/statm);
    /// 0 if unreadable. Status paths call it every interval, so it reads
    /// into a stack buffer and parses bytes: no 64 KiB array through
    /// malloc's large-chunk code, no String.
    public static func residentBytes() -> UInt64 {
        let fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return 0 }
        defer { Glibc.close(fd) }
        // "size resident shared text lib data dt", in pages: ~40 bytes.
        return withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 128) { buf -> UInt64 in
            let n = Glibc.read(fd, buf.baseAddress!, buf.count)
            guard n > 0 else { return 0 }
            return statmResidentPages(UnsafeBufferPointer(rebasing: buf[0..<n])).map { $0 * pageSize } ?? 0
        }
    }

    /// The second field of statm text (resident pages); nil if malformed.
    static func statmResidentPages(_ text: UnsafeBufferPointer<UInt8>) -> UInt64? {
        var field = 0, digits = 0
        var value: UInt64 = 0
        for b in text {
            if b == UInt8(ascii: " ") || b == UInt8(ascii: "\n") {
                if field == 1 { break }
                field += 1
            } else if field == 1 {
                guard b >= UInt8(ascii: "0"), b <= UInt8(ascii: "9"), digits < 19 else { return nil }
                value = value * 10 + UInt64(b - UInt8(ascii: "0"))
                digits += 1
            }
        }
        return digits > 0 ? value : nil
    }

    private static let pageSize = UInt64(sysconf(Int32(_SC_PAGESIZE)))

    /// Bytes of heap in use by malloc (mallinfo2's uordblks), for
    /// footprint figures. 0 under a sanitizer's allocator. Not O(1):
    /// glibc walks every free chunk of every arena's bins for it (measured
    /// here: 23 µs with 3,300 free chunks, 3.3 ms with 33,000, 60 ms with
    /// 133,000) — on a loop, read it through a `HeapGauge`.
    public static func heapBytesInUse() -> Int {
        Int(mallinfo2().uordblks)
    }

    /// User+system CPU time of this process in seconds.
    public static func cpuSeconds() -> Double {
        var ru = rusage()
        getrusage(RUSAGE_SELF.rawValue, &ru)
        return Double(ru.ru_utime.tv_sec) + Double(ru.ru_utime.tv_usec) / 1e6
            + Double(ru.ru_stime.tv_sec) + Double(ru.ru_stime.tv_usec) / 1e6
    }

    /// Reads a small text file in one go (procfs, sysfs); nil on error.
    public static func readSmallFile(_ path: String, max: Int = 65536) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { Glibc.close(fd) }
        var bytes = [UInt8](repeating: 0, count: max)
        var total = 0
        while total < max {
            let n = bytes.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress! + total, max - total) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            total += n
        }
        return String(decoding: bytes[0..<total], as: UTF8.self)
    }
}

/// `heapBytesInUse()` for a loop that reads it on demand (a /metrics
/// scrape): read again at most once per `max(minInterval, costFactor ×
/// the last read's cost)`, the cached figure otherwise — and once a read
/// cost more than `slowCostNanos` (1 ms, an iteration's whole budget), at
/// most once per `slowFactor` × that cost (3 ms: every 5 minutes). A small
/// heap is read at every scrape a second apart; a fragmented one, whose
/// walk makes the scrape the longest iteration of the loop (3–5 ms at
/// 20,000 sessions), is walked rarely and its figure is that old. What one
/// read costs cannot be bounded from outside glibc: `lastCostNanos` says
/// what it was.
///
/// Thread: the loop's thread (one owner).
public final class HeapGauge {
    public var minInterval = 1.0
    public var costFactor = 1000.0
    public var slowCostNanos: UInt64 = 1_000_000
    public var slowFactor = 100_000.0
    public private(set) var bytes = 0
    public private(set) var reads: UInt64 = 0
    public private(set) var lastCostNanos: UInt64 = 0
    private var readAt = -Double.infinity
    private let read: () -> Int

    /// `read` stands in for mallinfo2 in tests.
    public init(read: @escaping () -> Int = ProcessLimits.heapBytesInUse) {
        self.read = read
    }

    /// Seconds until the figure is read again after the last read.
    public var interval: Double {
        let cost = Double(lastCostNanos) / 1e9
        return lastCostNanos > slowCostNanos ? slowFactor * cost : Swift.max(minInterval, costFactor * cost)
    }

    /// The heap figure, read again if the last read is old enough at `now`
    /// (monotonic seconds).
    public func value(now: Double) -> Int {
        if now - readAt >= interval {
            let t0 = Clock.monotonicNanos()
            bytes = read()
            lastCostNanos = Clock.monotonicNanos() &- t0
            readAt = now
            reads &+= 1
        }
        return bytes
    }
}
