// Records that carry status and time, on the real system over loopback:
// IPA version 2 records arrive as outcome counts and raw events with their
// status; `vigil-agent replay` puts timestamped records in the windows of
// their time (too old and future ones counted, not stored); the example
// emitters of examples/emitters, run against a real agent, show up with
// their calls' outcomes. Observed only through the collector's HTTP API.
import Foundation
import CSystem  // SOCK_STREAM: glibc's socket macros may be owned by this C module
import XCTest
import CSystem  // SOCK_* constants: glibc's socket macros may be owned by this C module
@testable import Agent
import IPAPipeline

final class RecordsEndToEndTests: XCTestCase {
    typealias System = RealCollectorTests.System
    let project = "records"

    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()

    /// Outcome counts of the measurements of `check`, summed, with `count`.
    func outcomes(_ s: System, check: String) -> [String: Int] {
        var sum: [String: Int] = [:]
        for m in s.collector.measurements(project: project) where m["check"] as? String == check {
            sum["count", default: 0] += m["count"] as? Int ?? 0
            for (k, v) in m["outcomes"] as? [String: Int] ?? [:] { sum[k, default: 0] += v }
        }
        return sum
    }

    func testVersionTwoStatusesArriveAsOutcomeCountsAndEventsCarryTheirStatus() throws {
        let s = try System(project: project)
        s.collector.putPatterns(project: project, [("", "api.example.com", "/v1/*", "api", "v1")])
        try s.startAgent(["forward_raw_events": "on"])
        s.waitForRules(1)
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        let lines = [
            "2\t\(now)\tGET\thttps://api.example.com/v1/a\t200\t10",
            "2\t\(now)\tGET\thttps://api.example.com/v1/a\t201\t11",
            "2\t\(now)\tGET\thttps://api.example.com/v1/a?x=1\t304\t12",
            "2\t\(now)\tPOST\thttps://api.example.com/v1/b\t404\t13\n2\t\(now)\tPOST\thttps://api.example.com/v1/b\t429\t14",
            "2\t\(now)\tGET\thttps://api.example.com/v1/c\t503\t15",
            "2\t\(now)\tGET\thttps://api.example.com/v1/d\t0\t3000\ttimeout",
            "2 \(now) GET https://api.example.com/v1/d 0 20",         // spaces; no error class
            "1\tGET\thttps://api.example.com/v1/e\t5",               // no status: in no class
            "2\t\(now)\tGET\thttps://api.example.com/v1/a\t700\t1",  // status: dropped, counted
        ]
        for l in lines { s.udp.send(l) }
        XCTAssertTrue(eventually { self.outcomes(s, check: "v1")["count"] == 9 }, "\(s.collector.measurements(project: project))")
        XCTAssertEqual(outcomes(s, check: "v1"), ["count": 9, "2xx": 2, "3xx": 1, "4xx": 2, "5xx": 1, "error": 2])
        let errors = s.collector.measurements(project: project).compactMap { ($0["meta"] as? [String: Any])?["errors"] as? Int }
        XCTAssertEqual(errors.reduce(0, +), 3, "errors: 5xx and transport failures")
        XCTAssertTrue(eventually { s.collector.counter(agent: s.agentID, "drops_parse_status") == 1 })
        // Raw events: the status of each, 0 with an error class for no response.
        XCTAssertTrue(eventually { s.collector.events(project: self.project).count == 9 })
        let events = s.collector.events(project: project)
        let statuses = events.map { ($0["status"] as? Int).map(String.init) ?? "null" }.sorted()
        XCTAssertEqual(statuses, ["0", "0", "200", "201", "304", "404", "429", "503", "null"])
        let classes = Set(events.compactMap { $0["error_class"] as? String })
        XCTAssertEqual(classes, ["timeout", "transport_error"])
        s.stopAgent()
    }

