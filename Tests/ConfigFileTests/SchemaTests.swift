import XCTest
@testable import ConfigFile

final class ProgramSchemaTests: XCTestCase {
    func testAgentDefaultsLoadWithOnlyTheAccessKey() throws {
        let c = try AgentSchema.schema.load(text: "access_key = demo.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n", path: "agent.conf", environment: [:], overrides: [])
        XCTAssertEqual(c.int("server_port"), 6600)
        XCTAssertEqual(c.int("net_send_queue1_size"), 512)
        XCTAssertEqual(c.int("reconnect_interval_max"), 10000)
        XCTAssertEqual(c.bool("capture"), true)
        XCTAssertFalse(c.render().contains("AAAAAAAA"), "the access key is redacted when printed")
    }

    func testAgentAccessKeyIsRequired() {
        XCTAssertThrowsError(try AgentSchema.schema.load(text: "", path: "agent.conf", environment: [:], overrides: [])) { e in
            XCTAssertTrue("\(e)".contains("access_key"), "\(e)")
        }
    }
}
