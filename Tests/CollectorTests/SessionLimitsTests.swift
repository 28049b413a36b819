// The per-session limits, black-box: one authenticated agent that floods
// Status records and ScheduleRequests costs the store one status write per
// interval and one read at a time, so other agents' batches are stored and
// acknowledged as if it were quiet.
import Foundation
import Glibc
import CSystem  // MSG_NOSIGNAL: glibc's socket macros may be owned by this C module
import XCTest
import CSystem  // MSG_* and SOCK_* constants: glibc's socket macros may be owned by this C module
import Wire
import CSystem  // SOCK_* constants: glibc's socket macros may be owned by this C module

final class SessionLimitsTests: XCTestCase {
    /// The descriptor table is sized for max_clients before the first
    /// session: grown later, each doubling in a process with threads waits
    /// for an RCU grace period inside `accept`, on the loop.
    func testTheDescriptorTableIsSizedForMaxClientsAtStart() throws {
        let c = try CollectorProcess(config: ["max_clients = 3000"])
        defer { c.stop(); c.removeDirectory() }
        let status = try String(contentsOfFile: "/proc/\(c.process.processIdentifier)/status", encoding: .utf8)
        let line = try XCTUnwrap(status.split(separator: "\n").first { $0.hasPrefix("FDSize:") })
        let size = Int(line.dropFirst("FDSize:".count).trimmingCharacters(in: .whitespaces)) ?? 0
        XCTAssertGreaterThanOrEqual(size, 3000, String(line))
    }

    func testStatusAndScheduleFloodFromOneSessionDoesNotHurtOtherSessions() throws {
        // A small write queue, so a flood that reached the store would
        // fill it at once and other agents' batches would be refused.
        let c = try CollectorProcess(config: ["store_max_pending_rows = 1000", "status_write_interval_ms = 1000"])
        defer { c.stop(); c.removeDirectory() }
        let key = c.createKey(project: "acme")
        let flooder = try WireTestClient(port: c.sessionPort, key: key, hello: WireTestClient.hello("flooder"))
        XCTAssertNotNil(flooder.handshake())
        let others = try (0..<3).map { i -> WireTestClient in
            let client = try WireTestClient(port: c.sessionPort, key: key, hello: WireTestClient.hello("quiet-\(i)"))
            XCTAssertNotNil(client.handshake())
            return client
        }
        let statuses = 30_000, scheduleRequests = 3_000, batches: UInt64 = 40

        // Stopped, the collector reads nothing: the flood waits in its
        // socket and arrives at once when it continues.
        c.signal(SIGSTOP)
        let flooded = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            var records: [Record] = []
            for i in 0..<statuses {
                records.append(.status(Status(timestampMs: UInt64(i), state: i % 2 == 0 ? .capturing : .stopped)))
                if i % 10 == 0 && i / 10 < scheduleRequests { records.append(.scheduleRequest(ScheduleRequest(haveVersion: 7))) }
            }
            flooder.send(records)
            flooded.signal()
        }
        usleep(200_000)
        c.signal(SIGCONT)
        // The others' batches arrive while the flood is being read.
        for seq in 1...batches {
            for client in others { client.send(client.batch(seq)) }
            usleep(20_000)
        }
        XCTAssertEqual(flooded.wait(timeout: .now() + 60), .success)
        for client in others {
            XCTAssertNotNil(client.waitForRecord(timeout: 30) { $0 == .ack(Ack(sequence: batches)) },
                            "every batch of \(client.session) acknowledged: \(client.records.suffix(3))")
            XCTAssertFalse(client.peerClosed)
        }
        XCTAssertTrue(c.eventually { c.metric("vigil_status_records_total") == Double(statuses) })
        XCTAssertEqual(c.metric("vigil_store_failures_total{cause=\"overloaded\"}"), 0)
        XCTAssertEqual(c.metric("vigil_store_failures_total{cause=\"reads_overloaded\"}"), 0)
        XCTAssertEqual(c.metric("vigil_rows_stored_total"), Double(3 * batches))
        // A handful of status writes (one per second at most, plus the first).
        XCTAssertLessThanOrEqual(c.metric("vigil_status_writes_total") ?? 99, 5)
        XCTAssertGreaterThan(c.metric("vigil_session_limited_total{cause=\"schedule_coalesced\"}") ?? 0, 0)

