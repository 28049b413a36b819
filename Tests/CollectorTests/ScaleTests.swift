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
        let c = try CollectorProcess(config: ["max_handshakes_per_address = \(n)"])
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
}
