// The per-session limits, black-box: one authenticated agent that floods
// Status records and ScheduleRequests costs the store one status write per
// interval and one read at a time, so other agents' batches are stored and
// acknowledged as if it were quiet.
import Foundation
import Glibc
import XCTest
import Wire

final class SessionLimitsTests: XCTestCase {
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
