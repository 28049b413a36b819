import XCTest
import Reactor
@testable import CollectorStore

final class StoreRegistryTests: XCTestCase {
    func testKeysCreateListRevoke() throws {
        let f = try StoreFixture(self)
        let k2 = try wait(f.loop) { f.store.createKey(project: "demo", secret: "secret-2", at: 3_000, completion: $0) }
        XCTAssertEqual(k2.project, "demo")
        XCTAssertNil(k2.revoked)
        let listed = try wait(f.loop) { f.store.keys(project: "demo", completion: $0) }
        XCTAssertEqual(listed.map(\.id).count, 2)
        XCTAssertEqual(try wait(f.loop) { f.store.keys(project: "nope", completion: $0) }, [])

        var active = try wait(f.loop) { f.store.activeKeys(project: "demo", completion: $0) }
        XCTAssertEqual(active.keys.map(\.secret), ["secret-1", "secret-2"])
        let revoked = try wait(f.loop) { f.store.revokeKey(id: k2.id, at: 4_000, completion: $0) }
        XCTAssertEqual(revoked.revoked, 4_000)
        XCTAssertEqual(try wait(f.loop) { f.store.revokeKey(id: k2.id, at: 5_000, completion: $0) }.revoked, 4_000,
                       "revoking twice keeps the first time")
        active = try wait(f.loop) { f.store.activeKeys(project: "demo", completion: $0) }
        XCTAssertEqual(active.keys.map(\.secret), ["secret-1"])
        XCTAssertEqual(active.projectId, f.projectId)
        XCTAssertFalse("\(active)".contains("secret-1"), "a logged ProjectKeys shows no secret")

        guard case .failure(.notFound("key 999")) = try waitResult(f.loop, { f.store.revokeKey(id: 999, at: 1, completion: $0) }) else { return XCTFail() }
        guard case .failure(.notFound("project 'nope'")) = try waitResult(f.loop, { f.store.activeKeys(project: "nope", completion: $0) }) else { return XCTFail() }
        guard case .failure(.invalid) = try waitResult(f.loop, { f.store.createKey(project: "", secret: "s", at: 1, completion: $0) }) else { return XCTFail() }
        XCTAssertEqual(try wait(f.loop) { f.store.projects(completion: $0) }.map(\.name), ["demo"])
        close(f.store)
    }

    func testKeyCreatedByAnotherProcessIsSeenWithoutRestart() throws {
        let f = try StoreFixture(self)
        let version = f.store.dataVersion
        // What `vigil-collector keys create` does while the collector runs:
        // its own loop and store on the same file.
        let cliLoop = EventLoop()
        let cli = try SQLiteStore.open(loop: cliLoop, options: StoreOptions(dataDirectory: f.dir.path))
        _ = try wait(cliLoop) { cli.createKey(project: "demo", secret: "from-cli", at: 9_000, completion: $0) }
        close(cli)
        XCTAssertNotEqual(f.store.dataVersion, version)
        let active = try wait(f.loop) { f.store.activeKeys(project: "demo", completion: $0) }
        XCTAssertEqual(active.keys.map(\.secret), ["secret-1", "from-cli"])
        close(f.store)
    }

    func testPatternsReplaceInOrderWithVersion() throws {
        let f = try StoreFixture(self)
        XCTAssertEqual(try wait(f.loop) { f.store.patterns(project: "demo", completion: $0) }, PatternSet(version: 0, updated: 0, patterns: []))
        let rules = [FilterPattern(method: "GET", host: "api.example.com", path: "/cart/*", monitor: "shop", check: "cart"),
                     FilterPattern(method: "*", host: "*.example.com", path: "/**", monitor: "shop", check: "other")]
        let v1 = try wait(f.loop) { f.store.replacePatterns(project: "demo", patterns: rules, at: 10, completion: $0) }
        XCTAssertEqual(v1, PatternSet(version: 1, updated: 10, patterns: rules))
        let v2 = try wait(f.loop) { f.store.replacePatterns(project: "demo", patterns: [rules[1]], at: 20, completion: $0) }
        XCTAssertEqual(v2.version, 2)
        XCTAssertEqual(try wait(f.loop) { f.store.patterns(project: "demo", completion: $0) }.patterns, [rules[1]])
        guard case .failure(.notFound) = try waitResult(f.loop, { f.store.replacePatterns(project: "nope", patterns: rules, at: 1, completion: $0) }) else {
            return XCTFail()
        }
        close(f.store)
    }

    func testMonitorDefinitionsVersioned() throws {
        let f = try StoreFixture(self)
        XCTAssertEqual(try wait(f.loop) { f.store.monitorDefinitions(project: "demo", completion: $0) }.version, 0)
        _ = try wait(f.loop) { f.store.replaceMonitorDefinitions(project: "demo", json: "[1]", at: 5, completion: $0) }
        let d = try wait(f.loop) { f.store.replaceMonitorDefinitions(project: "demo", json: "[2]", at: 6, completion: $0) }
        XCTAssertEqual(d, MonitorDefinitions(version: 2, updated: 6, json: "[2]"))
        guard case .failure(.notFound) = try waitResult(f.loop, { f.store.monitorDefinitions(project: "nope", completion: $0) }) else { return XCTFail() }
        close(f.store)
    }

    func testConfigOverridesPerProjectAndAgent() throws {
        let f = try StoreFixture(self)
        XCTAssertEqual(try wait(f.loop) {
            f.store.setConfigOverrides(project: "demo", agent: nil, values: ["capture": "off", "status_interval_ms": "5000"], at: 1, completion: $0)
        }, ["capture": "off", "status_interval_ms": "5000"])
        XCTAssertEqual(try wait(f.loop) {
            f.store.setConfigOverrides(project: "demo", agent: "a1", values: ["capture": "on"], at: 2, completion: $0)
        }, ["capture": "on"])
        XCTAssertEqual(try wait(f.loop) {
            f.store.setConfigOverrides(project: "demo", agent: nil, values: ["capture": nil, "log_level": "debug"], at: 3, completion: $0)
        }, ["status_interval_ms": "5000", "log_level": "debug"])
        XCTAssertEqual(try wait(f.loop) { f.store.configOverrides(project: "demo", agent: "a1", completion: $0) }, ["capture": "on"])
        XCTAssertEqual(try wait(f.loop) { f.store.configOverrides(project: "demo", agent: "a2", completion: $0) }, [:])
        close(f.store)
    }
}
