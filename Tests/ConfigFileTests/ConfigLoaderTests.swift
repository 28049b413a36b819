import XCTest
import Glibc
@testable import ConfigFile

final class ConfigLoaderTests: XCTestCase {
    func testDefaultsWhenNothingElseIsGiven() throws {
        let c = try agentLikeSchema().load(text: nil, path: "", overrides: [(key: "access_key", value: "k")])
        XCTAssertEqual(c.int("server_port"), 6600)
        XCTAssertEqual(c.origin("server_port"), .default)
        XCTAssertEqual(c.int("tcp_connection_timeout"), 5000)
        XCTAssertEqual(c.int("net_send_max_bytes"), 5_242_880)
        XCTAssertTrue(c.bool("capture"))
        XCTAssertEqual(c.list("ipa_bind"), ["127.0.0.1"])
        XCTAssertEqual(c.address("listen").port, 6600)
        XCTAssertEqual(c.origin("access_key"), .commandLine)
    }

    func testTheDocumentedMessageShape() {
        let text = String(repeating: "\n", count: 11) + "server_port = 66000\naccess_key = k\n"
        XCTAssertEqual(loadErrors(text), ["agent.conf:12: key 'server_port': expected an integer 1...65535, got \"66000\""])
    }

    func testEveryTypeNamesItsExpectation() {
        let text = """
        access_key = k
        tcp_connection_timeout = soon
        net_send_max_bytes = 10
        capture = maybe
        log_format = xml
        ipa_bind = 127.0.0.1, localhost
        listen = 0.0.0.0:99999
        server_host = ,
        """
        XCTAssertEqual(loadErrors(text), [
            "agent.conf:2: key 'tcp_connection_timeout': expected a duration 1...600000 ms (a number, optionally with ms, s, m or h), got \"soon\"",
            "agent.conf:3: key 'net_send_max_bytes': expected a size 1024...1073741824 bytes (a number, optionally with K, M or G), got \"10\"",
            "agent.conf:4: key 'capture': expected on or off (also true/false, yes/no), got \"maybe\"",
            "agent.conf:5: key 'log_format': expected one of text, json, got \"xml\"",
            "agent.conf:6: key 'ipa_bind': expected a comma-separated list of IP addresses ('localhost' is not an IP address), got \"127.0.0.1, localhost\"",
            "agent.conf:7: key 'listen': expected an address host:port or host (port 6600), got \"0.0.0.0:99999\"",
            "agent.conf:8: key 'server_host': expected a comma-separated list of host names or IP addresses (an element is empty), got \",\"",
        ])
    }

    func testUnknownKeyWithSuggestion() {
        XCTAssertEqual(loadErrors("access_key = k\nsever_port = 1\n"),
                       ["agent.conf:2: unknown key 'sever_port' (did you mean 'server_port'?)"])
        XCTAssertEqual(loadErrors("access_key = k\nServer_Port = 1\n"),
                       ["agent.conf:2: unknown key 'Server_Port' (did you mean 'server_port'?)"])
    }

    func testUnknownKeyWithoutSuggestion() {
        XCTAssertEqual(loadErrors("access_key = k\nbanana = 1\n"), ["agent.conf:2: unknown key 'banana'"])
    }

    func testDuplicateKeyInOneFile() {
        XCTAssertEqual(loadErrors("access_key = k\nserver_port = 1\n\nserver_port = 2\n"),
                       ["agent.conf:4: key 'server_port': set twice (first at line 2)"])
    }

    func testAllErrorsAreReportedTogether() {
        let errors = loadErrors("server_port = x\nbogus = 1\nno equals here\n")
        XCTAssertEqual(errors, [
            "agent.conf:3: expected 'key = value', got \"no equals here\"",
            "agent.conf:1: key 'server_port': expected an integer 1...65535, got \"x\"",
            "agent.conf:2: unknown key 'bogus'",
            "agent.conf: key 'access_key': required but not set (set it in the configuration file, in VIGIL_ACCESS_KEY or with --set access_key=…)",
        ])
    }

    /// A program's own checks run in the same load as the per-key ones, on
    /// the keys that passed; a check whose key failed is not run.
    func testChecksRunWithTheKeyErrorsInOneLoad() {
        let minMax = ConfigCheck(keys: ["reconnect_interval_min", "reconnect_interval_max"]) { c in
            c.int("reconnect_interval_min") <= c.int("reconnect_interval_max") ? []
                : [c.invalid("reconnect_interval_min", expected: "at most reconnect_interval_max", got: "\(c.int("reconnect_interval_min"))")]
        }
        let secret = ConfigCheck(keys: ["access_key"]) { c in
            c.string("access_key").contains(".") ? [] : [c.invalid("access_key", expected: "<project>.<secret>", got: c.string("access_key"))]
        }
        let schema = ConfigSchema(keys: agentLikeSchema().keys + [
            ConfigKey("reconnect_interval_min", .milliseconds(1...60_000), default: "5000"),
            ConfigKey("reconnect_interval_max", .milliseconds(1...60_000), default: "10000"),
        ])
        func errors(_ text: String) -> [String] {
            do {
                _ = try schema.load(text: text, path: "agent.conf", checks: [minMax, secret])
                return []
            } catch {
                return error.errors.map(\.description)
            }
        }
        XCTAssertEqual(errors("access_key = nodot\nserver_port = x\nreconnect_interval_min = 9000\nreconnect_interval_max = 1000\nbogus = 1\n"), [
            "agent.conf:2: key 'server_port': expected an integer 1...65535, got \"x\"",
            "agent.conf:5: unknown key 'bogus'",
            "agent.conf:3: key 'reconnect_interval_min': expected at most reconnect_interval_max, got \"9000\"",
            "agent.conf:1: key 'access_key': expected <project>.<secret>, got <redacted>",
        ])
        // The max failed on its own: the pair is not judged against its default.
        XCTAssertEqual(errors("access_key = a.b\nreconnect_interval_min = 20000\nreconnect_interval_max = soon\n").count, 1)
        XCTAssertEqual(errors("access_key = a.b\n"), [])
    }

