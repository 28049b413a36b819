// ReplayDriver: `vigil-agent replay FILE` — IPA records from a file, one
// per line as they would arrive in datagrams, through the same
// parse → filter → aggregate → uplink path as live traffic.
//
//   connect ─▶ rules synced ─▶ read the file in slices ─▶ EOF: close the
//   open window ─▶ every batch acknowledged ─▶ print counts, exit 0
//
// It exits non-zero, naming the reason, when a whole round of collectors
// fails (unreachable, refused, rejected key), or when the collector stops
// acknowledging. The file is read `sliceBytes` per loop iteration so the
// session keeps being served, and reading waits while queue 2 is more than
// half full (raw event forwarding), so a large file is not dropped.
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

    private enum Phase { case connecting, reading, flushing, done }
    private var phase = Phase.connecting
    private var fd: Int32 = -1
    private var carry: [UInt8] = []
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
        if fd >= 0 { Glibc.close(fd) }
        slice.deallocate()
        readTimer?.stop()
        stallTimer?.stop()
    }

    /// Opens the file (throws its error before anything connects), then
    /// starts the runtime.
    public func start() throws {
        fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw SyscallError(call: "open(\(path))", errno: errno) }
        readTimer = TimerWatcher(loop: runtime.loop) { [unowned self] _ in self.readSlice() }
        stallTimer = TimerWatcher(loop: runtime.loop) { [unowned self] _ in self.checkStall() }
        runtime.onEvent = { [unowned self] event in self.handle(event) }
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

    private func readSlice() {
        guard phase == .reading else { return }
        // Raw events wait in queue 2: let it drain rather than overflow.
        if runtime.settings.forwardRawEvents && runtime.uplink.queues.queue2.count * 2 > runtime.settings.uplink.queue2Size {
            readTimer.start(after: 0.005)
            return
        }
        let n = Glibc.read(fd, slice.baseAddress, slice.count)
        if n < 0 {
            if errno == EINTR || errno == EAGAIN { readTimer.start(after: 0); return }
            fail("cannot read \(path): \(Syscalls.errorName(errno))")
            return
        }
        if n == 0 {
            finishFile()
            return
        }
        feed(UnsafeRawBufferPointer(rebasing: slice[0..<n]))
        readTimer.start(after: 0)
    }

    /// Feeds the complete lines of `chunk` (with the carried partial line).
    private func feed(_ chunk: UnsafeRawBufferPointer) {
        var start = 0
        if skippingLongLine {
            guard let nl = chunk.firstIndex(of: 0x0A) else { return }
            skippingLongLine = false
            lines += 1
            start = nl + 1
        }
        guard let lastNL = chunk[start...].lastIndex(of: 0x0A) else {
            carryOn(UnsafeRawBufferPointer(rebasing: chunk[start...]))
            return
        }
        for b in chunk[start...lastNL] where b == 0x0A { lines += 1 }
        if !carry.isEmpty {
            let firstNL = chunk[start...].firstIndex(of: 0x0A)!
            carry.append(contentsOf: chunk[start...firstNL])
            carry.withUnsafeBytes { runtime.pipeline.ingest($0) }
            carry.removeAll(keepingCapacity: true)
            start = firstNL + 1
        }
        if start <= lastNL {
            runtime.pipeline.ingest(UnsafeRawBufferPointer(rebasing: chunk[start...lastNL]))
        }
        carryOn(UnsafeRawBufferPointer(rebasing: chunk[(lastNL + 1)...]))
    }

    /// Keeps a partial line for the next slice; a line that outgrows the
    /// parser's limit is counted as oversize (by the parser) and skipped.
    private func carryOn(_ tail: UnsafeRawBufferPointer) {
        guard !tail.isEmpty else { return }
        carry.append(contentsOf: tail)
        if carry.count > IPAParser.maxLineBytes + 1 {
            carry.withUnsafeBytes { runtime.pipeline.ingest(UnsafeRawBufferPointer(rebasing: $0[0...IPAParser.maxLineBytes + 1])) }
            carry = []
            skippingLongLine = true
        }
    }

    private func finishFile() {
        if !carry.isEmpty {
            lines += 1
            carry.withUnsafeBytes { runtime.pipeline.ingest($0) }
            carry = []
        } else if skippingLongLine {
            lines += 1
        }
        Glibc.close(fd)
        fd = -1
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
        let line = "vigil-agent replay: \(reason)\n"
        _ = line.withCString { Glibc.write(2, $0, strlen($0)) }
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
        dropped bad_version=\(d[.badVersion]) field_count=\(d[.fieldCount]) duration=\(d[.duration]) bad_url=\(d[.badURL]) oversize=\(d[.oversize]) unmatched=\(c.unmatched) excluded=\(c.excluded) queue1=\(q.dropped1) queue2=\(q.dropped2) evicted=\(w.evictedItems)
        sent batches=\(u.batchesSent) items=\(u.itemsSent) resent_batches=\(u.batchesResent)
        acknowledged batches=\(w.acknowledged) items=\(w.acknowledgedItems)
        """
    }
}