        // The latest Status wins: the last one sent (stopped) is stored
        // when the interval ends, and the flooder's session still works.
        XCTAssertTrue(c.eventually { (c.api("GET", "/agents/flooder").object["state"] as? String) == "stopped" })
        // Every Status was stored or replaced by a later one.
        XCTAssertTrue(c.eventually {
            (c.metric("vigil_session_limited_total{cause=\"status_replaced\"}") ?? 0) + (c.metric("vigil_status_writes_total") ?? 0)
                == Double(statuses)
        })
        XCTAssertLessThanOrEqual(c.metric("vigil_status_writes_total") ?? 99, 6)
        flooder.clearEvents()
        flooder.send([.scheduleRequest(ScheduleRequest(haveVersion: 0))])
        XCTAssertNotNil(flooder.waitForRecord { if case .scheduleUnchanged = $0 { return true }; return false })
        XCTAssertFalse(flooder.peerClosed)
    }
}

extension SessionLimitsTests {
    /// `count` agents of project "acme" (PREFIX0, PREFIX1, …), each with an
    /// established session to `c`.
    private func establishedClients(_ c: CollectorProcess, count: Int, prefix: String,
                                    file: StaticString = #filePath, line: UInt = #line) throws -> [WireTestClient] {
        let key = c.createKey(project: "acme")
        let clients = try (0..<count).map { i -> WireTestClient in
            let client = try WireTestClient(port: c.sessionPort, key: key, hello: WireTestClient.hello("\(prefix)\(i)"))
            XCTAssertNotNil(client.handshake(), file: file, line: line)
            return client
        }
        XCTAssertTrue(c.eventually { c.metric("vigil_sessions{phase=\"established\"}") == Double(count) }, file: file, line: line)
        return clients
    }

    /// Statuses that become due in one loop iteration go to the store in
    /// one write (PostgreSQL: one statement), and every agent's state and
    /// snapshot are stored as sent.
    func testStatusesDueTogetherAreStoredInOneWrite() throws {
        let c = try CollectorProcess(config: [])
        defer { c.stop(); c.removeDirectory() }
        let clients = try establishedClients(c, count: 20, prefix: "st-")
        let groupsBefore = c.metric("vigil_status_group_writes_total") ?? 0
        // Stopped, the collector reads nothing: the Statuses arrive together.
        c.signal(SIGSTOP)
        for (i, client) in clients.enumerated() {
            client.send([.status(Status(timestampMs: 1_700_000_000_000 + UInt64(i), state: i % 2 == 0 ? .capturing : .stopped,
                                        messages: ["m\(i)"]))])
        }
        usleep(200_000)
        c.signal(SIGCONT)
        XCTAssertTrue(c.eventually { c.metric("vigil_status_writes_total") == 20 })
        XCTAssertTrue(c.eventually { (c.metric("vigil_status_group_writes_total") ?? 0) > groupsBefore })
        usleep(100_000)
        let groups = (c.metric("vigil_status_group_writes_total") ?? 0) - groupsBefore
        XCTAssertGreaterThanOrEqual(groups, 1)
        // A few: the loop's time box (0.5 ms an iteration) may spread the
        // 20 sessions' reads over several iterations on a busy machine.
        XCTAssertLessThanOrEqual(groups, 5, "20 Statuses due together, a few writes at most")
        for i in 0..<20 {
            XCTAssertTrue(c.eventually {
                let a = c.api("GET", "/agents/st-\(i)").object
                return (a["state"] as? String) == (i % 2 == 0 ? "capturing" : "stopped")
            }, "st-\(i): \(c.api("GET", "/agents/st-\(i)").body)")
        }
        XCTAssertEqual(c.metric("vigil_dropped_total{cause=\"state_write_failed\"}") ?? 0, 0)
    }

    /// Statuses that change nothing but the snapshot, arriving a few
    /// milliseconds apart and each read in its own loop iteration, still
    /// share a store write: such a Status waits up to 50 ms for others
    /// (each write is a barrier for the ingest groups), then is stored.
    func testStatusesArrivingApartShareAStoreWrite() throws {
        let c = try CollectorProcess(config: ["status_write_interval_ms = 0"])
        defer { c.stop(); c.removeDirectory() }
        let clients = try establishedClients(c, count: 10, prefix: "sa-")
        // A first Status sets each agent's state: written in its own iteration.
        for (i, client) in clients.enumerated() {
            client.send([.status(Status(timestampMs: 1_700_000_000_000 + UInt64(i), state: .stopped, messages: ["a\(i)"]))])
        }
        XCTAssertTrue(c.eventually { c.metric("vigil_status_writes_total") == 10 })
        for i in 0..<10 {
            XCTAssertTrue(c.eventually { (c.api("GET", "/agents/sa-\(i)").object["state"] as? String) == "stopped" })
        }
        usleep(100_000)
        // Then each sends a snapshot with the same state and messages, 3 ms apart.
        let groupsBefore = c.metric("vigil_status_group_writes_total") ?? 0
        for (i, client) in clients.enumerated() {
            client.send([.status(Status(timestampMs: 1_700_000_001_000 + UInt64(i), state: .stopped, messages: ["a\(i)"],
                                        cpuPermille: 7))])
            usleep(3_000)
        }
        XCTAssertTrue(c.eventually { c.metric("vigil_status_writes_total") == 20 })
        XCTAssertTrue(c.eventually { (c.metric("vigil_status_group_writes_total") ?? 0) > groupsBefore })
        usleep(100_000)
        let groups = (c.metric("vigil_status_group_writes_total") ?? 0) - groupsBefore
        XCTAssertLessThanOrEqual(groups, 3, "10 Statuses 3 ms apart: one write each before they were gathered")
        for i in 0..<10 {
            XCTAssertTrue(c.eventually {
                ((c.api("GET", "/agents/sa-\(i)").object["status"] as? [String: Any])?["cpu_permille"] as? Int) == 7
            }, "sa-\(i): \(c.api("GET", "/agents/sa-\(i)").body)")
        }
    }
}

