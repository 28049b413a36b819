// /metrics as a scraper sees it: every family the collector exposes is in
// docs/API.md's table (and nothing documented is missing), agents are
// counted by project including the not_visible ones, labels a dashboard
// alerts on exist at zero, and values print without float noise. Also the
// pure parts: the number format and the summaries' recent window.
import Foundation
import XCTest
import Reactor
import Wire
@testable import Collector

final class MetricsTests: XCTestCase {
    static let apiDoc = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("docs/API.md")

    /// The family names in the first column of docs/API.md's metrics table.
    static func documentedFamilies() throws -> Set<String> {
        let text = try String(contentsOf: apiDoc, encoding: .utf8)
        guard let start = text.range(of: "`GET /metrics`") else { return [] }
        var names = Set<String>()
        var inTable = false
        for line in text[start.upperBound...].split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix("|") { inTable = true } else if inTable { break } else { continue }
            let first = line.split(separator: "|", omittingEmptySubsequences: true).first ?? ""
            for part in first.split(separator: "`").enumerated() where part.offset % 2 == 1 {
                let name = part.element.prefix { $0 != "{" }
                if name.first?.isLetter == true && !name.contains(" ") { names.insert(String(name)) }
            }
        }
        return names
    }

    func testEveryScrapedFamilyIsDocumentedAndEveryDocumentedOneScraped() throws {
        let c = try CollectorProcess()
        defer { c.stop(); c.removeDirectory() }
        let text = c.http("GET", "/metrics").body
        let scraped = Set(text.split(separator: "\n").filter { $0.hasPrefix("# TYPE ") }.map { String($0.split(separator: " ")[2]) })
        XCTAssertGreaterThan(scraped.count, 30)
        let documented = try MetricsTests.documentedFamilies()
        XCTAssertEqual(scraped.subtracting(documented).sorted(), [], "exposed but not in docs/API.md")
        XCTAssertEqual(documented.subtracting(scraped).sorted(), [], "in docs/API.md but not exposed")
    }

    func testAgentsByProjectIncludingNotVisibleAndControlResultsAtZero() throws {
        let first = try CollectorProcess()
        var c = first
        defer { c.stop(); c.removeDirectory() }
        let key = c.createKey(project: "acme")
        let other = c.createKey(project: "beta")
        var a: WireTestClient? = try WireTestClient(port: c.sessionPort, key: key, hello: WireTestClient.hello("a1"))
        XCTAssertNotNil(a!.handshake())
        a!.send([.status(Status(timestampMs: 1, state: .capturing))])
        do {
            let gone = try WireTestClient(port: c.sessionPort, key: other, hello: WireTestClient.hello("b1"))
            XCTAssertNotNil(gone.handshake())
        }   // closed: b1 is known and not visible
        XCTAssertTrue(c.eventually { c.metric("vigil_agents{project=\"beta\",state=\"not_visible\"}") == 1 })
        XCTAssertTrue(c.eventually { c.metric("vigil_agents{project=\"acme\",state=\"capturing\"}") == 1 })
        XCTAssertEqual(c.metric("vigil_agents{project=\"acme\",state=\"not_visible\"}"), 0)
        XCTAssertEqual(c.metric("vigil_agents{project=\"beta\",state=\"capturing\"}"), 0)
        for result in ["ok", "rejected", "timeout", "disconnected", "shutting_down"] {
            XCTAssertEqual(c.metric("vigil_control_requests_total{result=\"\(result)\"}"), 0, result)
        }

        // A restarted collector still knows b1 (from the store) and a1, both without a session now.
        a = nil
        c.stop()
        c = try CollectorProcess.restart(first)
        XCTAssertTrue(c.eventually { c.metric("vigil_agents{project=\"acme\",state=\"not_visible\"}") == 1 })
        XCTAssertEqual(c.metric("vigil_agents{project=\"beta\",state=\"not_visible\"}"), 1)

        // No value carries float noise: at most 9 decimal places.
        for line in c.http("GET", "/metrics").body.split(separator: "\n") where !line.hasPrefix("#") {
            let value = line.split(separator: " ").last ?? ""
            if let dot = value.firstIndex(of: ".") {
                XCTAssertLessThanOrEqual(value[value.index(after: dot)...].count, 9, String(line))
            }
        }
    }

    /// The spool gauges are kept as Status records arrive and sessions end
    /// (no walk over the agents per scrape): each change and each end moves
    /// the project's sums, and the oldest age follows the agent holding it.
    func testSpoolGaugesFollowStatusesAndSessionEnds() throws {
        let c = try CollectorProcess()
        defer { c.stop(); c.removeDirectory() }
        let key = c.createKey(project: "acme")
        func spool(_ batches: UInt64, _ bytes: UInt64, ageMs: UInt64, full: UInt64 = 0) -> [Record] {
            [.status(Status(timestampMs: 1, state: .capturing, counters: [
                Counter("spool_batches", batches), Counter("spool_bytes", bytes), Counter("spool_oldest_age_ms", ageMs),
                Counter("spool_dropped_full", full)]))]
        }
        func metric(_ name: String) -> Double? { c.metric("\(name){project=\"acme\"}") }
        let a = try WireTestClient(port: c.sessionPort, key: key, hello: WireTestClient.hello("a1"))
        var b: WireTestClient? = try WireTestClient(port: c.sessionPort, key: key, hello: WireTestClient.hello("a2"))
        let plain = try WireTestClient(port: c.sessionPort, key: key, hello: WireTestClient.hello("a3"))
        for client in [a, b!, plain] { XCTAssertNotNil(client.handshake()) }
        a.send(spool(3, 300, ageMs: 5_000))
        b!.send(spool(4, 400, ageMs: 90_000, full: 2))
        plain.send([.status(Status(timestampMs: 1, state: .stopped))])
        XCTAssertTrue(c.eventually { metric("vigil_agent_spool_batches") == 7 })
        XCTAssertEqual(metric("vigil_agent_spool_bytes"), 700)
        XCTAssertEqual(c.metric("vigil_agent_spool_dropped{project=\"acme\",cause=\"full\"}"), 2)
        // 90,000 ms within a bucket's 1/128: 89,600–90,000 ms.
        let age = metric("vigil_agent_spool_oldest_age_seconds") ?? 0
        XCTAssertTrue(age >= 89.6 && age <= 90, "\(age)")

        a.send(spool(1, 100, ageMs: 100))                // a1's spool drains
        XCTAssertTrue(c.eventually { metric("vigil_agent_spool_batches") == 5 })
        XCTAssertEqual(metric("vigil_agent_spool_bytes"), 500)
        b = nil                                           // the oldest one's session ends
        XCTAssertTrue(c.eventually { metric("vigil_agent_spool_batches") == 1 })
        XCTAssertEqual(metric("vigil_agent_spool_bytes"), 100)
        XCTAssertEqual(c.metric("vigil_agent_spool_dropped{project=\"acme\",cause=\"full\"}"), 0)
        XCTAssertEqual(metric("vigil_agent_spool_oldest_age_seconds"), 0.1, "exact below 128 ms")
    }

    func testProjectSpoolsAddAndRemoveExactlyAndBucketTheOldestAge() {
        var p = ProjectSpools()
        func f(_ batches: UInt64, _ age: UInt64) -> AgentSpoolFigures {
            var x = AgentSpoolFigures()
            x.batches = batches
            x.oldestAgeMs = age
            return x
        }
        p.add(f(1, 100))
        p.add(f(2, 1_000_000))
        p.add(f(4, 1_000_000))
        XCTAssertEqual(p.figures.batches, 7)
        XCTAssertEqual(p.agents, 3)
        XCTAssertLessThanOrEqual(p.figures.oldestAgeMs, 1_000_000)
        XCTAssertGreaterThan(Double(p.figures.oldestAgeMs), 1_000_000 * (1 - 1.0 / 128))
        p.remove(f(2, 1_000_000))
        XCTAssertGreaterThan(p.figures.oldestAgeMs, 100, "another agent is still in the oldest bucket")
        p.remove(f(4, 1_000_000))
        XCTAssertEqual(p.figures.oldestAgeMs, 100)
        XCTAssertEqual(p.figures.batches, 1)
        p.remove(f(1, 100))
        XCTAssertEqual(p.agents, 0)
        XCTAssertEqual(p.figures, AgentSpoolFigures())
        for v: UInt64 in [0, 1, 127, 128, 129, 255, 256, 12_345, 1 << 40] {
            let b = ProjectSpools.bucket(v)
            XCTAssertLessThanOrEqual(b, v)
            XCTAssertLessThan(Double(v - b), max(1, Double(v) / 128), "\(v)")
        }
    }

    func testNumbersPrintWithoutFloatNoise() {
        XCTAssertEqual(PrometheusText.format(0.007470999999999999), "0.007471")
        XCTAssertEqual(PrometheusText.format(Double(7471) / 1e6), "0.007471")
        XCTAssertEqual(PrometheusText.format(0.1 + 0.2), "0.3")
        XCTAssertEqual(PrometheusText.format(12), "12")
        XCTAssertEqual(PrometheusText.format(0.99), "0.99")
        XCTAssertEqual(PrometheusText.format(1.5e-10), "0")
        XCTAssertEqual(PrometheusText.format(123456789.25), "123456789.25")
    }

    /// Until the window is full, the quantiles cover everything since start:
    /// a minute-old collector's loop-lag maximum is not only its last seconds'.
    func testSummaryQuantilesCoverEverythingSinceStartUntilTheWindowIsFull() {
        let w = SummaryWindows()
        var h = LogHistogram()
        h.record(30_000)                           // one 30 ms iteration in the first minute
        for _ in 1..<SummaryWindows.steps {
            w.tick(["x": h])
            for _ in 0..<10 { h.record(100) }
            XCTAssertEqual(w.recent("x", h).count, h.count, "not a full window yet")
        }
        var p = PrometheusText()
        p.summary("x", "help", total: h, recent: w.recent("x", h), perSecond: 1e6)
        XCTAssertTrue(p.text.contains("x{quantile=\"1\"} 0.03"), p.text)
    }

    func testSummaryQuantilesCoverTheRecentWindowAndSumsTheWholeLifetime() {
        let w = SummaryWindows()
        var h = LogHistogram()
        for _ in 0..<100 { h.record(2_000_000) }   // 2 s, long ago
        w.tick(["x": h])
        for _ in 1..<SummaryWindows.steps { w.tick(["x": h]) }
        XCTAssertEqual(w.recent("x", h).count, 0, "nothing new within the window")
        for _ in 0..<10 { h.record(64) }           // 64 µs, recently
        w.tick(["x": h])                           // the first copy (before 1 ms) drops out
        var p = PrometheusText()
        p.summary("x", "help", total: h, recent: w.recent("x", h), perSecond: 1e6)
        XCTAssertTrue(p.text.contains("x{quantile=\"0.99\"} 6.4e-05\n"), p.text)
        XCTAssertTrue(p.text.contains("x{quantile=\"1\"} 6.4e-05\n"), p.text)
        XCTAssertTrue(p.text.contains("x_count 110\n"), p.text)
        XCTAssertTrue(p.text.contains("x_sum 200.00064\n"), p.text)
        XCTAssertEqual(SummaryWindows.lengthText, "5 to 6 minutes")
    }
}
