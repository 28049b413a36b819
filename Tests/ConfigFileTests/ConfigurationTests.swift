import XCTest
import ConfigFile

final class ConfigurationTests: XCTestCase {
    private func base() throws -> Configuration {
        try agentLikeSchema().load(text: "access_key = s3cret\nserver_port = 7000\n", path: "agent.conf")
    }

    func testRenderRedactsSecretsAndNamesOrigins() throws {
        let c = try base()
        let text = c.render()
        XCTAssertFalse(text.contains("s3cret"))
        XCTAssertTrue(text.contains("access_key = <redacted>  # file agent.conf:1\n"), text)
        XCTAssertTrue(text.contains("server_port = 7000  # file agent.conf:2\n"), text)
        XCTAssertTrue(text.contains("agent_name = \"\"  # default\n"), text)
        XCTAssertTrue(text.contains("capture = on  # default\n"), text)
        XCTAssertTrue(c.render(redactingSecrets: false).contains("access_key = s3cret"))
        let entry = c.entries().first { $0.key == "access_key" }!
        XCTAssertEqual(entry.value, Configuration.redacted)
        XCTAssertTrue(entry.secret)
        XCTAssertEqual(entry.origin?.name, "file")
    }

    func testRenderShowsUnsetRequiredKey() {
        let c = Configuration(defaultsOf: agentLikeSchema())
        XCTAssertEqual(c.missingRequired, ["access_key"])
        XCTAssertTrue(c.render().contains("# access_key = (required, not set)\n"))
        XCTAssertNil(c.value("access_key"))
    }

    func testRenderedFileLoadsBackToTheSameValues() throws {
        var c = try base()
        try c.apply([(key: "agent_name", value: "a # b")], requireLive: false)
        let again = try agentLikeSchema().load(text: c.render(redactingSecrets: false), path: "x")
        XCTAssertEqual(again.changedKeys(comparedTo: c), [])
    }

    func testValidateReportsPerKeyAndAppliesNothing() throws {
        let c = try base()
        let errors = c.validate([(key: "server_port", value: "66000"), (key: "capture", value: "off"),
                                 (key: "nope", value: "1"), (key: "listen", value: "127.0.0.1:1"),
                                 (key: "access_key", value: ""), (key: "capture", value: "on")])
        XCTAssertEqual(errors.map(\.key), ["server_port", "nope", "listen", "access_key", "capture"])
        XCTAssertEqual(errors.map(\.description), [
            "key 'server_port': expected an integer 1...65535, got \"66000\"",
            "unknown key 'nope'",
            "key 'listen': cannot change while running (restart to apply)",
            "key 'access_key': expected a non-empty string, got <redacted>",
            "key 'capture': given twice",
        ])
        XCTAssertEqual(errors[0].detail, "expected an integer 1...65535, got \"66000\"")
        XCTAssertEqual(errors.messagesByKey["server_port"], "expected an integer 1...65535, got \"66000\"")
        XCTAssertEqual(errors.messagesByKey["nope"], "unknown key 'nope'")
        XCTAssertEqual(errors.messagesByKey["capture"], "given twice")
        XCTAssertEqual(c.int("server_port"), 7000)
        XCTAssertTrue(c.bool("capture"))
    }

    func testApplyIsAtomic() throws {
        var c = try base()
        XCTAssertThrowsError(try c.apply([(key: "capture", value: "off"), (key: "server_port", value: "0")])) { e in
            XCTAssertEqual((e as? ConfigErrors)?.errors.map(\.key), ["server_port"])
        }
        XCTAssertTrue(c.bool("capture"), "nothing applied when one key is invalid")
    }

    func testApplyReturnsChangedKeysInSchemaOrder() throws {
        var c = try base()
        let changed = try c.apply(["log_format": "json", "server_port": "7000", "capture": "off"])
        XCTAssertEqual(changed, ["capture", "log_format"], "server_port kept its value")
        XCTAssertEqual(c.origin("server_port"), .update, "a key set to its value takes the new origin")
        XCTAssertEqual(c.origin("capture"), .update)
        XCTAssertFalse(c.bool("capture"))
    }

    func testApplyWithCollectorOrigins() throws {
        var c = Configuration(defaultsOf: agentLikeSchema())
        try c.apply(["server_port": "7100"], origin: .project, requireLive: false)
        try c.apply(["capture": "off"], origin: .agent, requireLive: false)
        XCTAssertEqual(c.origin("server_port")?.name, "project")
        XCTAssertEqual(c.origin("capture")?.name, "agent")
        XCTAssertEqual(c.origin("log_format")?.name, "default")
    }

    func testApplyStartOnlyKeyWhenAllowed() throws {
        var c = try base()
        XCTAssertEqual(try c.apply(["listen": "127.0.0.1:1"], requireLive: false), ["listen"])
    }

    func testReloadTakesLiveKeysAndReportsTheRest() throws {
        let running = try base()
        let fresh = try agentLikeSchema().load(text: "access_key = s3cret\nserver_port = 7001\nlisten = 127.0.0.1:1\n", path: "agent.conf")
        let r = running.reloading(from: fresh)
        XCTAssertEqual(r.applied, ["server_port"])
        XCTAssertEqual(r.needsRestart, ["listen"])
        XCTAssertEqual(r.configuration.int("server_port"), 7001)
        XCTAssertEqual(r.configuration.address("listen").port, 6600, "a start-only key keeps its running value")
    }

    func testTypedGetters() throws {
        let c = try base()
        XCTAssertEqual(c.string("server_port"), "7000")
        XCTAssertEqual(c.value("capture"), .bool(true))
        XCTAssertEqual(c.address("listen").host, "0.0.0.0")
    }
}
