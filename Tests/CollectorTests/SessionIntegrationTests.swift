// The real vigil-collector, driven by a Wire client over loopback: the
// handshake and every way it fails, max_clients, agent states, and
// acknowledgement only after commit — across a kill -9.
import Foundation
import Glibc
import XCTest
import Wire
import CSystem  // MSG_NOSIGNAL: glibc's socket macros may be owned by this C module

final class SessionIntegrationTests: XCTestCase {
    func testHandshakeStatusStatesAndPing() throws {
        let c = try CollectorProcess(config: ["session_idle_timeout_ms = 4000"])
        defer { c.stop(); c.removeDirectory() }
        let key = c.createKey(project: "acme")

        let client = try WireTestClient(port: c.sessionPort, key: key, hello: WireTestClient.hello("agent-1"))
        let welcome = try XCTUnwrap(client.handshake())
        XCTAssertGreaterThan(welcome.sessionID, 0)
        XCTAssertLessThan(abs(Int64(welcome.collectorTimeMs) - Int64(Date().timeIntervalSince1970 * 1000)), 60_000)
        XCTAssertEqual(welcome.limits.idleTimeoutMs, 4000)
        XCTAssertEqual(welcome.limits.pingIntervalMs, 2000)

        // Connected without a status yet: `connecting`.
        XCTAssertTrue(c.eventually { (c.api("GET", "/agents/agent-1").object["state"] as? String) == "connecting" })
        client.send([.interfaces(Interfaces([NetworkInterface(name: "eth0", flags: 1, addresses: ["10.0.0.5/24"])])),
                     .status(Status(timestampMs: 1, state: .capturing, cpuPermille: 12, rssBytes: 4_000_000,
                                    counters: [Counter("ingested", 5)]))])
        XCTAssertTrue(c.eventually { (c.api("GET", "/agents/agent-1").object["state"] as? String) == "capturing" })
        let agent = c.api("GET", "/agents/agent-1").object
        XCTAssertEqual(agent["project"] as? String, "acme")
        XCTAssertEqual(agent["hostname"] as? String, "host-agent-1")
        XCTAssertEqual(agent["connected"] as? Bool, true)
        let status = try XCTUnwrap(agent["status"] as? [String: Any])
        XCTAssertEqual(status["rss_bytes"] as? Int, 4_000_000)
        XCTAssertEqual((status["interfaces"] as? [[String: Any]])?.first?["name"] as? String, "eth0")

        client.send([.status(Status(timestampMs: 2, state: .wrongConfiguration, messages: ["ipa_port: in use"]))])
        XCTAssertTrue(c.eventually { (c.api("GET", "/agents/agent-1").object["state"] as? String) == "wrong_configuration" })
        XCTAssertEqual(c.api("GET", "/agents/agent-1").object["state_messages"] as? [String], ["ipa_port: in use"])

        // Silence: the collector pings at half the idle timeout; the client
        // session answers with a Pong (read() writes it), so it stays up.
        client.read(until: { _ in client.session.counters.pingsAnswered > 0 }, timeout: 10)
        XCTAssertGreaterThan(client.session.counters.pingsAnswered, 0)
        client.read(until: { _ in false }, timeout: 0.5)
        XCTAssertFalse(client.peerClosed)
        XCTAssertGreaterThanOrEqual(c.metric("vigil_pings_sent_total") ?? 0, 1)

        // A Ping from the agent is answered with the same 8 bytes.
        client.send([.ping(Ping(0x1122_3344_5566_7788))])
        XCTAssertNotNil(client.waitForRecord { $0 == .pong(Ping(0x1122_3344_5566_7788)) })

        // Gone: not_visible, with the whole history stored with times.
        close(client.fd)
        XCTAssertTrue(c.eventually { (c.api("GET", "/agents/agent-1").object["state"] as? String) == "not_visible" })
        let states = (c.api("GET", "/agents/agent-1/states").object["states"] as? [[String: Any]] ?? []).compactMap { $0["state"] as? String }
        XCTAssertEqual(Array(states.reversed()), ["connecting", "capturing", "wrong_configuration", "not_visible"])
        XCTAssertEqual(c.metric("vigil_handshakes_total"), 1)
    }

    func testIdleSessionIsClosedAfterTheTimeout() throws {
        let c = try CollectorProcess(config: ["session_idle_timeout_ms = 1000"])
        defer { c.stop(); c.removeDirectory() }
        let key = c.createKey(project: "acme")
        let client = try WireTestClient(port: c.sessionPort, key: key, hello: WireTestClient.hello("quiet"))
        XCTAssertNotNil(client.handshake())
        // Never read: the Ping goes unanswered, the collector closes.
        usleep(2_500_000)
        client.read(until: { _ in false }, timeout: 3)
        XCTAssertTrue(client.peerClosed)
        XCTAssertEqual(client.peerError?.code, .idleTimeout)
        XCTAssertTrue(c.eventually { c.metric("vigil_sessions_closed_total{reason=\"idle_timeout\"}") == 1 })
    }

