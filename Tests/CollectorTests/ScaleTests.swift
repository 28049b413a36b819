// 2,000 concurrent authenticated sessions from one client process (one
// Reactor loop, TCPConnection + ClientSession per session), every one
// served. Prints the figures: handshakes per second and the collector's
// heap per idle session.
import Foundation
import Glibc
import XCTest
import Reactor
import Wire

/// One simulated agent: handshake, then a Ping that must come back.
private final class LoadSession: TCPConnectionHandler {
    let session: ClientSession
    /// Sent after the Welcome, before the Ping.
    var statuses: [Record] = []
    var welcomedAt: Double?
    var ponged = false
    var closeReason: TCPCloseReason?
    var connection: TCPConnection?

    init(key: AccessKey, id: Int) {
        session = ClientSession(accessKey: key, identity: StaticKeyPair.derived(seed: key.secret, label: "scale-\(id)"), hello: Hello(agentID: "load-\(id)", name: "load-\(id)", host: "loadgen",
                                                             version: "test", bootID: "boot", instance: UInt64(id)))
    }

    func connectionDidConnect(_ c: TCPConnection) {
        try! session.start()
        flush(c)
    }

    func connection(_ c: TCPConnection, didRead buffer: ByteBuffer) {
        session.feed(buffer.readable) { event in
            switch event {
            case .welcome:
                welcomedAt = Clock.monotonic()
                for r in statuses { try? session.send(r) }
                try? session.send(.ping(Ping(42)))
                try? session.flush()
            case .record(.pong(let p)) where p.value == 42:
                ponged = true
            default:
                break
            }
        }
        buffer.consume(buffer.readableBytes)
        flush(c)
    }

    func connectionDidClose(_ c: TCPConnection, reason: TCPCloseReason) { closeReason = reason }

    private func flush(_ c: TCPConnection) {
        let out = session.outbound
        guard out.readableBytes > 0 else { return }
        c.write(out.readable)
        out.consume(out.readableBytes)
    }
}

final class ScaleTests: XCTestCase {
    func testTwoThousandConcurrentSessionsAreAllServed() throws {
        let n = 2000
        _ = try? ProcessLimits.raiseDescriptorLimit()
        guard ProcessLimits.descriptorLimit() > UInt64(n + 200) else {
            throw XCTSkip("descriptor limit \(ProcessLimits.descriptorLimit()) too low for \(n) sessions")
        }
        // Every session connects from 127.0.0.1 at once (a reconnect storm
        // from one host): the per-address handshake limit is raised for it.
        // The handshake timeout is raised as well: 2,000 handshakes of a debug
        // build on shared cores under load took 4.9–5.4 s, past the 5 s
        // default; serving them all is what is tested here, not their speed.
        let c = try CollectorProcess(config: ["max_handshakes_per_address = \(n)", "handshake_timeout_ms = 60000"])
        defer { c.stop(); c.removeDirectory() }
        let key = c.createKey(project: "load")
        let heapBefore = c.metric("vigil_heap_bytes") ?? 0
        let rssBefore = c.metric("process_resident_memory_bytes") ?? 0

        let loop = EventLoop()
        let address = try SocketAddress(parsing: "127.0.0.1:\(c.sessionPort)")
        var sessions: [LoadSession] = []
        let t0 = Clock.monotonic()
        for i in 0..<n {
            let s = LoadSession(key: key, id: i)
            s.connection = TCPConnection.connect(loop: loop, to: address, handler: s)
            sessions.append(s)
        }
        let served = loop.run(until: { sessions.allSatisfy { $0.ponged || $0.closeReason != nil } }, timeout: 120)
        XCTAssertTrue(served)
        let welcomed = sessions.compactMap(\.welcomedAt)
        let ponged = sessions.filter(\.ponged).count
        XCTAssertEqual(welcomed.count, n)
        XCTAssertEqual(ponged, n, "closed: \(sessions.compactMap(\.closeReason).prefix(5))")
        let handshakeSeconds = (welcomed.max() ?? t0) - t0

        // All held at once, as the collector counts them.
        XCTAssertTrue(c.eventually(timeout: 30) { c.metric("vigil_sessions{phase=\"established\"}") == Double(n) })
        XCTAssertEqual(c.metric("vigil_agents{project=\"load\",state=\"connecting\"}"), Double(n))
        XCTAssertEqual(c.metric("vigil_handshakes_total"), Double(n))
        XCTAssertEqual(c.metric("vigil_handshake_failures_total{reason=\"overload\"}"), 0)
        // Let registrations commit, then measure the idle footprint.
        XCTAssertTrue(c.eventually(timeout: 30) { c.metric("vigil_store_pending_rows") == 0 })
        loop.run(until: { false }, timeout: 0.5)
        let heapAfter = c.metric("vigil_heap_bytes") ?? 0
        let rssAfter = c.metric("process_resident_memory_bytes") ?? 0
        let lagP99 = (c.metric("vigil_loop_lag_seconds{quantile=\"0.99\"}") ?? 0) * 1000
        let lagMax = (c.metric("vigil_loop_lag_seconds{quantile=\"1\"}") ?? 0) * 1000
        print("""
            scale: \(n) sessions, handshakes in \(String(format: "%.2f", handshakeSeconds)) s \
            (\(Int(Double(n) / max(handshakeSeconds, 0.001))) handshakes/s, client and collector sharing the machine); \
            collector heap per idle session \(Int((heapAfter - heapBefore) / Double(n))) B, \
            RSS per session \(Int((rssAfter - rssBefore) / Double(n))) B; loop lag p99 \(String(format: "%.2f", lagP99)) ms, \
            max \(String(format: "%.1f", lagMax)) ms
            """)

        // Every session ends cleanly and the collector sees them go.
        for s in sessions { s.connection?.close() }
        loop.run(until: { sessions.allSatisfy { $0.closeReason != nil } }, timeout: 30)
        XCTAssertTrue(c.eventually(timeout: 30) { c.metric("vigil_sessions{phase=\"established\"}") == 0 })
        XCTAssertTrue(c.eventually(timeout: 30) {
            (c.api("GET", "/agents?project=load").object["agents"] as? [[String: Any]])?
                .allSatisfy { $0["state"] as? String == "not_visible" } ?? false
        })
    }

