// ReplayDriver: `vigil-agent replay FILE` — IPA records from a file, one
// per line as they would arrive in datagrams, through the same
// parse → filter → aggregate → uplink path as live traffic.
//
//   connect ─▶ rules synced ─▶ read the file in slices ─▶ EOF: close the
//   timed windows, then the open one ─▶ every batch acknowledged ─▶ print
//   counts, exit 0
//
// Records with a timestamp (IPA version 2) go to the window of their time
// (IngestPipeline.placeByTimestamp): older than `replay_max_age_ms`, or
// more than `TimePlacement.defaultMaxFutureMs` ahead, they are dropped and
// counted. Closed timed windows go to queue 1; reading waits while it is
// half full, and at the end the held windows close one at a time as it
// has room.
//
// It exits non-zero, naming the reason, when a whole round of collectors
// fails (unreachable, refused, rejected key), or when the collector stops
// acknowledging. The file is read `sliceBytes` per loop iteration so the
// session keeps being served, and reading waits while queue 2 is more than
// half full (raw event forwarding), so a large file is not dropped.
//
// Thread: loop thread (the runtime's). Uses the runtime; the runtime knows
// nothing of it (the command line puts the two together).
import IPAPipeline
#if canImport(Glibc)
import Glibc
#endif
import Reactor

/// Drives one replay on the runtime's loop. Loop thread only.
public final class ReplayDriver {
    public static let sliceBytes = 256 * 1024

    public enum ExitCode {
        public static let ok: Int32 = 0
        public static let unreadable: Int32 = 4
        public static let unreachable: Int32 = 3
    }

    public let runtime: AgentRuntime
    public let path: String
    /// Where the summary goes (stdout); the failure reason goes to stderr.
    public var output: (String) -> Void = { print($0) }
    public private(set) var lines: UInt64 = 0
    public private(set) var failure: String?

    private enum Phase { case connecting, reading, closing, flushing, done }
    private var phase = Phase.connecting
    private var fd: Int32 = -1
    /// Bytes read but not yet fed; `pending` is where feeding resumes.
    private var buffer: [UInt8] = []
    private var pending = 0
    /// Inside a line longer than the parser accepts: skip to its end.
    private var skippingLongLine = false
    private var readTimer: TimerWatcher!
    private var stallTimer: TimerWatcher!
    private var lastProgress = Clock.monotonic()
    private var slice: UnsafeMutableRawBufferPointer

    public init(runtime: AgentRuntime, path: String) {
        self.runtime = runtime
        self.path = path
        slice = .allocate(byteCount: ReplayDriver.sliceBytes, alignment: 16)
    }

    deinit {
        if fd >= 0 { Syscalls.close(fd) }
        slice.deallocate()
        readTimer?.stop()
        stallTimer?.stop()
    }

    /// Opens the file (throws its error before anything connects), then
    /// starts the runtime.
    public func start() throws {
        fd = try Syscalls.open(path, O_RDONLY)
        readTimer = TimerWatcher(loop: runtime.loop) { [unowned self] _ in
            if self.phase == .closing { self.closeTimedWindows() } else { self.readSlice() }
        }
        stallTimer = TimerWatcher(loop: runtime.loop) { [unowned self] _ in self.checkStall() }
        runtime.onEvent = { [unowned self] event in self.handle(event) }
        let runtime = self.runtime
        runtime.pipeline.placeByTimestamp(TimePlacement(
            maxAgeMs: Int64(runtime.settings.replayMaxAgeMs),
            nowMs: { [unowned runtime] in runtime.collectorNowMs },
            offsetMs: { [unowned runtime] in runtime.uplink.clockOffsetMs })) { [unowned runtime] aggregates in
            for a in aggregates { runtime.uplink.enqueue(.aggregate(a), priority: true) }
        }
        try runtime.start()
    }

    private func handle(_ event: AgentRuntime.Event) {
        switch event {
        case .patternsSynced:
            if phase == .connecting {
                phase = .reading
                readTimer.start(after: 0)
            }
        case .acknowledged:
            lastProgress = Clock.monotonic()
            checkDone()
        case .disconnected(let reason, let roundFailed):
            if roundFailed && phase != .done { fail("no collector reachable: \(reason)") }
        case .established:
            lastProgress = Clock.monotonic()
        }
    }

    /// One tick: feed complete lines from the buffer (as many as queue 2
    /// has room for when raw events are forwarded), reading the next slice
    /// once the buffer holds no complete line.
    private func readSlice() {
        guard phase == .reading else { return }
        var budget = Int.max
        if runtime.settings.forwardRawEvents {
            // Each matched record becomes a raw event in queue 2: feed no
            // more lines than it has room for, keeping it at most half full.
            budget = runtime.settings.uplink.queue2Size / 2 - runtime.uplink.queues.queue2.count
            if budget <= 0 {
                readTimer.start(after: 0.002)
                return
            }
        }
        // A line may close a timed window: one aggregate per key into queue
        // 1. Keep room for that, keeping queue 1 at most half full.
        let room1 = runtime.settings.uplink.queue1Size / 2 - runtime.uplink.queues.queue1.count
        if room1 <= 0 {
            readTimer.start(after: 0.002)
            return
        }
        budget = min(budget, max(1, room1 / max(1, runtime.pipeline.aggregator.keyCount)))
        if feedLines(max: budget) {
            readTimer.start(after: 0)
            return
        }
        // No complete line left: keep the partial one, read more.
        if pending > 0 { buffer.removeFirst(pending) } else { buffer.removeAll(keepingCapacity: true) }
        pending = 0
        let n: Int
        do {
            guard case .value(let got) = try Syscalls.read(fd, slice.baseAddress!, slice.count) else {
                readTimer.start(after: 0)
                return
            }
            n = got
        } catch let e as SyscallError {
            fail("cannot read \(path): \(Syscalls.errorName(e.errno))")
            return
        } catch {
            fail("cannot read \(path): \(error)")
            return
        }
        if n == 0 {
            finishFile()
            return
        }
        buffer.append(contentsOf: UnsafeRawBufferPointer(rebasing: slice[0..<n]))
        readTimer.start(after: 0)
    }

