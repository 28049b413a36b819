// SQLiteStore as a ClusterStore: one collector's database answers as a
// cluster of one — not shared, every claim epoch 1, nothing lost, nobody
// else owning an agent, no commands to relay, no LISTEN. Loop thread.
import XCTest
import Reactor
@testable import CollectorStore

final class SQLiteClusterTests: XCTestCase {
    func testAClusterOfOne() throws {
        let dir = TempDir()
        let loop = EventLoop()
        let store = try SQLiteStore.open(loop: loop, options: StoreOptions(dataDirectory: dir.path))
        defer { close(store) }
        XCTAssertFalse(store.isShared)
        XCTAssertEqual(try wait(loop) { store.claimAgent("x", collector: "c", leaseMs: 10_000, completion: $0) }, 1)
        let p = CollectorPresence(id: "c", startedMs: 1, listen: "", httpListen: "", sessions: 1, lagP99Us: 0, version: "t")
        XCTAssertEqual(try wait(loop) { store.heartbeat(p, leaseMs: 10_000, acknowledging: [], completion: $0) },
                       HeartbeatAnswer(lost: [], pendingCommands: 0))
        XCTAssertEqual(try wait(loop) { store.agentOwners(["x"], completion: $0) }, [:])
        XCTAssertEqual(try wait(loop) { store.clusterMembers(completion: $0) }, [])
        XCTAssertEqual(try wait(loop) { store.reapExpiredLeases(completion: $0) }, 0)
        XCTAssertEqual(try wait(loop) { store.takeControlCommands(owner: "c", completion: $0) }, [])
        let submitted = try waitResult(loop) {
            store.submitControlCommand(ControlCommand(agent: "x", owner: "d", epoch: 1, kind: "capture_start", payload: "", detail: "",
                                                      requestedBy: "", asker: "c", remainingMs: 0), timeoutMs: 1_000, completion: $0)
        }
        guard case .failure(.invalid) = submitted else { return XCTFail("\(submitted)") }
        XCTAssertNil(store.listenControl(collector: "c", notified: { _ in }, listening: {}))
    }
}
