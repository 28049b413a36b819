// Spool: the agent's disk spool — every DataBatch is appended here (with
// its sequence) before it is sent, batches the memory queues cannot hold
// are written here instead of being dropped, and what is unacknowledged at
// exit is here for the next process. Batches leave only when the collector
// acknowledges them (the acknowledged-up-to marker in `spool.state`) or
// when the spool must make room (`spool_max_bytes`, a full disk: the oldest
// segment goes, counted by cause).
//
// Identity: the collector de-duplicates by (agent id, instance, sequence).
// The spool owns the instance and the sequence counter and keeps them
// across restarts, so a batch re-sent by a later process carries the same
// identity and a second copy is recognised.
//
// Files (docs/AGENT.md, "Spool"): `seg-<first sequence, 16 hex>.vsp`
// segments (SegmentFormat), append-only, at most `segmentBytes` each; and
// `spool.state` ("instance", "acked"), replaced atomically (temp + rename).
//
// Replay reads one record at a time through a cursor (SegmentReader over
// pread), so memory stays bounded whatever the spool's size.
//
// Thread: loop thread (opened on the main thread before the loop runs).
// Blocking file calls on a local disk, one record at a time.
import Reactor
import Wire
#if canImport(Glibc)
import Glibc
#endif

/// The disk spool. Loop thread only; owned by the uplink.
public final class Spool {
    public struct Failure: Error, CustomStringConvertible {
        public let path: String
        public let why: String
        public var description: String { "spool_dir \(path): \(why)" }
    }

    /// Monotonic counters, reported in status and /metrics.
    public struct Counters: Equatable, Sendable {
        /// Batches and bytes appended.
        public var written: UInt64 = 0
        public var writtenBytes: UInt64 = 0
        /// Batches read back to be sent (after a reconnect or a restart).
        public var replayed: UInt64 = 0
        /// Records skipped: checksum or decoding failed, or a torn tail.
        public var corrupt: UInt64 = 0
        /// Batches dropped with the oldest segment to stay within
        /// `spool_max_bytes`, and because the disk was full.
        public var droppedFull: UInt64 = 0
        public var droppedDiskFull: UInt64 = 0
        /// Batches that could not be written at all (degraded: memory only).
        public var unwritten: UInt64 = 0
        public var writeFailures: UInt64 = 0
        public init() {}
    }

    struct Segment {
        var path: String
        var firstSequence: UInt64
        var lastSequence: UInt64
        var records: Int
        var bytes: Int
        var oldestMs: Int64
        /// Read at open: its bad records were counted then.
        var scanned: Bool
    }

    public let settings: SpoolSettings
    public let instance: UInt64
    public private(set) var acknowledged: UInt64
    public private(set) var nextSequence: UInt64
    public private(set) var counters = Counters()
    /// Why writes stopped (memory-only from then on); nil while healthy.
    public private(set) var degraded: String?

    private(set) var segments: [Segment] = []
    private var activeFD: Int32 = -1
    private var dirty = false
    private var stateDirty = false
    private var cursor: SegmentReader<FileSegment>?
    private var cursorSegment: UInt64 = 0
    private var cursorLast: UInt64 = 0

    var statePath: String { settings.directory + "/spool.state" }

    private init(settings: SpoolSettings, instance: UInt64, acknowledged: UInt64) {
        self.settings = settings
        self.instance = instance
        self.acknowledged = acknowledged
        nextSequence = acknowledged + 1
    }

    deinit { if activeFD >= 0 { Syscalls.close(activeFD) } }

    // MARK: - Opening

