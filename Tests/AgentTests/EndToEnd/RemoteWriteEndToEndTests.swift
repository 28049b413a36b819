// Remote write through the whole system: a real vigil-agent measures IPA
// records and sends its windows to a real vigil-collector whose
// remote_write_url points at Debian's real `prometheus` (on loopback, a
// free port, a temporary TSDB, --web.enable-remote-write-receiver); the
// request counts Prometheus answers through its HTTP API equal what the
// collector's API says it stored.
import Foundation
import XCTest
import Wire
@testable import Agent

final class RemoteWriteEndToEndTests: XCTestCase {
    static let prometheusBinary = "/usr/bin/prometheus"

    /// GET on loopback with curl (in deps.sh); the body, or nil.
    static func get(_ url: String) -> String? {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/curl")
        p.arguments = ["-s", "--max-time", "5", "-G", url.components(separatedBy: "?query=")[0]]
            + (url.contains("?query=") ? ["--data-urlencode", "query=" + url.components(separatedBy: "?query=")[1]] : [])
        let out = Pipe()
        p.standardOutput = out
        p.standardError = FileHandle.nullDevice
        guard (try? p.run()) != nil else { return nil }
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return p.terminationStatus == 0 ? String(decoding: data, as: UTF8.self) : nil
    }

    func testAgentMeasurementsReachPrometheusWithTheCountsTheCollectorStored() throws {
        guard FileManager.default.isExecutableFile(atPath: RemoteWriteEndToEndTests.prometheusBinary) else {
            return XCTFail("prometheus missing: install Debian's prometheus package (scripts/lib/deps.sh)")
        }
        let promDir = "/tmp/vigil-prom-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: promDir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: promDir) }
        try "global:\n  scrape_interval: 1m\n".write(toFile: promDir + "/prometheus.yml", atomically: true, encoding: .utf8)
        let promPort = freeTCPPort()
        let prom = Process()
        prom.executableURL = URL(fileURLWithPath: RemoteWriteEndToEndTests.prometheusBinary)
        prom.arguments = ["--config.file=\(promDir)/prometheus.yml", "--storage.tsdb.path=\(promDir)/tsdb",
                          "--web.listen-address=127.0.0.1:\(promPort)", "--web.enable-remote-write-receiver"]
        prom.standardOutput = FileHandle.nullDevice
        prom.standardError = FileHandle.nullDevice
        try prom.run()
        defer { prom.terminate(); prom.waitUntilExit() }
        let base = "http://127.0.0.1:\(promPort)"
        XCTAssertTrue(eventually(timeout: 30) { RemoteWriteEndToEndTests.get(base + "/-/ready") != nil }, "prometheus not ready")

        let collector = try RealCollector()
        let handle = FileHandle(forWritingAtPath: collector.configPath)!
        handle.seekToEndOfFile()
        handle.write(Data("remote_write_url = \(base)/api/v1/write\nremote_write_flush_ms = 100\n".utf8))
        handle.closeFile()
        let key = try collector.createKey(project: "rw")
        try collector.start()
        collector.putPatterns(project: "rw", [("GET", "shop.example.com", "/cart/*", "shop", "cart"),
                                               ("POST", "shop.example.com", "/pay", "shop", "pay")])

        let agentName = "rw-\(UInt32.random(in: 0...UInt32.max))"
        let agentID = HostInfo.agentID(name: agentName)
        let ipaPort = freeUDPPort()
        let config = writeConfig([
            "server_host": collector.host, "server_port": "\(collector.sessionPort)", "access_key": key.text,
            "agent_name": agentName, "ipa_port": "\(ipaPort)", "aggregation_interval_ms": "500",
            "status_interval_ms": "200", "reconnect_interval_min": "100", "reconnect_interval_max": "200",
        ])
        defer { unlink(config) }
        let agent = try AgentProcess(["run", "--config", config])
        defer { if agent.isRunning { agent.signal(SIGKILL) } }
        XCTAssertTrue(eventually { collector.counter(agent: agentID, "rules") == 2 }, agent.stderr)

        // Known traffic over several aggregation windows: 60 cart reads, 15 payments.
        let udp = UDPClient(port: ipaPort)
        for round in 0..<3 {
            for i in 0..<20 { udp.send("0\tGET\tshop.example.com\t/cart/\(round * 20 + i)\t\(5 + i)") }
            for i in 0..<5 { udp.send("0\tPOST\tshop.example.com\t/pay\t\(50 + i)") }
            usleep(600_000)
        }
        XCTAssertTrue(eventually { collector.measuredCount(project: "rw") == 75 }, "\(collector.measurements(project: "rw"))")
        let cart = collector.measuredCount(project: "rw", monitor: "shop", check: "cart")
        let pay = collector.measuredCount(project: "rw", monitor: "shop", check: "pay")
        XCTAssertEqual(cart, 60)
        XCTAssertEqual(pay, 15)

        func promValue(_ expr: String) -> Double? {
            guard let body = RemoteWriteEndToEndTests.get(base + "/api/v1/query?query=" + expr),
                  let json = try? JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any],
                  let result = (json["data"] as? [String: Any])?["result"] as? [[String: Any]], result.count == 1,
                  let v = (result[0]["value"] as? [Any])?.last as? String else { return nil }
            return Double(v)
        }
        let sel = "project=\"rw\",agent=\"\(agentID)\",monitor=\"shop\",source=\"ipa\""
        XCTAssertTrue(eventually(timeout: 30) {
            promValue("last_over_time(vigil_request_duration_seconds_count{\(sel),check=\"cart\"}[1h])") == Double(cart)
                && promValue("last_over_time(vigil_request_duration_seconds_count{\(sel),check=\"pay\"}[1h])") == Double(pay)
        }, "prometheus: cart \(String(describing: promValue("last_over_time(vigil_request_duration_seconds_count{\(sel),check=\"cart\"}[1h])")))")
        // The windows the collector stored, one sample each.
        let windows = collector.measurements(project: "rw").filter { $0["check"] as? String == "cart" }.count
        XCTAssertEqual(promValue("count_over_time(vigil_request_duration_seconds_count{\(sel),check=\"cart\"}[1h])"), Double(windows))
        XCTAssertTrue(eventually(timeout: 40) {
            promValue("last_over_time(vigil_agent_state{agent=\"\(agentID)\",state=\"capturing\"}[1h])") == 1
        })
        agent.signal(SIGTERM)
        XCTAssertTrue(eventually(timeout: 10) { !agent.isRunning }, agent.stderr)
    }
}