/// Connections that send a preamble and nothing else, from `source` (any
/// 127/8 address reaches the collector's loopback listener).
private func preambleOnly(_ n: Int, from source: String, port: UInt16) -> [Int32] {
    (0..<n).compactMap { _ in
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var local = sockaddr_in()
        local.sin_family = sa_family_t(AF_INET)
        local.sin_addr.s_addr = inet_addr(source)
        var sa = sockaddr_in()
        sa.sin_family = sa_family_t(AF_INET)
        sa.sin_port = port.bigEndian
        sa.sin_addr.s_addr = inet_addr("127.0.0.1")
        let ok = withUnsafePointer(to: &local) { l in
            l.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        } && withUnsafePointer(to: &sa) { a in
            a.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
        guard ok else { close(fd); return nil }
        let bytes = Preamble(projectID: "acme")!.bytes
        _ = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        return fd
    }
}

final class UnauthenticatedConnectionTests: XCTestCase {
    /// 300 connections from one address that send only the preamble, with
    /// a handshake timeout long enough to hold their slots all test long:
    /// the per-address limit closes most at accept, and a real agent from
    /// another address still gets in.
    func testPreambleOnlyConnectionsFromOneAddressDoNotKeepAnAgentOut() throws {
        let c = try CollectorProcess(config: ["max_clients = 200", "handshake_reserve = 20", "max_handshakes_per_address = 64",
                                              "handshake_timeout_ms = 60000"])
        defer { c.stop(); c.removeDirectory() }
        let key = c.createKey(project: "acme")
        let fds = preambleOnly(300, from: "127.0.0.2", port: c.sessionPort)
        defer { fds.forEach { close($0) } }
        XCTAssertEqual(fds.count, 300)
        XCTAssertTrue(c.eventually { c.metric("vigil_connections_refused_total{cause=\"address_limit\"}") == 236 })
        XCTAssertEqual(c.metric("vigil_sessions{phase=\"handshake\"}"), 64)

        let agent = try WireTestClient(port: c.sessionPort, key: key, hello: WireTestClient.hello("real"))
        XCTAssertNotNil(agent.handshake(), "refused: \(String(describing: agent.peerError))")
        XCTAssertEqual(c.metric("vigil_handshakes_total"), 1)
    }

    /// Many addresses, so the per-address limit does not help: at most
    /// max_clients − handshake_reserve connections are in their handshake,
    /// each new one closes the oldest, and a real agent still gets in.
    func testHandshakesCannotTakeTheReservedSlots() throws {
        let c = try CollectorProcess(config: ["max_clients = 100", "handshake_reserve = 10", "max_handshakes_per_address = 1000",
                                              "handshake_timeout_ms = 60000"])
        defer { c.stop(); c.removeDirectory() }
        let key = c.createKey(project: "acme")
        var fds: [Int32] = []
        defer { fds.forEach { close($0) } }
        for i in 2..<12 { fds += preambleOnly(30, from: "127.0.0.\(i)", port: c.sessionPort) }
        XCTAssertEqual(fds.count, 300)
        XCTAssertTrue(c.eventually { c.metric("vigil_connections_refused_total{cause=\"handshake_evicted\"}") == 210 })
        XCTAssertTrue(c.eventually { c.metric("vigil_sessions{phase=\"handshake\"}") == 90 })

        let agent = try WireTestClient(port: c.sessionPort, key: key, hello: WireTestClient.hello("real"))
        XCTAssertNotNil(agent.handshake(), "refused: \(String(describing: agent.peerError))")
        XCTAssertEqual(c.metric("vigil_connections_refused_total{cause=\"handshake_evicted\"}"), 211)
        XCTAssertEqual(c.metric("vigil_connections_refused_total{cause=\"address_limit\"}"), 0)
    }
}