    func testHandshakeFailuresAreLoggedOncePerSourceAndReason() throws {
        let c = try CollectorProcess()
        defer { c.stop(); c.removeDirectory() }
        _ = c.createKey(project: "acme")
        func attempt(_ project: String) throws {
            let client = try WireTestClient(port: c.sessionPort, key: c.foreignKey(project: project),
                                            hello: WireTestClient.hello("x"))
            XCTAssertNil(client.handshake())
            XCTAssertTrue(client.peerClosed, "nothing is sent: unknown project and wrong key look the same")
            XCTAssertNil(client.peerError)
        }
        try attempt("nope")
        XCTAssertTrue(c.waitForLog("reason=unknown_project"), c.log)
        // The same source within the minute, a different mistake: logged too.
        try attempt("acme")
        XCTAssertTrue(c.waitForLog("reason=wrong_key"), c.log)
        XCTAssertTrue(c.log.contains("project=acme"), c.log)
        // The same source and reason again: counted, not logged.
        try attempt("acme")
        try attempt("nope")
        XCTAssertTrue(c.eventually { c.metric("vigil_handshake_failures_total{reason=\"wrong_key\"}") == 2 })
        XCTAssertTrue(c.eventually { c.metric("vigil_handshake_failures_total{reason=\"unknown_project\"}") == 2 })
        let lines = c.log.split(separator: "\n").filter { $0.contains("handshake failed") }
        XCTAssertEqual(lines.count, 2, lines.joined(separator: "\n"))
    }