    func testReplayedVersionTwoRecordsLandInTheWindowsOfTheirTime() throws {
        let s = try System(project: project)
        s.collector.putPatterns(project: project, [("", "*", "/r/*", "replay", "r")])
        let window: Int64 = 10_000
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        // Mid-window timestamps, so a few ms of clock offset change nothing.
        let w1 = (now - 2 * 3_600_000) / window * window, w2 = (now - 3_600_000) / window * window
        let lines = [
            "2\t\(w1 + 4_000)\tGET\thttp://h/r/1\t200\t10",
            "2\t\(w1 + 5_000)\tGET\thttp://h/r/2\t200\t20",
            "2\t\(w1 + 6_000)\tGET\thttp://h/r/3\t500\t30",
            "2\t\(w2 + 5_000)\tGET\thttp://h/r/4\t404\t40",
            "2\t\(w2 + 5_500)\tGET\thttp://h/r/5\t0\t50\tconnection_refused",
            "2\t\(now - 3 * 86_400_000)\tGET\thttp://h/r/6\t200\t60",     // older than a day: too_old
            "2\t\(now + 3_600_000)\tGET\thttp://h/r/7\t200\t70",         // an hour ahead: future
            "1\tGET\thttp://h/r/8\t80",                                   // no time: the window of arrival
        ]
        let file = "/tmp/vigil-replay-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).ipa"
        FileManager.default.createFile(atPath: file, contents: Data((lines.joined(separator: "\n") + "\n").utf8))
        defer { unlink(file) }
        let config = writeConfig(s.lines(["aggregation_interval_ms": "\(window)"]))
        defer { unlink(config) }
        let replay = try AgentProcess(["replay", file, "--config", config])
        XCTAssertTrue(eventually(timeout: 30) { !replay.isRunning }, replay.stderr)
        XCTAssertEqual(replay.exitCode, 0, replay.stderr)
        XCTAssertTrue(replay.stdout.contains("read lines=8 records=6 matched=6"), replay.stdout)
        XCTAssertTrue(replay.stdout.contains("too_old=1 future=1"), replay.stdout)

        let rows = s.collector.measurements(project: project)
        var byTs: [Int64: (count: Int, outcomes: [String: Int])] = [:]
        for m in rows {
            let ts = Int64(m["ts"] as? Int ?? 0)
            byTs[ts, default: (0, [:])].count += m["count"] as? Int ?? 0
            for (k, v) in m["outcomes"] as? [String: Int] ?? [:] where v > 0 { byTs[ts]!.outcomes[k, default: 0] += v }
        }
        XCTAssertEqual(byTs[w1]?.count, 3, "\(rows)")
        XCTAssertEqual(byTs[w1]?.outcomes, ["2xx": 2, "5xx": 1])
        XCTAssertEqual(byTs[w2]?.count, 2, "\(rows)")
        XCTAssertEqual(byTs[w2]?.outcomes, ["4xx": 1, "error": 1])
        let recent = byTs.filter { $0.key >= now - window }
        XCTAssertEqual(recent.map(\.value.count), [1], "the record without a time: its window of arrival \(rows)")
        XCTAssertEqual(byTs.values.map(\.count).reduce(0, +), 6, "nothing too old or in the future stored: \(rows)")
    }

    /// examples/emitters: each program makes real HTTP calls (a 200, a 404,
    /// and one to a closed port) and reports them to a real agent.
    func testExampleEmittersReportTheirCallsWithOutcomes() throws {
        let s = try System(project: project)
        s.collector.putPatterns(project: project, [("", "127.0.0.1", "/python/*", "emitters", "python"),
                                                    ("", "127.0.0.1", "/perl/*", "emitters", "perl")])
        try s.startAgent()
        s.waitForRules(2)
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("vigil-emitters-\(getpid())").path
        for d in ["python", "perl"] {
            try FileManager.default.createDirectory(atPath: root + "/" + d, withIntermediateDirectories: true)
            FileManager.default.createFile(atPath: root + "/\(d)/ok.txt", contents: Data("ok\n".utf8))
        }
        defer { try? FileManager.default.removeItem(atPath: root) }
        let httpPort = freeTCPPort(), closedPort = freeTCPPort()
        let server = try run(["python3", "-m", "http.server", "\(httpPort)", "--bind", "127.0.0.1", "--directory", root])
        defer { if server.isRunning { server.terminate(); server.waitUntilExit() } }
        XCTAssertTrue(eventually { canConnect(port: httpPort) }, "http.server did not start")

        let emitters = [("python", ["python3", Self.repository.path + "/examples/emitters/python/vigil_ipa.py"]),
                        ("perl", ["perl", Self.repository.path + "/examples/emitters/perl/vigil_ipa.pl"])]
        for (name, command) in emitters {
            let urls = ["http://127.0.0.1:\(httpPort)/\(name)/ok.txt", "http://127.0.0.1:\(httpPort)/\(name)/missing",
                        "http://127.0.0.1:\(closedPort)/\(name)/down"]
            let p = try run(command + ["--ipa-port", "\(s.ipaPort)"] + urls)
            XCTAssertTrue(eventually(timeout: 30) { !p.isRunning }, name)
            XCTAssertEqual(p.terminationStatus, 0, name)
        }
        for check in ["python", "perl"] {
            XCTAssertTrue(eventually { self.outcomes(s, check: check)["count"] == 3 }, "\(check): \(s.collector.measurements(project: project))")
            XCTAssertEqual(outcomes(s, check: check), ["count": 3, "2xx": 1, "3xx": 0, "4xx": 1, "5xx": 0, "error": 1], check)
        }
        s.stopAgent()
    }

    /// Starts `arguments` through env(1) with the test's own PATH.
    private func run(_ arguments: [String]) throws -> Process {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = arguments
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        return p
    }
}

/// Whether a TCP connection to 127.0.0.1:port is accepted.
private func canConnect(port: UInt16) -> Bool {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var sa = sockaddr_in()
    sa.sin_family = sa_family_t(AF_INET)
    sa.sin_port = port.bigEndian
    sa.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
    return withUnsafePointer(to: &sa) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    } == 0
}
