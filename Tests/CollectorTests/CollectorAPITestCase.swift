// The set-up the API suites share: a real collector started for each test
// with project "acme" and one access key, Wire clients playing its agents,
// and control requests answered as an agent would.
import Foundation
import XCTest
import Wire

class CollectorAPITestCase: XCTestCase {
    var c: CollectorProcess!
    var key: AccessKey!

    override func setUpWithError() throws {
        c = try CollectorProcess()
        key = c.createKey(project: "acme")
    }

    override func tearDown() {
        c.stop()
        c.removeDirectory()
    }

    /// Agent `id` connected: handshake, `records` then a Status `stopped`
    /// sent, and the collector's API showing it `stopped`.
    func stoppedAgent(_ id: String, sending records: [Record] = [],
                      file: StaticString = #filePath, line: UInt = #line) throws -> WireTestClient {
        let client = try WireTestClient(port: c.sessionPort, key: key, hello: WireTestClient.hello(id))
        XCTAssertNotNil(client.handshake(), file: file, line: line)
        client.send(records + [.status(Status(timestampMs: 1, state: .stopped))])
        XCTAssertTrue(c.eventually { (self.c.api("GET", "/agents/\(id)").object["state"] as? String) == "stopped" },
                      file: file, line: line)
        return client
    }

    /// Waits up to 10 s for the collector's next ControlRequest on `client`
    /// and answers it; the request, nil when none came.
    func answerControl(_ client: WireTestClient, ok: Bool = true, errors: [KeyValue] = [], message: String = "") -> ControlRequest? {
        guard case .controlRequest(let req)? = client.waitForRecord(timeout: 10, { if case .controlRequest = $0 { return true }; return false }) else {
            return nil
        }
        client.clearEvents()
        client.send([.controlResponse(ControlResponse(requestID: req.requestID, ok: ok, errors: errors, message: message))])
        return req
    }
}
