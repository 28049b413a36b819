// Agent-local policy keys at load: defaults (exec off, no variables, the
// default remote list), and a clear error naming the bad value for a
// VIGIL_* variable in monitor_env, a relative exec directory, or a policy
// key in remote_config. Remote limits: loopback only for ipa_bind, maxima
// for queue sizes and buffers.
import XCTest
import ConfigFile
import MonitorRunners
@testable import Agent

final class AgentPolicyConfigTests: XCTestCase {
    let key = "access_key = demo.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n"

    func load(_ text: String) throws -> AgentSettings {
        try AgentSettings(AgentSchema.schema.load(text: key + text, path: "agent.conf", checks: AgentSettings.checks))
    }

    func errors(_ text: String) -> [String] {
        do {
            _ = try load(text)
            return []
        } catch let e as ConfigErrors {
            return e.errors.map(\.description)
        } catch {
            return ["\(error)"]
        }
    }

    func testDefaultsAllowNothing() throws {
        let s = try load("")
        XCTAssertEqual(s.monitorPolicy.exec, .disabled)
        XCTAssertEqual(s.monitorPolicy.environment, [])
        XCTAssertEqual(s.remote.allowed, Set(AgentSchema.defaultRemoteConfig))
        XCTAssertFalse(s.remote.allowed.contains("groups"))
        XCTAssertFalse(s.remote.allowed.contains("agent_name"))
        XCTAssertFalse(s.remote.allowed.contains("server_host"))
    }

    func testPolicyValues() throws {
        let s = try load("exec_monitors = /usr/lib/vigil/monitors, /opt/m\nmonitor_env = API_TOKEN, DB_PASS\nremote_config = groups, log_level\n")
        XCTAssertEqual(s.monitorPolicy.exec, .directories(["/usr/lib/vigil/monitors", "/opt/m"]))
        XCTAssertEqual(s.monitorPolicy.environment, ["API_TOKEN", "DB_PASS"])
        XCTAssertEqual(s.remote.allowed, ["groups", "log_level"])
    }

    func testBadPolicyValuesAreClearErrors() {
        let e = errors("monitor_env = API_TOKEN, VIGIL_ACCESS_KEY\nexec_monitors = monitors\nremote_config = log_level, exec_monitors, access_key, server_port, nope\n")
        XCTAssertEqual(e.count, 6, "\(e)")
        XCTAssertTrue(e.contains { $0.hasPrefix("agent.conf:2: key 'monitor_env'") && $0.contains("VIGIL_ACCESS_KEY") && $0.contains("never available to monitors") }, "\(e)")
        XCTAssertTrue(e.contains { $0.contains("'exec_monitors'") && $0.contains("absolute directory paths") && $0.contains("monitors") }, "\(e)")
        for bad in ["exec_monitors", "access_key", "server_port", "nope"] {
            XCTAssertTrue(e.contains { $0.contains("'remote_config'") && $0.hasSuffix("got \"\(bad)\"") }, "\(bad): \(e)")
        }
        XCTAssertFalse(errors("monitor_env = vigil_token\n").isEmpty, "any spelling of VIGIL_")
    }

    func testRemoteLimits() {
        let p = RemotePolicy(allowed: Set(AgentSchema.defaultRemoteConfig))
        XCTAssertEqual(p.refusals([("ipa_bind", "127.0.0.1, ::1, 127.1.2.3, ::ffff:127.0.0.1")]), [])
        XCTAssertEqual(p.refusals([("ipa_bind", "127.0.0.1, 0.0.0.0")]).map(\.detail),
                       ["only loopback addresses when set remotely (got 0.0.0.0); other addresses only in the agent's own configuration"])
        XCTAssertEqual(p.refusals([("ipa_bind", "::")]).count, 1)
        XCTAssertEqual(p.refusals([("net_send_queue2_size", "65536"), ("ipa_rcvbuf", "16M")]), [])
        XCTAssertEqual(p.refusals([("net_send_queue2_size", "65537"), ("net_send_max_bytes", "17M")]).count, 2)
        XCTAssertEqual(p.refusals([("groups", "a")]).map(\.key), ["groups"])
        XCTAssertEqual(p.refusals([("access_key", "x.y")]).map(\.key), ["access_key"])
    }
}
