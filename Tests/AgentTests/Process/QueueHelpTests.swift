// `vigil-agent --help` and docs/AGENT.md agree on which queue holds what:
// monitor results go to queue 1 with the aggregates (AgentRuntime enqueues
// them with priority), queue 2 holds raw events only.
import Foundation
import XCTest

final class QueueHelpTests: XCTestCase {
    func testHelpAndDocsAgreeThatMonitorResultsGoToQueue1() throws {
        let help = try AgentProcess.run(["--help"])
        XCTAssertEqual(help.code, 0)
        let lines = help.stdout.split(separator: "\n")
        let q1 = lines.first { $0.contains("net_send_queue1_size") }.map(String.init) ?? ""
        let q2 = lines.first { $0.contains("net_send_queue2_size") }.map(String.init) ?? ""
        XCTAssertTrue(q1.contains("monitor results"), q1)
        XCTAssertFalse(q2.contains("monitor"), q2)

        let doc = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("docs/AGENT.md")
        let text = try String(contentsOf: doc, encoding: .utf8)
        let rows = text.split(separator: "\n")
        let d1 = rows.first { $0.hasPrefix("| `net_send_queue1_size`") }.map(String.init) ?? ""
        let d2 = rows.first { $0.hasPrefix("| `net_send_queue2_size`") }.map(String.init) ?? ""
        XCTAssertTrue(d1.contains("monitor results"), d1)
        XCTAssertFalse(d2.contains("monitor"), d2)
        XCTAssertTrue(text.contains("Each result goes to queue 1"))
    }
}