    func testEveryHandshakeFailureIsCountedByReason() throws {
        let c = try CollectorProcess(config: ["handshake_timeout_ms = 500"])
        defer { c.stop(); c.removeDirectory() }
        let key = c.createKey(project: "acme")
        func failures(_ reason: String) -> Double? { c.metric("vigil_handshake_failures_total{reason=\"\(reason)\"}") }

        // Unknown project: closed without an answer (no key to encrypt one).
        let unknown = try WireTestClient(port: c.sessionPort, key: c.foreignKey(project: "nope"),
                                         hello: WireTestClient.hello("a"))
        XCTAssertNil(unknown.handshake())
        XCTAssertTrue(unknown.peerClosed)
        XCTAssertTrue(c.eventually { failures("unknown_project") == 1 })

        // Wrong key for a known project: closed without an answer.
        let wrong = try WireTestClient(port: c.sessionPort, key: c.foreignKey(project: "acme"),
                                       hello: WireTestClient.hello("b"))
        XCTAssertNil(wrong.handshake())
        XCTAssertTrue(wrong.peerClosed)
        XCTAssertTrue(c.eventually { failures("wrong_key") == 1 })

        // Malformed preamble: an HTTP request on the session port.
        let stray = WireTestClient.connectTCP(port: c.sessionPort)
        _ = "GET / HTTP/1.1\r\n\r\n".withCString { send(stray, $0, strlen($0), Int32(MSG_NOSIGNAL)) }
        var buf = [UInt8](repeating: 0, count: 16)
        var tv = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(stray, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        XCTAssertEqual(recv(stray, &buf, buf.count, 0), 0, "closed at once")
        close(stray)
        XCTAssertTrue(c.eventually { failures("bad_preamble") == 1 })

        // Handshake timeout: a preamble, then nothing.
        let slow = WireTestClient.connectTCP(port: c.sessionPort)
        let pre = Preamble(projectID: "acme")!.bytes
        _ = pre.withUnsafeBytes { send(slow, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        let t0 = Date()
        setsockopt(slow, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        XCTAssertEqual(recv(slow, &buf, buf.count, 0), 0, "closed by the collector")
        XCTAssertLessThan(Date().timeIntervalSince(t0), 4.5)
        close(slow)
        XCTAssertTrue(c.eventually { failures("handshake_timeout") == 1 })

        // Revoked key: the handshake completes far enough to say so.
        let listed = runCollectorCommand(["keys", "list", "--config", c.configPath])
        XCTAssertFalse(listed.out.contains(key.text.split(separator: ".").last!), "keys list never prints secrets")
        XCTAssertEqual(runCollectorCommand(["keys", "revoke", "1", "--config", c.configPath]).status, 0)
        let revoked = try WireTestClient(port: c.sessionPort, key: key, hello: WireTestClient.hello("c"))
        XCTAssertNil(revoked.handshake())
        XCTAssertEqual(revoked.session.closeReason, .rejected)
        XCTAssertEqual(revoked.peerError?.message, "access key revoked")
        XCTAssertTrue(c.eventually { failures("revoked_key") == 1 })

        XCTAssertEqual(c.metric("vigil_handshakes_total"), 0)
        // Failures are logged at most once a minute per source and reason:
        // five different reasons from 127.0.0.1, so five lines, one each.
        XCTAssertEqual(c.log.components(separatedBy: "handshake failed").count - 1, 5, c.log)
        for reason in ["unknown_project", "wrong_key", "bad_preamble", "handshake_timeout", "revoked_key"] {
            XCTAssertEqual(c.log.components(separatedBy: "handshake failed reason=\(reason) ").count - 1, 1, reason)
        }
    }

    func testMaxClientsRefusesWithCapacityError() throws {
        let c = try CollectorProcess(config: ["max_clients = 2"])
        defer { c.stop(); c.removeDirectory() }
        let key = c.createKey(project: "acme")
        let a = try WireTestClient(port: c.sessionPort, key: key, hello: WireTestClient.hello("a"))
        let b = try WireTestClient(port: c.sessionPort, key: key, hello: nil)   // a probe counts too
        XCTAssertNotNil(a.handshake())
        XCTAssertNotNil(b.handshake())
        let third = try WireTestClient(port: c.sessionPort, key: key, hello: WireTestClient.hello("c"))
        XCTAssertNil(third.handshake())
        XCTAssertEqual(third.session.closeReason, .rejected)
        XCTAssertEqual(third.peerError?.code, .limitExceeded)
        XCTAssertTrue(third.waitForClose())
        XCTAssertTrue(c.eventually { c.metric("vigil_handshake_failures_total{reason=\"capacity\"}") == 1 })

        // A slot frees up: the next one gets in.
        close(a.fd)
        XCTAssertTrue(c.eventually { c.metric("vigil_sessions{phase=\"established\"}") == 1 })
        let fourth = try WireTestClient(port: c.sessionPort, key: key, hello: WireTestClient.hello("d"))
        XCTAssertNotNil(fourth.handshake())
    }

    func testSameAgentReconnectingReplacesItsOldSession() throws {
        let c = try CollectorProcess()
        defer { c.stop(); c.removeDirectory() }
        let key = c.createKey(project: "acme")
        let old = try WireTestClient(port: c.sessionPort, key: key, hello: WireTestClient.hello("twin"))
        XCTAssertNotNil(old.handshake())
        let new = try WireTestClient(port: c.sessionPort, key: key, hello: WireTestClient.hello("twin"))
        XCTAssertNotNil(new.handshake())
        XCTAssertTrue(old.waitForClose())
        XCTAssertEqual(old.peerError?.code, .duplicateAgent)
        new.send([.status(Status(timestampMs: 1, state: .stopped))])
        XCTAssertTrue(c.eventually { (c.api("GET", "/agents/twin").object["state"] as? String) == "stopped" })
        XCTAssertEqual(c.api("GET", "/agents/twin").object["connected"] as? Bool, true)
        // /metrics counts the agent once, in the newer session's state.
        XCTAssertTrue(c.eventually { c.metric("vigil_agents{project=\"acme\",state=\"stopped\"}") == 1 })
        XCTAssertEqual(c.metric("vigil_agents{project=\"acme\",state=\"connecting\"}"), 0)
        XCTAssertEqual(c.metric("vigil_agents{project=\"acme\",state=\"not_visible\"}"), 0)
        close(new.fd)
        XCTAssertTrue(c.eventually { c.metric("vigil_agents{project=\"acme\",state=\"not_visible\"}") == 1 })
        XCTAssertEqual(c.metric("vigil_agents{project=\"acme\",state=\"stopped\"}"), 0)
    }

    /// The agent's view of "between receive and ack": it sent a batch and
    /// has seen no Ack (it never read one) when the collector dies with
    /// kill -9. After a restart it re-sends; the batch is stored once.
    /// Input that arrives from many sessions at once is spread over loop
    /// iterations (the per-iteration read budget), and none of it is lost.
    func testBurstFromManySessionsIsSpreadOverIterationsAndFullyStored() throws {
        let c = try CollectorProcess()
        defer { c.stop(); c.removeDirectory() }
        let key = c.createKey(project: "acme")
        let clients = try (0..<4).map { i -> WireTestClient in
            let client = try WireTestClient(port: c.sessionPort, key: key, hello: WireTestClient.hello("burst-\(i)"))
            XCTAssertNotNil(client.handshake())
            return client
        }
        let batches: UInt64 = 60
        let padding = String(repeating: "x", count: 200)
        // Stopped, the collector reads nothing: every client's ~17 KB is in
        // its socket when it continues, so one iteration sees all four.
        c.signal(SIGSTOP)
        for client in clients {
            var records: [Record] = []
            for seq in 1...batches { records += client.batch(seq, check: "GET /cart/\(seq)/\(padding)") }
            client.send(records)
        }
        c.signal(SIGCONT)
        for client in clients {
            XCTAssertNotNil(client.waitForRecord(timeout: 20) { $0 == .ack(Ack(sequence: batches)) }, "every batch acknowledged")
        }
        XCTAssertGreaterThan(c.metric("vigil_session_input_deferred_total") ?? 0, 0, "some reads waited for a later iteration")
        XCTAssertEqual(c.metric("vigil_rows_stored_total"), Double(4 * batches))
    }

    func testBatchResentAfterKill9IsStoredExactlyOnce() throws {
        var c = try CollectorProcess()
        defer { c.stop(); c.removeDirectory() }
        let key = c.createKey(project: "acme")
        func count(_ c: CollectorProcess) -> Int {
            (c.api("GET", "/measurements?agent=crash&limit=100").object["measurements"] as? [[String: Any]])?.count ?? -1
        }

        // 1: committed but not acknowledged (as far as the agent knows).
        var client = try WireTestClient(port: c.sessionPort, key: key, hello: WireTestClient.hello("crash", boot: "b1"))
        XCTAssertNotNil(client.handshake())
        client.send(client.batch(1))
        XCTAssertTrue(c.eventually { count(c) == 1 }, "committed")
        c.kill9()

        c = try CollectorProcess.restart(c)
        client = try WireTestClient(port: c.sessionPort, key: key, hello: WireTestClient.hello("crash", boot: "b1"))
        XCTAssertNotNil(client.handshake())
        client.send(client.batch(1))
        XCTAssertNotNil(client.waitForRecord { $0 == .ack(Ack(sequence: 1)) })
        XCTAssertEqual(count(c), 1, "the re-sent batch was recognised")
        XCTAssertEqual(c.metric("vigil_batches_total{outcome=\"duplicate\"}"), 1)

        // 2: killed right after sending (committed or not, nobody knows).
        client.send(client.batch(2))
        c.kill9()
        c = try CollectorProcess.restart(c)
        client = try WireTestClient(port: c.sessionPort, key: key, hello: WireTestClient.hello("crash", boot: "b1"))
        XCTAssertNotNil(client.handshake())
        client.send(client.batch(2) + client.batch(3))
        XCTAssertNotNil(client.waitForRecord { $0 == .ack(Ack(sequence: 3)) })
        XCTAssertEqual(count(c), 3, "sequences 1, 2, 3 stored once each")

        // An Ack means committed: whatever was acknowledged is queryable.
        client.send(client.batch(4))
        XCTAssertNotNil(client.waitForRecord { $0 == .ack(Ack(sequence: 4)) })
        XCTAssertEqual(count(c), 4)

        // A new agent process (boot id) numbers from 1 again: not a duplicate.
        let reborn = try WireTestClient(port: c.sessionPort, key: key, hello: WireTestClient.hello("crash", boot: "b2"))
        XCTAssertNotNil(reborn.handshake())
        reborn.send(reborn.batch(1, windowStart: 1_800_000_000_000))
        XCTAssertNotNil(reborn.waitForRecord { $0 == .ack(Ack(sequence: 1)) })
        XCTAssertEqual(count(c), 5)
    }

    func testShutdownAcknowledgesThenClosesAndExitsZero() throws {
        let c = try CollectorProcess()
        defer { c.removeDirectory() }
        let key = c.createKey(project: "acme")
        let client = try WireTestClient(port: c.sessionPort, key: key, hello: WireTestClient.hello("late"))
        XCTAssertNotNil(client.handshake())
        var batch: [Record] = []
        for seq in 1...20 as ClosedRange<UInt64> { batch += client.batch(seq) }
        client.send(batch)
        XCTAssertTrue(c.eventually { c.metric("vigil_batches_total{outcome=\"received\"}") == 20 })
        c.signal(SIGTERM)
        XCTAssertTrue(client.waitForClose(timeout: 15))
        // Everything received before the signal was acknowledged before the close.
        let acks = client.records.compactMap { if case .ack(let a) = $0 { return a.sequence } else { return nil } }
        XCTAssertEqual(acks.last, 20, "\(client.records)")
        XCTAssertEqual(client.peerError?.code, .shuttingDown)
        let exit = try XCTUnwrap(c.waitForExit(timeout: 15))
        XCTAssertEqual(exit.status, 0)
        XCTAssertFalse(exit.signaled)
        XCTAssertTrue(c.log.contains("shutting down signal=SIGTERM"), c.log)
        XCTAssertTrue(c.log.contains("stopped"), c.log)
    }
}