    /// Creates or opens the spool in `settings.directory`: reads the marker
    /// and every segment (bad records counted, a torn tail of the newest
    /// segment cut off), then writes the marker back — which proves the
    /// directory writable. Throws a Failure naming the directory.
    public static func open(_ settings: SpoolSettings) throws(Failure) -> Spool {
        let dir = settings.directory
        var prefix = dir.hasPrefix("/") ? "/" : ""
        for part in dir.split(separator: "/") {
            prefix += part
            do { _ = try Syscalls.mkdir(prefix, 0o700) } catch {
                let why = (error as? SyscallError).map { Syscalls.errorName($0.errno) } ?? "\(error)"
                throw Failure(path: dir, why: "cannot create \(prefix): \(why)")
            }
            prefix += "/"
        }
        let names: [String]
        do { names = try SpoolFiles.list(dir) } catch {
            throw Failure(path: dir, why: "cannot read it: \(error)")
        }
        var instance: UInt64 = 0, acked: UInt64 = 0
        if let text = SpoolFiles.readSmall(dir + "/spool.state") {
            for line in String(decoding: text, as: UTF8.self).split(separator: "\n") {
                let f = line.split(separator: " ")
                guard f.count == 2 else { continue }
                if f[0] == "instance" { instance = UInt64(f[1], radix: 16) ?? 0 }
                if f[0] == "acked" { acked = UInt64(f[1]) ?? 0 }
            }
        }
        var found: [(UInt64, String)] = []
        for n in names where n.hasPrefix("seg-") && n.hasSuffix(".vsp") {
            if let first = UInt64(n.dropFirst(4).dropLast(4), radix: 16) { found.append((first, n)) }
        }
        found.sort { $0.0 < $1.0 }
        var counters = Counters()
        var segments: [Segment] = []
        for (i, (first, name)) in found.enumerated() {
            let path = dir + "/" + name
            guard let file = try? FileSegment(path: path) else { continue }
            var reader = SegmentReader(file)
            guard let segInstance = reader.instance else {
                Log.warn("spool: segment with a bad header skipped and removed", ["file": path])
                counters.corrupt &+= 1
                SpoolFiles.unlink(path)
                continue
            }
            if instance == 0 { instance = segInstance }
            var seg = Segment(path: path, firstSequence: first, lastSequence: 0, records: 0, bytes: file.size,
                              oldestMs: 0, scanned: true)
            scan: while true {
                switch reader.next() {
                case .batch(let b, _, _):
                    if seg.records == 0 { seg.oldestMs = b.writtenMs }
                    seg.records += 1
                    seg.lastSequence = max(seg.lastSequence, b.sequence)
                case .corrupt(let at, _):
                    counters.corrupt &+= 1
                    Log.warn("spool: corrupt record skipped", ["file": path, "offset": "\(at)"])
                case .tornTail(let at):
                    counters.corrupt &+= 1
                    Log.warn("spool: unreadable tail skipped", ["file": path, "offset": "\(at)", "bytes": "\(seg.bytes - at)"])
                    if i == found.count - 1, let fd = try? Syscalls.open(path, O_WRONLY) {
                        // The newest segment's torn tail (a crash mid-write): cut it off.
                        try? SpoolFiles.truncate(fd, to: at, path)
                        Syscalls.close(fd)
                        seg.bytes = at
                    }
                    break scan
                case .end:
                    break scan
                }
            }
            if seg.records == 0 {
                SpoolFiles.unlink(path)
                continue
            }
            segments.append(seg)
        }
        if instance == 0 {
            var rng = SystemRandomNumberGenerator()
            instance = rng.next() | 1
        }
        let spool = Spool(settings: settings, instance: instance, acknowledged: acked)
        spool.counters = counters
        spool.segments = segments
        spool.nextSequence = max(acked, segments.map(\.lastSequence).max() ?? 0) + 1
        spool.removeAcknowledged()
        do { try spool.writeState() } catch {
            throw Failure(path: dir, why: "not writable: \(error)")
        }
        return spool
    }

    // MARK: - Writing

