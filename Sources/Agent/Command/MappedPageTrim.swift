// MappedPageTrim: after start-up, gives back the pages of mapped files (the
// agent's code, its libraries' code and read-only data) that start-up
// touched and idle operation does not use.
//
// Why: the idle agent's anonymous memory is under 1 MiB; the rest of its RSS
// is pages of its executable and shared libraries. The kernel maps up to
// 64 KiB around each page fault (fault-around), so code run once at start —
// configuration, the handshake, the first rule install, the dynamic linker's
// symbol lookups — stays mapped in 64 KiB blocks for the life of the process.
// MADV_DONTNEED on a mapping of a file removes this process's page-table
// entries only (madvise(2)): the pages stay in the page cache, and the next
// access is a minor fault that maps them, and their neighbours, again. What
// is resident a moment later is what the agent runs.
//
// Which mappings: file-backed, not writable, with no anonymous pages. A
// private mapping that was ever written (the RELRO region the dynamic linker
// relocates and then makes read-only) holds private copies that
// MADV_DONTNEED would replace with the file's original bytes; smaps'
// `Anonymous: 0 kB` proves there is none, and a read-only mapping cannot
// gain one afterwards. The executable and its libraries are never unmapped,
// so the ranges read here are still the same mappings when madvise runs.
// Writable mappings (.data, .bss, heap, stacks) are not touched. Libraries
// dlopened later (libcurl and its ~30 dependencies, when the first HTTP
// monitor is scheduled) are mapped the same way and never unloaded, so a
// later pass treats them alike: `run` trims again after the first http and
// the first https monitor run (MonitorEngine.onHTTPWarm).
//
// Thread: the loop thread (a timer of `run`, and the engine's onHTTPWarm),
// a few times in the life of the process.
#if canImport(Glibc)
import Glibc
#endif
import Reactor

/// One pass over /proc/self/smaps. Stateless; call from any thread, though
/// the agent calls it once from the loop thread.
public enum MappedPageTrim {
    /// What one pass did.
    public struct Outcome: Equatable, Sendable {
        /// Mappings advised.
        public var mappings = 0
        /// Resident bytes of those mappings before the advice.
        public var residentBytes = 0
        /// madvise calls that failed (a locked mapping: EINVAL), by count.
        public var failures = 0
        /// RSS of the process before and after (statm), bytes.
        public var rssBefore: UInt64 = 0
        public var rssAfter: UInt64 = 0
        /// The ranges advised, for `repeatAdvice`.
        var advised: [Candidate] = []
    }

    /// Bytes of smaps read at most: bounds the time of a pathological map
    /// count (a truncated tail is just not trimmed).
    static let smapsReadLimit = 8 * 1024 * 1024
    /// smaps is read through one buffer of this size, line by line: ~40
    /// mappings of ~1 KiB of text each, over 200 with libcurl loaded, and no
    /// allocation of the whole file (a large one would move glibc's mmap
    /// threshold and stay in the heap).
    static let readChunk = 16 * 1024

    /// A mapping that may be dropped: its range and resident size.
    struct Candidate: Equatable {
        var start: UInt
        var end: UInt
        var residentKiB: Int
    }

    /// Reads /proc/self/smaps and advises MADV_DONTNEED on every candidate.
    public static func run(smapsPath: String = "/proc/self/smaps") -> Outcome {
        var outcome = Outcome()
        outcome.rssBefore = ProcessLimits.residentBytes()
        guard let found = candidates(path: smapsPath) else { return outcome }
        for c in found {
            do {
                try Syscalls.madvise(c.start, Int(c.end - c.start), MADV_DONTNEED)
                outcome.mappings += 1
                outcome.residentBytes += c.residentKiB * 1024
                outcome.advised.append(c)
            } catch {
                outcome.failures += 1
            }
        }
        outcome.rssAfter = ProcessLimits.residentBytes()
        return outcome
    }

