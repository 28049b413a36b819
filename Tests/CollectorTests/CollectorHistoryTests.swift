// The collector's history of its own health, end to end: a real collector
// sampling every 200 ms, agents (Wire test clients) connecting and failing
// to, and `GET /api/v1/collector/history` answering what happened, in
// buckets; the history outlives a restart (it is in the store).
import Foundation
import Glibc
import XCTest
import Wire

final class CollectorHistoryTests: XCTestCase {
    private func history(_ c: CollectorProcess, _ query: String) -> (status: Int, samples: [[String: Any]], object: [String: Any]) {
        let r = c.api("GET", "/collector/history" + query)
        return (r.status, r.object["samples"] as? [[String: Any]] ?? [], r.object)
    }

    private func sum(_ samples: [[String: Any]], _ field: String) -> Int {
        samples.reduce(0) { $0 + (($1[field] as? NSNumber)?.intValue ?? 0) }
    }

    func testHistoryRecordsSessionsHandshakesAndFailures() throws {
        let c = try CollectorProcess(config: ["self_metrics_interval_ms = 200"])
        defer { c.stop(); c.removeDirectory() }
        let started = Int64(Date().timeIntervalSince1970 * 1000)
        let key = c.createKey(project: "acme")
        let client = try WireTestClient(port: c.sessionPort, key: key, hello: WireTestClient.hello("a1"))
        XCTAssertNotNil(client.handshake())
        client.send([.status(Status(timestampMs: 1, state: .capturing))])
        let wrong = try WireTestClient(port: c.sessionPort, key: try AccessKey.generate(projectID: "acme", collectorKey: c.collectorPublicKey),
                                       hello: WireTestClient.hello("x"))
        XCTAssertNil(wrong.handshake())

        // One bucket over everything since start: one handshake, one failure,
        // and a sample that saw the session established and the agent capturing.
        var samples: [[String: Any]] = []
        XCTAssertTrue(c.eventually {
            let now = Int64(Date().timeIntervalSince1970 * 1000)
            samples = self.history(c, "?from=\(started - 60_000)&to=\(now + 1_000)&step=200").samples
            return self.sum(samples, "handshakes") == 1 && self.sum(samples, "handshake_failures") == 1
                && samples.contains { ($0["agents"] as? [String: Any])?["capturing"] as? Int == 1 }
        }, "\(samples)")
        let last = try XCTUnwrap(samples.last)
        XCTAssertEqual((last["sessions"] as? [String: Any])?["established"] as? Int, 1)
        for field in ["ts", "interval_ms", "records_in", "records_per_s", "rows_stored", "rows_per_s", "commit_p99_ms",
                      "commit_max_ms", "lag_p99_ms", "lag_max_ms", "dropped", "store_failures", "pending_rows"] {
            XCTAssertNotNil(last[field], field)
        }
        XCTAssertGreaterThan(sum(samples, "records_in"), 0, "the Status record")
        // Buckets: with a step as long as the range, one bucket holds every sample.
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        let one = history(c, "?from=\(started - 60_000)&to=\(now + 1_000)&step=\(now + 1_000 - started + 60_000)")
        XCTAssertEqual(one.status, 200)
        XCTAssertEqual(one.samples.count, 1)
        XCTAssertEqual(sum(one.samples, "handshakes"), 1)
        XCTAssertEqual(one.samples.first?["ts"] as? Int64 ?? (one.samples.first?["ts"] as? NSNumber)?.int64Value, started - 60_000)
        // Defaults: the last six hours, about 720 buckets of whole seconds.
        let d = history(c, "")
        XCTAssertEqual(d.status, 200)
        XCTAssertEqual(d.object["step"] as? Int, 30_000)
        XCTAssertEqual(((d.object["to"] as? NSNumber)?.int64Value ?? 0) - ((d.object["from"] as? NSNumber)?.int64Value ?? 0),
                       6 * 3_600_000)
        XCTAssertEqual(sum(d.samples, "handshakes"), 1)

        // Refusals name the parameter.
        for (query, name) in [("?from=10&to=10", "to"), ("?from=0&to=1000&step=99", "step"),
                              ("?from=0&to=100000000&step=1000", "step"), ("?step=x", "step"), ("?since=1", "unknown")] {
            let r = c.api("GET", "/collector/history" + query)
            XCTAssertEqual(r.status, 400, query)
            XCTAssertNotNil((r.object["detail"] as? [String: Any])?[name], "\(query): \(r.body)")
        }

        // The history is in the store: a restarted collector answers it.
        withExtendedLifetime(client) {}
        c.stop()
        let again = try CollectorProcess.restart(c, config: ["self_metrics_interval_ms = 200"])
        defer { again.stop() }
        let after = Int64(Date().timeIntervalSince1970 * 1000)
        XCTAssertEqual(sum(history(again, "?from=\(started - 60_000)&to=\(after + 1_000)&step=1000").samples, "handshakes"), 1)
    }
}
