// An agent whose key the real collector refuses says why in its log:
// "unknown project or wrong access key" (docs/SECURITY.md, "Handshake
// errors"), not merely that the collector closed the connection.
import Foundation
import XCTest
import Wire

final class HandshakeRefusalTests: XCTestCase {
    func testAnAgentWithAnUnknownProjectOrAWrongKeyLogsTheReason() throws {
        let collector = try RealCollector()
        let real = try collector.createKey(project: "acme")
        try collector.start()
        for key in [try AccessKey.generate(projectID: "acme-typo", collectorKey: real.collectorKey),
                    try AccessKey.generate(projectID: "acme", collectorKey: real.collectorKey)] {
            let config = writeConfig([
                "server_host": collector.host, "server_port": "\(collector.sessionPort)", "access_key": key.text,
                "agent_name": "refused", "ipa_port": "\(freeUDPPort())", "reconnect_interval_min": "100",
                "reconnect_interval_max": "200", "log_level": "info",
            ])
            let agent = try AgentProcess(["run", "--config", config])
            XCTAssertTrue(eventually { agent.stderr.contains("unknown project or wrong access key") }, agent.stderr)
            XCTAssertFalse(agent.stderr.contains("closed by the collector during the handshake"), agent.stderr)
            agent.signal(SIGTERM)
            XCTAssertTrue(eventually { !agent.isRunning })
        }
    }
}