    /// Advises the ranges `outcome` advised once more, without reading smaps:
    /// the code that ran since (the caller's log line, the first use of its
    /// string formatting) drops out too, so what faults back is only what
    /// the agent keeps running. Returns the madvise calls that failed.
    @discardableResult
    public static func repeatAdvice(_ outcome: Outcome) -> Int {
        var failures = 0
        for c in outcome.advised {
            do { try Syscalls.madvise(c.start, Int(c.end - c.start), MADV_DONTNEED) } catch { failures += 1 }
        }
        return failures
    }

    /// The mappings of `smaps` (the text of /proc/PID/smaps) that are
    /// file-backed, not writable, resident and hold no anonymous page.
    static func candidates(smaps: String) -> [Candidate] {
        var scan = Scanner()
        for line in smaps.split(separator: "\n", omittingEmptySubsequences: true) { scan.line(line) }
        return scan.result
    }

    /// The same, read from the file at `path` in `readChunk` pieces (at most
    /// `limit` bytes); nil when it cannot be opened.
    static func candidates(path: String, limit: Int = smapsReadLimit, chunk: Int = readChunk) -> [Candidate]? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var scan = Scanner()
        var buffer = [UInt8](repeating: 0, count: chunk)
        var pending: [UInt8] = []   // a line cut by the chunk's end
        var overlong = false        // the line being read is longer than a chunk
        var total = 0
        while total < limit {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress!, min(chunk, limit - total)) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            total += n
            var lineStart = 0
            for i in 0..<n where buffer[i] == UInt8(ascii: "\n") {
                if overlong {
                    overlong = false
                } else if pending.isEmpty {
                    scan.line(Substring(String(decoding: buffer[lineStart..<i], as: UTF8.self)))
                } else {
                    pending += buffer[lineStart..<i]
                    scan.line(Substring(String(decoding: pending, as: UTF8.self)))
                }
                pending.removeAll(keepingCapacity: true)
                lineStart = i + 1
            }
            // No line of smaps is near a chunk long (a path is at most
            // PATH_MAX); a longer one is not a line this scanner uses, so it
            // is skipped whole, and the buffer does not grow.
            if lineStart < n && !overlong {
                if pending.count + (n - lineStart) <= chunk {
                    pending += buffer[lineStart..<n]
                } else {
                    overlong = true
                    pending.removeAll(keepingCapacity: true)
                }
            }
        }
        return scan.result
    }

    /// Reads smaps one line at a time: a mapping's header, then its fields.
    struct Scanner {
        private(set) var result: [Candidate] = []
        private var current: Candidate?
        private var resident = 0

        mutating func line(_ line: Substring) {
            if line.isEmpty { return }
            if let header = MappedPageTrim.mappingHeader(line) {
                current = header
                resident = 0
                return
            }
            guard current != nil else { return }
            if line.hasPrefix("Rss:") {
                resident = MappedPageTrim.kib(line) ?? 0
            } else if line.hasPrefix("Anonymous:") {
                // Anonymous follows Rss in every kernel since 2.6.x; a record
                // without it is never a candidate.
                if MappedPageTrim.kib(line) == 0 && resident > 0, var c = current {
                    c.residentKiB = resident
                    result.append(c)
                }
                current = nil
            }
        }
    }

    /// `start-end perms offset dev inode path` for a file mapping that is
    /// not writable; nil for every other line (fields, anonymous, [vdso]).
    private static func mappingHeader(_ line: Substring) -> Candidate? {
        let fields = line.split(separator: " ", maxSplits: 5, omittingEmptySubsequences: true)
        guard fields.count == 6, let dash = fields[0].firstIndex(of: "-"),
              let start = UInt(fields[0][..<dash], radix: 16),
              let end = UInt(fields[0][fields[0].index(after: dash)...], radix: 16), end > start
        else { return nil }
        let perms = Array(fields[1].utf8)
        let path = fields[5].drop(while: { $0 == " " })
        guard perms.count == 4, perms[1] != UInt8(ascii: "w"), path.hasPrefix("/") else { return nil }
        return Candidate(start: start, end: end, residentKiB: 0)
    }

    /// The number of `Key:   123 kB`.
    private static func kib(_ line: Substring) -> Int? {
        line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first.flatMap { Int($0) }
    }
}
