// SQLite-specific registry behaviour; the registry's contract is in the
// conformance suite (Conformance/StoreConformanceTests.swift).
import XCTest
import Reactor
@testable import CollectorStore

final class StoreRegistryTests: XCTestCase {
    func testKeyCreatedByAnotherProcessChangesDataVersion() throws {
        let f = try StoreFixture(self)
        let version = try f.sql(self) { try $0.scalar("PRAGMA data_version") }
        // What `vigil-collector keys create` does while the collector runs:
        // its own loop and store on the same file.
        let cliLoop = EventLoop()
        let cli = try SQLiteStore.open(loop: cliLoop, options: StoreOptions(dataDirectory: f.dir.path))
        _ = try wait(cliLoop) { cli.createKey(project: "demo", secret: "from-cli", at: 9_000, completion: $0) }
        close(cli)
        XCTAssertNotEqual(try f.sql(self) { try $0.scalar("PRAGMA data_version") }, version,
                          "PRAGMA data_version tells the store's connection another one committed")
        let active = try wait(f.loop) { f.store.activeKeys(project: "demo", completion: $0) }
        XCTAssertEqual(active.keys.map(\.secret), ["secret-1", "from-cli"])
        close(f.store)
    }
}
