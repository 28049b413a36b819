// LatencyProbe: `vigil-load e2e` — how long from a datagram leaving the
// instrumentation to its aggregate being durable in the collector.
//
// Sends single-record IPA datagrams to an agent at a steady rate, noting
// each one's wall-clock send time, and polls the collector's database
// (read-only, every few milliseconds) for the probe series' rows. A row
// is durable once a reader sees it (the collector acknowledges only after
// COMMIT). The agent aligns windows to the collector's clock, on the same
// host the same as ours, so datagram t belongs to window
// floor(t / W) × W, and its latency is the moment that window's row was
// first seen minus t. Reported: that (p50/p99/max), and the part after
// the window closed (row seen − window end: flush, send, commit).
#if canImport(Glibc)
import Glibc
#endif
import CollectorStore
import Reactor
import CSystem  // SOCK_* constants: glibc's socket macros may be owned by this C module

/// What `vigil-load e2e` measures.
public struct E2EOptions: Equatable, Sendable {
    /// The agent's IPA port.
    public var udp: SocketAddress
    /// The collector's database.
    public var database: String
    public var rate = 1000.0
    public var duration = 10.0
    /// The agent's aggregation_interval_ms.
    public var windowMs: Int64 = 1000
    /// The filter rule's monitor and check for host e2e.example.com, path /e2e/*.
    public var monitor = "e2e"
    public var check = "probe"
    /// Seconds to wait after the last datagram for its window's row.
    public var settle = 5.0

    public init(udp: SocketAddress, database: String) {
        self.udp = udp
        self.database = database
    }
}

public final class LatencyProbe {
    public let options: E2EOptions

    public init(options: E2EOptions) { self.options = options }

    /// Wall clock in milliseconds, with sub-millisecond precision.
    static func wallMs() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Double(ts.tv_sec) * 1000 + Double(ts.tv_nsec) / 1e6
    }

    public func run() throws -> SummaryFields {
        let o = options
        let db = try SQLiteConnection(path: o.database, readOnly: true)
        defer { db.close() }
        let query = try db.statement("""
            SELECT m.ts_ms, m.count FROM measurements m JOIN series s ON s.id = m.series_id
            WHERE s.monitor = ?1 AND s.check_name = ?2 AND m.ts_ms >= ?3
            """)
        let fd = try Syscalls.socket(o.udp.family, Int32(SOCK_DGRAM.rawValue))
        defer { Syscalls.close(fd) }
        try Syscalls.connectDatagram(fd, o.udp)

        let loop = EventLoop()
        let total = max(1, Int(o.rate * o.duration))
        var sent: [Double] = []
        sent.reserveCapacity(total)
        var sendErrors = 0
        var seen: [Int64: (at: Double, count: Int64)] = [:]
        let start = LatencyProbe.wallMs()
        let firstWindow = Int64(start) / o.windowMs * o.windowMs
        let t0 = Clock.monotonic()
        var lastSendAt = 0.0
        var done = false

        let sender = TimerWatcher(loop: loop) { w in
            let due = min(total, Int((Clock.monotonic() - t0) * o.rate) + 1)
            while sent.count < due {
                let n = sent.count
                let line = "0\tGET\te2e.example.com\t/e2e/\(n)\t\(n % 100).5\n"
                let at = LatencyProbe.wallMs()
                let r = line.withCString { try? Syscalls.send(fd, $0, strlen($0)) }
                if r == nil { sendErrors += 1 }
                sent.append(at)
            }
            if sent.count >= total {
                w.stop()
                lastSendAt = Clock.monotonic()
            }
        }
        sender.start(after: 0, repeat: 0.001)
        let lastWindow = { Int64(sent.last ?? start) / o.windowMs * o.windowMs }
        let poller = TimerWatcher(loop: loop) { _ in
            query.reset()
            query.bind(1, o.monitor)
            query.bind(2, o.check)
            query.bind(3, firstWindow)
            let now = LatencyProbe.wallMs()
            while (try? query.step()) == true {
                let ts = query.int64(0)
                if seen[ts] == nil { seen[ts] = (now, query.int64(1)) }
            }
            if lastSendAt > 0 {
                let complete = seen.keys.contains(lastWindow())
                if complete || Clock.monotonic() - lastSendAt > o.settle { done = true; loop.stop() }
            }
        }
        poller.start(after: 0.005, repeat: 0.005)
        _ = loop.run(until: { done }, timeout: o.duration + o.settle + 10)
        sender.stop()
        poller.stop()

        var e2e = LogHistogram(), after = LogHistogram()
        var unseen = 0
        for t in sent {
            let window = Int64(t) / o.windowMs * o.windowMs
            guard let row = seen[window] else { unseen += 1; continue }
            e2e.record(UInt64(max(0, (row.at - t) * 1000)))   // µs
        }
        for (ts, row) in seen where ts <= lastWindow() {
            after.record(UInt64(max(0, (row.at - Double(ts + o.windowMs)) * 1000)))
        }
        let stored = seen.filter { $0.key <= lastWindow() }.reduce(Int64(0)) { $0 + $1.value.count }
        var s = SummaryFields()
        func ms(_ us: UInt64) -> Double { Double(us) / 1000 }
        s.add("sent", sent.count)
        s.add("send_errors", sendErrors)
        s.add("window_ms", Int(o.windowMs))
        s.add("windows", seen.count)
        s.add("stored_records", UInt64(max(0, stored)))
        s.add("datagrams_without_row", unseen)
        s.add("e2e_p50_ms", ms(e2e.quantile(0.5)), decimals: 1)
        s.add("e2e_p99_ms", ms(e2e.quantile(0.99)), decimals: 1)
        s.add("e2e_max_ms", ms(e2e.max), decimals: 1)
        s.add("after_window_p50_ms", ms(after.quantile(0.5)), decimals: 1)
        s.add("after_window_p99_ms", ms(after.quantile(0.99)), decimals: 1)
        s.add("after_window_max_ms", ms(after.max), decimals: 1)
        return s
    }
}