    /// Appends `items` as the next batch. Returns its sequence (always
    /// assigned, so numbering stays consecutive) and whether it is on disk.
    @discardableResult
    public func append(_ items: [OutboundItem], nowMs: Int64) -> (sequence: UInt64, stored: Bool) {
        let sequence = nextSequence
        nextSequence += 1
        guard degraded == nil else {
            counters.unwritten &+= 1
            return (sequence, false)
        }
        let record = SegmentFormat.record(SpoolBatch(sequence: sequence, writtenMs: nowMs, items: items))
        // Room within spool_max_bytes: the oldest segments go first (never
        // the one being appended to: segments are an eighth of the limit).
        while bytes + record.count > settings.maxBytes && (segments.count > 1 || (activeFD < 0 && !segments.isEmpty)) {
            dropOldest(cause: .full)
        }
        if activeFD < 0 || segments[segments.count - 1].bytes + record.count > settings.segmentBytes {
            guard rotate(first: sequence) else {
                counters.unwritten &+= 1
                return (sequence, false)
            }
        }
        var attempts = 0
        while true {
            let before = segments[segments.count - 1].bytes
            do {
                try record.withUnsafeBytes { try Syscalls.writeAll(activeFD, $0, segments[segments.count - 1].path) }
                if settings.sync == .always { try SpoolFiles.datasync(activeFD, segments[segments.count - 1].path) }
                break
            } catch {
                let errno = (error as? SyscallError)?.errno ?? EIO
                try? SpoolFiles.truncate(activeFD, to: before, segments[segments.count - 1].path)
                if errno == ENOSPC && attempts == 0 && segments.count > 1 {
                    attempts += 1
                    dropOldest(cause: .diskFull)
                    continue
                }
                if errno == ENOSPC {
                    counters.droppedDiskFull &+= 1
                    Log.warn("spool: disk full; batch not spooled", ["sequence": "\(sequence)"])
                } else {
                    degrade("write failed: \(error)")
                    counters.unwritten &+= 1
                }
                return (sequence, false)
            }
        }
        let i = segments.count - 1
        if segments[i].records == 0 { segments[i].oldestMs = nowMs }
        segments[i].records += 1
        segments[i].lastSequence = sequence
        segments[i].bytes += record.count
        counters.written &+= 1
        counters.writtenBytes &+= UInt64(record.count)
        dirty = settings.sync == .interval
        return (sequence, true)
    }

    /// A new segment for batches from `first` on; false (degraded) when it
    /// cannot be created.
    private func rotate(first: UInt64) -> Bool {
        if activeFD >= 0 {
            if dirty, let last = segments.last { try? SpoolFiles.datasync(activeFD, last.path) }
            Syscalls.close(activeFD)
            activeFD = -1
            dirty = false
        }
        let name = String(first, radix: 16)
        let path = settings.directory + "/seg-" + String(repeating: "0", count: max(0, 16 - name.count)) + name + ".vsp"
        do {
            let fd = try Syscalls.open(path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, mode: 0o600)
            let header = SegmentFormat.header(instance: instance)
            do {
                try header.withUnsafeBytes { try Syscalls.writeAll(fd, $0, path) }
            } catch {
                Syscalls.close(fd)
                SpoolFiles.unlink(path)
                throw error
            }
            activeFD = fd
            segments.append(Segment(path: path, firstSequence: first, lastSequence: first == 0 ? 0 : first - 1,
                                    records: 0, bytes: header.count, oldestMs: 0, scanned: false))
            return true
        } catch {
            degrade("cannot create a segment: \(error)")
            return false
        }
    }

    private func degrade(_ why: String) {
        guard degraded == nil else { return }
        degraded = why
        counters.writeFailures &+= 1
        if activeFD >= 0 { Syscalls.close(activeFD); activeFD = -1 }
        Log.error("spool: writes failed; continuing with memory only (queues drop when full)",
                  ["spool_dir": settings.directory, "error": why])
    }

    enum DropCause { case full, diskFull }

    private func dropOldest(cause: DropCause) {
        let s = segments.removeFirst()
        if segments.isEmpty && activeFD >= 0 { Syscalls.close(activeFD); activeFD = -1 }
        let lost = UInt64(Spool.unacknowledged(s, after: acknowledged))
        switch cause {
        case .full: counters.droppedFull &+= lost
        case .diskFull: counters.droppedDiskFull &+= lost
        }
        SpoolFiles.unlink(s.path)
        if cursorSegment == s.firstSequence { cursor = nil }
        Log.warn("spool: oldest segment dropped", [
            "cause": cause == .full ? "spool_max_bytes" : "disk_full", "batches": "\(lost)", "file": s.path,
        ])
    }

    // MARK: - Acknowledgements

    /// The collector holds every batch up to `sequence`: segments wholly
    /// below it are removed; the marker is written at the next `tick`.
    public func acknowledge(upTo sequence: UInt64) {
        guard sequence > acknowledged else { return }
        acknowledged = min(sequence, nextSequence - 1)
        stateDirty = true
        removeAcknowledged()
    }

    /// Numbers from `next` on for new batches (the collector already holds
    /// sequences this spool never recorded, e.g. after its files were lost).
    public func raiseNextSequence(to next: UInt64) {
        if next > nextSequence { nextSequence = next }
    }