    func testRequiredKeyMissingWithoutAFile() {
        XCTAssertEqual(loadErrors("", schema: agentLikeSchema(environment: false)).last,
                       "agent.conf: key 'access_key': required but not set (set it in the configuration file or with --set access_key=…)")
        do {
            _ = try agentLikeSchema().load(text: nil, path: "")
            XCTFail("expected an error")
        } catch {
            XCTAssertEqual(error.description, "key 'access_key': required but not set (set it in the configuration file, in VIGIL_ACCESS_KEY or with --set access_key=…)")
        }
    }

    func testInvalidRequiredKeyIsNotAlsoReportedMissing() {
        XCTAssertEqual(loadErrors("access_key =\n"), ["agent.conf:1: key 'access_key': expected a non-empty string, got <redacted>"])
    }

    func testSecretValueIsNeverEchoed() {
        let errors = loadErrors("access_key = \"\"\n", overrides: [(key: "access_key", value: "")])
        XCTAssertEqual(errors.count, 2)
        XCTAssertTrue(errors.allSatisfy { $0.hasSuffix("got <redacted>") }, "\(errors)")
    }

    func testLayeringDefaultsFileEnvironmentSet() throws {
        let text = "access_key = from-file\nserver_port = 7000\nagent_name = file\ncapture = off\n"
        let env = ["VIGIL_SERVER_PORT": "7001", "VIGIL_AGENT_NAME": "env", "VIGIL_LOG_FORMAT": "",
                   "VIGIL_UNRELATED": "ignored", "VIGIL_STATIC": "1"]
        let c = try agentLikeSchema().load(text: text, path: "agent.conf", environment: env,
                                           overrides: [(key: "agent_name", value: "set")])
        XCTAssertEqual(c.int("server_port"), 7001)
        XCTAssertEqual(c.origin("server_port"), .environment(variable: "VIGIL_SERVER_PORT"))
        XCTAssertEqual(c.string("agent_name"), "set")
        XCTAssertEqual(c.origin("agent_name"), .commandLine)
        XCTAssertFalse(c.bool("capture"))
        XCTAssertEqual(c.origin("capture"), .file(path: "agent.conf", line: 4))
        XCTAssertEqual(c.string("log_format"), "text", "an empty variable counts as unset")
        XCTAssertEqual(c.origin("log_format"), .default)
        XCTAssertEqual(c.origin("access_key")?.name, "file")
    }

    func testEnvironmentIgnoredWithoutPrefix() throws {
        let c = try agentLikeSchema(environment: false).load(text: "access_key = k", path: "collector.conf",
                                                             environment: ["VIGIL_SERVER_PORT": "7001"])
        XCTAssertEqual(c.int("server_port"), 6600)
    }

    func testEnvironmentErrorsNameTheVariable() {
        XCTAssertEqual(loadErrors("access_key = k", environment: ["VIGIL_CAPTURE": "sometimes"]),
                       ["environment VIGIL_CAPTURE: key 'capture': expected on or off (also true/false, yes/no), got \"sometimes\""])
    }

    func testSetErrors() {
        XCTAssertEqual(loadErrors("access_key = k", overrides: [(key: "server_prt", value: "1")]),
                       ["--set: unknown key 'server_prt' (did you mean 'server_port'?)"])
        XCTAssertEqual(loadErrors("access_key = k", overrides: [(key: "server_port", value: "0")]),
                       ["--set: key 'server_port': expected an integer 1...65535, got \"0\""])
        XCTAssertEqual(loadErrors("access_key = k", overrides: [(key: "capture", value: "on"), (key: "capture", value: "off")]),
                       ["--set: key 'capture': given twice with --set"])
    }

    func testFileOnDisk() throws {
        let path = "/tmp/vigil-config-test-\(getpid()).conf"
        defer { unlink(path) }
        let text = "access_key = k\nserver_port = 6611\n"
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        XCTAssertGreaterThanOrEqual(fd, 0)
        _ = text.withCString { write(fd, $0, strlen($0)) }
        close(fd)
        let c = try agentLikeSchema().load(file: path)
        XCTAssertEqual(c.int("server_port"), 6611)
        XCTAssertEqual(c.origin("server_port"), .file(path: path, line: 2))
    }

    func testUnreadableFile() {
        do {
            _ = try agentLikeSchema().load(file: "/nonexistent/agent.conf")
            XCTFail("expected an error")
        } catch {
            XCTAssertEqual(error.description, "/nonexistent/agent.conf: cannot read: No such file or directory")
        }
    }

    func testOversizedFileIsRefused() {
        guard case .failure(let e) = ConfigFileReader.read("/proc/self/exe", limit: 1024) else { return XCTFail() }
        XCTAssertEqual(e.description, "/proc/self/exe: larger than 1024 bytes")
    }

    func testProcessEnvironment() {
        setenv("VIGIL_CONFIG_TEST", "a=b", 1)
        defer { unsetenv("VIGIL_CONFIG_TEST") }
        XCTAssertEqual(ConfigEnvironment.current()["VIGIL_CONFIG_TEST"], "a=b")
    }
}