    /// Feeds up to `max` complete lines starting at `pending`, in one
    /// ingest call. Returns true when it stopped at `max` (more may be
    /// there), false when no complete line is left. A partial line that
    /// outgrows the parser's limit is fed as one oversize line (the parser
    /// counts it) and the rest of it skipped.
    private func feedLines(max: Int) -> Bool {
        let pipeline = runtime.pipeline
        var stoppedAtMax = false
        var lineCount: UInt64 = 0
        var skipping = skippingLongLine
        let cursorEnd: Int = buffer.withUnsafeBytes { all in
            var fed = 0
            var start = pending
            var cursor = pending
            while true {
                if fed >= max { stoppedAtMax = true; break }
                if skipping {
                    guard let nl = all[cursor...].firstIndex(of: 0x0A) else { cursor = all.count; start = cursor; break }
                    skipping = false
                    lineCount += 1
                    cursor = nl + 1
                    start = cursor
                    continue
                }
                guard let nl = all[cursor...].firstIndex(of: 0x0A) else {
                    if all.count - cursor > IPAParser.maxLineBytes + 1 {
                        if cursor > start { pipeline.ingest(UnsafeRawBufferPointer(rebasing: all[start..<cursor])) }
                        pipeline.ingest(UnsafeRawBufferPointer(rebasing: all[cursor..<(cursor + IPAParser.maxLineBytes + 2)]))
                        skipping = true
                        cursor = all.count
                        start = cursor
                    }
                    break
                }
                cursor = nl + 1
                fed += 1
                lineCount += 1
            }
            if cursor > start { pipeline.ingest(UnsafeRawBufferPointer(rebasing: all[start..<cursor])) }
            return cursor
        }
        skippingLongLine = skipping
        lines += lineCount
        pending = cursorEnd
        return stoppedAtMax
    }

    private func finishFile() {
        if !skippingLongLine && pending < buffer.count {
            lines += 1
            buffer.withUnsafeBytes { runtime.pipeline.ingest(UnsafeRawBufferPointer(rebasing: $0[pending...])) }
        } else if skippingLongLine {
            lines += 1
        }
        buffer = []
        pending = 0
        Syscalls.close(fd)
        fd = -1
        phase = .closing
        closeTimedWindows()
    }

    /// Closes the held timed windows, oldest first, as queue 1 has room
    /// for one window's aggregates; then the open window.
    private func closeTimedWindows() {
        guard phase == .closing else { return }
        let pipeline = runtime.pipeline
        let perWindow = max(1, pipeline.aggregator.keyCount)
        while pipeline.aggregator.timedWindowCount > 0 {
            let room = runtime.settings.uplink.queue1Size - runtime.uplink.queues.queue1.count
            guard room >= perWindow || runtime.uplink.queues.queue1.count == 0 else {
                readTimer.start(after: 0.002)
                return
            }
            pipeline.closeOldestTimedWindow()
        }
        phase = .flushing
        runtime.flushOpenWindow()
        lastProgress = Clock.monotonic()
        stallTimer.start(after: 1, repeat: 1)
        checkDone()
    }

    private func checkDone() {
        guard phase == .flushing, runtime.uplink.isDrained else { return }
        phase = .done
        output(summary)
        runtime.exit(ExitCode.ok)
    }

    /// The collector is connected but stopped acknowledging.
    private func checkStall() {
        guard phase == .flushing else { return }
        let limit = 2 * runtime.settings.uplink.silenceTimeout
        if Clock.monotonic() - lastProgress > limit {
            fail("the collector did not acknowledge \(runtime.uplink.window.count) batch(es) within \(Int(limit)) s")
        }
    }

    private func fail(_ reason: String) {
        guard phase != .done else { return }
        phase = .done
        failure = reason
        output(summary)
        Syscalls.writeMessage(2, "vigil-agent replay: \(reason)\n")
        runtime.exit(ExitCode.unreachable)
    }

    /// The counts, one `key=value` group per line.
    public var summary: String {
        let c = runtime.pipeline.counters
        let d = c.parseDrops
        let q = runtime.uplink.queues
        let w = runtime.uplink.window
        let u = runtime.uplink.counters
        return """
        replay \(path)
        read lines=\(lines) records=\(c.records) matched=\(c.matched)
        dropped bad_version=\(d[.badVersion]) field_count=\(d[.fieldCount]) duration=\(d[.duration]) bad_url=\(d[.badURL]) oversize=\(d[.oversize]) timestamp=\(d[.timestamp]) status=\(d[.status]) error_class=\(d[.errorClass]) too_old=\(d[.tooOld]) future=\(d[.future]) unmatched=\(c.unmatched) excluded=\(c.excluded) queue1=\(q.dropped1) queue2=\(q.dropped2) evicted=\(w.evictedItems)
        sent batches=\(u.batchesSent) items=\(u.itemsSent) resent_batches=\(u.batchesResent)
        acknowledged batches=\(w.acknowledged) items=\(w.acknowledgedItems)
        """
    }
}