    private func removeAcknowledged() {
        while let first = segments.first, first.lastSequence <= acknowledged {
            // The segment being appended to goes only once it is large
            // enough; an idle agent does not create a file per batch.
            if segments.count == 1 && activeFD >= 0 && first.bytes < min(64 << 10, settings.segmentBytes) { break }
            let s = segments.removeFirst()
            if segments.isEmpty && activeFD >= 0 { Syscalls.close(activeFD); activeFD = -1; dirty = false }
            if cursorSegment == s.firstSequence { cursor = nil }
            SpoolFiles.unlink(s.path)
        }
    }

    // MARK: - Replay

    /// Highest sequence on disk (0: none).
    public var lastSequence: UInt64 { segments.last.map(\.lastSequence) ?? 0 }

    /// Whether a batch above `sequence` (and above the acknowledged marker) is on disk.
    public func hasBatch(after sequence: UInt64) -> Bool {
        lastSequence > max(sequence, acknowledged)
    }

    /// The oldest batch on disk with a sequence above `sequence` (and above
    /// the acknowledged marker), read through the cursor; nil when none.
    /// Bad records on the way are skipped (counted if not counted at open).
    public func batch(after sequence: UInt64) -> SpoolBatch? {
        let floor = max(sequence, acknowledged)
        guard lastSequence > floor else { return nil }
        if cursor == nil || cursorLast > floor || !segments.contains(where: { $0.firstSequence == cursorSegment }) {
            cursor = nil
        }
        while true {
            if cursor == nil {
                guard let seg = segments.first(where: { $0.lastSequence > floor }),
                      let file = try? FileSegment(path: seg.path) else { return nil }
                cursor = SegmentReader(file)
                cursorSegment = seg.firstSequence
                cursorLast = 0
            }
            let scanned = segments.first { $0.firstSequence == cursorSegment }?.scanned ?? true
            switch cursor!.next() {
            case .batch(let b, _, _):
                cursorLast = b.sequence
                if b.sequence > floor {
                    counters.replayed &+= 1
                    return b
                }
            case .corrupt(let at, _):
                if !scanned {
                    counters.corrupt &+= 1
                    Log.warn("spool: corrupt record skipped", ["segment": "\(cursorSegment)", "offset": "\(at)"])
                }
            case .tornTail, .end:
                // On to the next segment above this one.
                let current = cursorSegment
                cursor = nil
                guard let next = segments.first(where: { $0.firstSequence > current && $0.lastSequence > floor }),
                      let file = try? FileSegment(path: next.path) else { return nil }
                cursor = SegmentReader(file)
                cursorSegment = next.firstSequence
                cursorLast = 0
            }
        }
    }

    // MARK: - Upkeep

    /// Interval upkeep: fdatasync what was written (policy `interval`) and
    /// write the acknowledged marker if it moved.
    public func tick() {
        if dirty, activeFD >= 0, let last = segments.last {
            do { try SpoolFiles.datasync(activeFD, last.path) } catch { degrade("fdatasync failed: \(error)") }
            dirty = false
        }
        if stateDirty { try? writeState() }
    }

    /// Before exit: everything written is forced to disk, and the marker.
    public func close() {
        if activeFD >= 0, settings.sync != .never, let last = segments.last {
            try? SpoolFiles.datasync(activeFD, last.path)
        }
        dirty = false
        if stateDirty { try? writeState() }
    }

    private func writeState() throws {
        let text = "vigil-spool 1\ninstance \(String(instance, radix: 16))\nacked \(acknowledged)\n"
        try SpoolFiles.replace(statePath, with: Array(text.utf8), sync: settings.sync != .never)
        stateDirty = false
    }

    // MARK: - Figures

    /// Bytes in segment files.
    public var bytes: Int { segments.reduce(0) { $0 + $1.bytes } }

    /// Batches on disk not yet acknowledged (exact except inside the one
    /// segment the marker falls in, which is estimated).
    public var depth: Int { segments.reduce(0) { $0 + Spool.unacknowledged($1, after: acknowledged) } }

    /// Write time of the oldest unacknowledged segment's first batch (wall ms); nil when empty.
    public var oldestMs: Int64? { segments.first { $0.lastSequence > acknowledged && $0.records > 0 }?.oldestMs }

    static func unacknowledged(_ s: Segment, after acked: UInt64) -> Int {
        if s.lastSequence <= acked || s.records == 0 { return 0 }
        if s.firstSequence > acked { return s.records }
        let span = s.lastSequence - s.firstSequence + 1
        return max(1, Int(UInt64(s.records) * (s.lastSequence - acked) / span))
    }
}