    /// 2,000 sessions ending at once (the collector stopped while every
    /// client closes, then continued: their end-of-file events arrive
    /// together): each session's final Status and `not_visible` reach the
    /// store in slices of at most 256 sessions per write and iteration,
    /// nothing lost, every state right.
    func testTwoThousandSessionsEndingAtOnceAreWrittenInSlices() throws {
        let n = 2000
        _ = try? ProcessLimits.raiseDescriptorLimit()
        guard ProcessLimits.descriptorLimit() > UInt64(n + 200) else {
            throw XCTSkip("descriptor limit \(ProcessLimits.descriptorLimit()) too low for \(n) sessions")
        }
        // A long status interval: each session's second Status (the same
        // state, so not written early as a state change is) waits, and its
        // end must store it before `not_visible`.
        let c = try CollectorProcess(config: ["max_handshakes_per_address = \(n)", "status_write_interval_ms = 600000",
                                              "handshake_timeout_ms = 60000"])
        defer { c.stop(); c.removeDirectory() }
        let key = c.createKey(project: "load")
        let loop = EventLoop()
        let address = try SocketAddress(parsing: "127.0.0.1:\(c.sessionPort)")
        let t = UInt64(Date().timeIntervalSince1970 * 1000)
        var sessions: [LoadSession] = []
        for i in 0..<n {
            let s = LoadSession(key: key, id: i)
            s.statuses = [.status(Status(timestampMs: t, state: .stopped)), .status(Status(timestampMs: t + 1, state: .stopped))]
            s.connection = TCPConnection.connect(loop: loop, to: address, handler: s)
            sessions.append(s)
        }
        XCTAssertTrue(loop.run(until: { sessions.allSatisfy { $0.ponged || $0.closeReason != nil } }, timeout: 120))
        XCTAssertEqual(sessions.filter(\.ponged).count, n, "closed: \(sessions.compactMap(\.closeReason).prefix(5))")
        XCTAssertTrue(c.eventually(timeout: 30) { c.metric("vigil_agents{project=\"load\",state=\"stopped\"}") == Double(n) })
        XCTAssertTrue(c.eventually(timeout: 30) { c.metric("vigil_store_pending_rows") == 0 })
        XCTAssertEqual(c.metric("vigil_session_end_writes_total{kind=\"writes\"}"), 0)
        let deferredBefore = c.metric("vigil_session_input_deferred_total") ?? 0

        c.signal(SIGSTOP)
        for s in sessions { s.connection?.close() }
        loop.run(until: { sessions.allSatisfy { $0.closeReason != nil } }, timeout: 30)
        c.signal(SIGCONT)
        XCTAssertTrue(c.eventually(timeout: 60) { c.metric("vigil_session_end_writes_total{kind=\"sessions\"}") == Double(n) })
        let writes = c.metric("vigil_session_end_writes_total{kind=\"writes\"}") ?? 0
        // At most 256 sessions per write: at least 8 writes for 2,000; and
        // batched, not one write per session.
        print("scale: \(n) sessions ending at once: \(Int(writes)) store writes of their final states")
        XCTAssertGreaterThanOrEqual(writes, 8)
        XCTAssertLessThanOrEqual(writes, Double(n / 2), "one store write per slice of sessions, not per session")
        XCTAssertEqual(c.metric("vigil_session_ends_pending"), 0)
        // Their ends of file were read at most 256 per iteration (each read
        // charged against the input budget), the rest waited their turn —
        // how many waited depends on how many epoll hands libev at once
        // (its event array grows from 64), but some always do.
        XCTAssertGreaterThan((c.metric("vigil_session_input_deferred_total") ?? 0) - deferredBefore, 0,
                             "ends of file read without a budget")
        XCTAssertEqual(c.metric("vigil_status_writes_total"), Double(2 * n), "every waiting Status stored at the end")
        XCTAssertEqual(c.metric("vigil_dropped_total{cause=\"state_write_failed\"}"), 0)
        // The store: no agent left in any state but not_visible (a final
        // Status stored after it would have left `stopped`), and each
        // one's last Status stored.
        XCTAssertTrue(c.eventually(timeout: 30) { c.metric("vigil_store_pending_rows") == 0 })
        for state in ["connecting", "stopped", "capturing"] {
            XCTAssertEqual((c.api("GET", "/agents?project=load&state=\(state)&limit=5").object["agents"] as? [Any])?.count, 0, state)
        }
        for i in [0, 999, 1999] {
            let agent = c.api("GET", "/agents/load-\(i)").object
            XCTAssertEqual(agent["state"] as? String, "not_visible")
            XCTAssertEqual(((agent["status"] as? [String: Any])?["agent_ts"] as? NSNumber)?.uint64Value, t + 1,
                           "the waiting Status, stored at the end")
            let states = (c.api("GET", "/agents/load-\(i)/states?limit=10").object["states"] as? [[String: Any]])?
                .compactMap { $0["state"] as? String }
            XCTAssertEqual(states.map(Set.init), ["connecting", "stopped", "not_visible"])
        }
    }
}
