// /metrics as Prometheus's own linter sees it: `promtool check metrics`
// (Debian's `prometheus` package, scripts/lib/deps.sh) runs on a real
// collector's exposition after sessions, batches, a status, a failed
// handshake, a refused API call and a closed session have filled in the
// labelled families, and must report nothing. Also `vigil_build_info`.
import Foundation
import XCTest
import Wire
@testable import Collector

final class PromtoolTests: XCTestCase {
    static let promtool = "/usr/bin/promtool"

    /// Runs `promtool check metrics` on `text`; its exit status and output.
    static func check(_ text: String) throws -> (status: Int32, output: String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: promtool)
        p.arguments = ["check", "metrics"]
        let input = Pipe(), output = Pipe()
        p.standardInput = input
        p.standardOutput = output
        p.standardError = output
        try p.run()
        input.fileHandleForWriting.write(Data(text.utf8))
        try input.fileHandleForWriting.close()
        let out = output.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: out, as: UTF8.self))
    }

    func testPromtoolFindsNothingAfterTraffic() throws {
        guard FileManager.default.isExecutableFile(atPath: PromtoolTests.promtool) else {
            return XCTFail("promtool missing: install Debian's prometheus package (scripts/lib/deps.sh)")
        }
        let c = try CollectorProcess()
        defer { c.stop(); c.removeDirectory() }
        let key = c.createKey(project: "acme")
        let a = try WireTestClient(port: c.sessionPort, key: key, hello: WireTestClient.hello("a1"))
        XCTAssertNotNil(a.handshake())
        a.send([.status(Status(timestampMs: 1, state: .capturing))])
        for seq in 1...3 { a.send(a.batch(UInt64(seq))) }
        XCTAssertNotNil(a.waitForRecord { if case .ack(let k) = $0 { return k.sequence == 3 }; return false })
        do {   // a handshake that fails (unknown project) and a session that closes
            let bad = try WireTestClient(port: c.sessionPort, key: AccessKey.generate(projectID: "nope", collectorKey: c.collectorPublicKey), hello: WireTestClient.hello("x"))
            bad.handshake()
            let b = try WireTestClient(port: c.sessionPort, key: key, hello: WireTestClient.hello("b1"))
            XCTAssertNotNil(b.handshake())
        }
        XCTAssertEqual(c.http("GET", "/api/v1/agents", token: "wrong").status, 401)
        XCTAssertTrue(c.eventually { (c.metric("vigil_sessions_closed_total{reason=\"peer_closed\"}") ?? 0) >= 1 })
        XCTAssertTrue(c.eventually { (c.metric("vigil_handshake_failures_total{reason=\"unknown_project\"}") ?? 0) >= 1 })

        let text = c.http("GET", "/metrics").body
        XCTAssertTrue(text.contains("vigil_batches_total{outcome=\"stored\"} 3"), text)
        let (status, output) = try PromtoolTests.check(text)
        XCTAssertEqual(status, 0, output)
        XCTAssertEqual(output.trimmingCharacters(in: .whitespacesAndNewlines), "", "promtool's findings")
    }

    func testBuildInfoNamesTheVersion() throws {
        let c = try CollectorProcess()
        defer { c.stop(); c.removeDirectory() }
        let line = c.http("GET", "/metrics").body.split(separator: "\n").first { $0.hasPrefix("vigil_build_info{") }
        let text = line.map(String.init) ?? ""
        XCTAssertTrue(text.hasPrefix("vigil_build_info{version=\"\(CollectorVersion.current)\",store_schema=\""), text)
        XCTAssertTrue(text.hasSuffix("\",wire_preamble=\"\(Preamble.version)\"} 1"), text)
        let schema = text.split(separator: "\"")[3]
        XCTAssertNotNil(Int(schema), text)
    }

    /// A linter that cannot fail proves nothing: promtool does report a
    /// counter without `_total`.
    func testPromtoolReportsABadFamily() throws {
        let (_, output) = try PromtoolTests.check("# HELP bad_counter A counter.\n# TYPE bad_counter counter\nbad_counter 1\n")
        XCTAssertTrue(output.contains("_total"), output)
    }
}
