// Percentiles merged over windows and agents, end to end: two vigil-agent
// processes receive IPA records with chosen durations over several
// aggregation windows, a real vigil-collector stores their aggregates with
// histograms, and GET /api/v1/measurements?step=… answers counts exactly
// and p50/p95/p99 and extra quantiles within 1 % of the exact values of the
// same samples — across the agents and per agent.
import Foundation
import XCTest
@testable import Agent
import IPAPipeline

final class MergedPercentilesEndToEndTests: XCTestCase {
    let project = "pct"

    /// The exact value of rank ⌈q·n⌉.
    func exact(_ values: [UInt64], _ q: Double) -> Double {
        let sorted = values.sorted()
        return Double(sorted[max(1, Int((Double(sorted.count) * q).rounded(.up))) - 1])
    }

    func assertClose(_ ms: Any?, _ exactUs: Double, _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        guard let ms = ms as? Double ?? (ms as? Int).map(Double.init) else { return XCTFail("\(what): no value", file: file, line: line) }
        XCTAssertLessThanOrEqual(abs(ms * 1000 - exactUs) / exactUs, 0.01 + 1e-9, "\(what): \(ms * 1000) µs vs exact \(exactUs)",
                                 file: file, line: line)
    }

    func testAgentsWindowsMergeToTheExactPercentilesOfWhatTheyReceived() throws {
        let collector = try RealCollector()
        let key = try collector.createKey(project: project)
        try collector.start()
        collector.putPatterns(project: project, [("GET", "api.example.com", "/v1/*", "api", "v1")])

        var agents: [(name: String, process: AgentProcess, udp: UDPClient, config: String)] = []
        defer {
            for a in agents {
                if a.process.isRunning { a.process.signal(SIGKILL) }
                unlink(a.config)
            }
        }
        for i in 0..<2 {
            let name = "pct-\(i)-\(UInt32.random(in: 0...UInt32.max))"
            let port = freeUDPPort()
            let config = writeConfig([
                "server_host": collector.host, "server_port": "\(collector.sessionPort)", "access_key": key.text,
                "agent_name": name, "ipa_port": "\(port)", "aggregation_interval_ms": "300", "status_interval_ms": "200",
                "schedule_sync_interval_ms": "500", "reconnect_interval_min": "100", "reconnect_interval_max": "200",
            ])
            let process = try AgentProcess(["run", "--config", config])
            agents.append((name, process, UDPClient(port: port), config))
            let id = HostInfo.agentID(name: name)
            XCTAssertTrue(eventually { collector.state(agent: id) == "capturing" && collector.counter(agent: id, "rules") == 1 },
                          process.stderr)
        }

        // Durations in quarter milliseconds (exact in binary, so the agent's
        // microseconds are known exactly), 1 ms to ~3 s, skewed; each agent
        // its own shape, sent in bursts over several 300 ms windows.
        var state: UInt64 = 0x1DEA
        func unit() -> Double {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Double(state >> 11) / Double(1 << 53)
        }
        var sent: [String: [UInt64]] = [:]
        for burst in 0..<8 {
            for (i, a) in agents.enumerated() {
                for _ in 0..<150 {
                    let quarters = 4 + UInt64(exp((i == 0 ? 9.4 : 7.0) * unit() * unit()))
                    let ms = Double(quarters) / 4
                    a.udp.send("0\tGET\tapi.example.com\t/v1/items/\(burst)\t\(ms)")
                    sent[a.name, default: []].append(quarters * 250)
                }
            }
            usleep(150_000)
        }
        let total = sent.values.reduce(0) { $0 + $1.count }
        XCTAssertTrue(eventually { collector.measuredCount(project: self.project) == total },
                      "\(collector.measuredCount(project: project)) of \(total)")
        let windows = (collector.api("GET", "/measurements?project=\(project)&limit=10000").object["measurements"] as? [Any])?.count ?? 0
        XCTAssertGreaterThan(windows, 4, "several windows per agent")

        // One bucket over everything, across the agents.
        let step = "10000000000000"
        var r = collector.api("GET", "/measurements?project=\(project)&step=\(step)&quantiles=0.25,0.9,0.999")
        XCTAssertEqual(r.status, 200, r.body)
        let all = sent.values.flatMap { $0 }
        var rows = r.object["measurements"] as? [[String: Any]] ?? []
        XCTAssertEqual(rows.count, 1, r.body)
        XCTAssertEqual(rows.first?["count"] as? Int, total)
        XCTAssertEqual(rows.first?["windows"] as? Int, windows)
        XCTAssertEqual(rows.first?["merged"] as? Bool, true)
        for (name, q) in [("p50_ms", 0.5), ("p95_ms", 0.95), ("p99_ms", 0.99)] {
            assertClose(rows.first?[name], exact(all, q), "across agents \(name)")
        }
        let qs = rows.first?["quantiles_ms"] as? [String: Any] ?? [:]
        for (name, q) in [("0.25", 0.25), ("0.9", 0.9), ("0.999", 0.999)] {
            assertClose(qs[name], exact(all, q), "across agents q \(name)")
        }

        // Per agent.
        r = collector.api("GET", "/measurements?project=\(project)&step=\(step)&group_by=agent")
        rows = r.object["measurements"] as? [[String: Any]] ?? []
        XCTAssertEqual(rows.count, 2, r.body)
        for a in agents {
            let row = rows.first { $0["agent"] as? String == HostInfo.agentID(name: a.name) }
            let values = sent[a.name]!
            XCTAssertEqual(row?["count"] as? Int, values.count)
            for (name, q) in [("p50_ms", 0.5), ("p95_ms", 0.95), ("p99_ms", 0.99)] {
                assertClose(row?[name], exact(values, q), "\(a.name) \(name)")
            }
        }
        for a in agents {
            a.process.signal(SIGTERM)
            XCTAssertTrue(eventually(timeout: 10) { !a.process.isRunning }, a.process.stderr)
        }
    }
}
