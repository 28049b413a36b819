// PostgreSQLStore as a ClusterStore, two stores on one database standing
// for two collectors: a claim takes the agent with epoch + 1 whoever held
// it, the old holder's heartbeat reports it lost, a release by anyone but
// the holder changes nothing; a relayed command notifies its owner when it
// commits, is taken once, keeps its first outcome and notifies the asker;
// expired leases are reaped once; the heartbeat, sent no list of leases,
// renews every lease its collector id holds and nothing released, reports
// each taken session to the collector it was taken from until that one
// acknowledges it (oldest first, 2,000 a beat at most), and does
// neither for an instance that does not hold the id's row; a new process
// of an id releases what an earlier one left. Loop thread (the test's).
import XCTest
import Reactor
@testable import CollectorStore

final class PostgreSQLClusterTests: XCTestCase {
    private func server() throws -> TestPostgreSQL {
        guard let s = TestPostgreSQL.shared else { throw XCTSkip("no PostgreSQL server can run here") }
        return s
    }

    /// A fresh database and two stores on it, standing for collectors A and
    /// B on one loop; both closed when the test ends.
    private func twoCollectors() throws -> (TestPostgreSQL, String, EventLoop, PostgreSQLStore, PostgreSQLStore) {
        let pg = try server()
        let db = pg.freshDatabase()
        let loop = EventLoop()
        let a = try PostgreSQLStore.open(loop: loop, options: PostgreSQLOptions(conninfo: pg.socketConninfo(db)))
        let b = try PostgreSQLStore.open(loop: loop, options: PostgreSQLOptions(conninfo: pg.socketConninfo(db)))
        addTeardownBlock { [self] in close(a, on: loop); close(b, on: loop) }
        return (pg, db, loop, a, b)
    }

    private func presence(_ id: String, sessions: Int) -> CollectorPresence {
        CollectorPresence(id: id, startedMs: 1, listen: "127.0.0.1:1", httpListen: "127.0.0.1:2", sessions: sessions,
                          lagP99Us: 250, version: "test")
    }

    func testNewerEpochWinsAtOnceAndTheOldHolderLearnsIt() throws {
        let (pg, db, loop, a, b) = try twoCollectors()

        XCTAssertEqual(try wait(loop) { a.claimAgent("x", collector: "a", leaseMs: 10_000, completion: $0) }, 1)
        XCTAssertEqual(try wait(loop) { a.heartbeat(presence("a", sessions: 1), leaseMs: 10_000, acknowledging: [], completion: $0) }, HeartbeatAnswer(lost: [], pendingCommands: 0))
        XCTAssertEqual(try wait(loop) { a.agentOwners(["x", "y"], completion: $0) }["x"]?.collector, "a")
        // B claims while A's lease runs: B holds it now, with epoch 2.
        XCTAssertEqual(try wait(loop) { b.claimAgent("x", collector: "b", leaseMs: 10_000, completion: $0) }, 2)
        XCTAssertEqual(try wait(loop) { a.agentOwners(["x"], completion: $0) }["x"], AgentOwner(
            collector: "b", epoch: 2, leaseUntilMs: try XCTUnwrap(Int64(pg.scalar("SELECT lease_until_ms FROM agent_sessions", in: db) ?? ""))))
        let answer = try wait(loop) { a.heartbeat(presence("a", sessions: 1), leaseMs: 10_000, acknowledging: [], completion: $0) }
        XCTAssertEqual(answer.lost, [SessionLease(agent: "x", epoch: 1)])
        XCTAssertEqual(try wait(loop) { b.heartbeat(presence("b", sessions: 1), leaseMs: 10_000, acknowledging: [], completion: $0) }.lost, [])
        // A's late release does not free B's session; B's does.
        try wait(loop) { a.releaseAgent(SessionLease(agent: "x", epoch: 1), collector: "a", completion: $0) }
        XCTAssertEqual(try wait(loop) { a.agentOwners(["x"], completion: $0) }["x"]?.collector, "b")
        let members = try wait(loop) { a.clusterMembers(completion: $0) }
        XCTAssertEqual(members.map(\.presence.id), ["a", "b"])
        XCTAssertEqual(members.map(\.leasesHeld), [0, 1])
        XCTAssertEqual(members.first?.presence, presence("a", sessions: 1))
        XCTAssertLessThan(members.first?.heartbeatAgeMs ?? 99_999, 5_000)
        try wait(loop) { b.releaseAgent(SessionLease(agent: "x", epoch: 2), collector: "b", completion: $0) }
        XCTAssertEqual(try wait(loop) { a.agentOwners(["x"], completion: $0) }, [:])
        XCTAssertEqual(pg.scalar("SELECT epoch FROM agent_sessions WHERE agent_id = 'x'", in: db), "2", "the epoch stays")

        // A lease that expires without a release is reaped once.
        XCTAssertEqual(try wait(loop) { a.claimAgent("y", collector: "a", leaseMs: 1, completion: $0) }, 1)
        usleep(20_000)
        XCTAssertEqual(try wait(loop) { b.reapExpiredLeases(completion: $0) }, 1)
        XCTAssertEqual(try wait(loop) { a.reapExpiredLeases(completion: $0) }, 0)
    }

    func testTheHeartbeatRenewsByCollectorIDAndReportsEachTakenSessionOnce() throws {
        let (pg, db, loop, a, b) = try twoCollectors()
        let owners = { (agents: [String]) throws -> [String: String] in
            try self.wait(loop) { a.agentOwners(agents, completion: $0) }.mapValues(\.collector)
        }

        // Leases that would have expired at once are held as long as A beats.
        for x in ["x1", "x2", "x3"] { XCTAssertEqual(try wait(loop) { a.claimAgent(x, collector: "a", leaseMs: 1, completion: $0) }, 1) }
        try wait(loop) { a.releaseAgent(SessionLease(agent: "x3", epoch: 1), collector: "a", completion: $0) }
        usleep(20_000)
        XCTAssertEqual(try owners(["x1", "x2", "x3"]), [:])
        XCTAssertEqual(try wait(loop) { a.heartbeat(presence("a", sessions: 2), leaseMs: 10_000, acknowledging: [], completion: $0) },
                       HeartbeatAnswer(lost: [], pendingCommands: 0))
        XCTAssertEqual(try owners(["x1", "x2", "x3"]), ["x1": "a", "x2": "a"], "renewed by id; the released one stays released")

        // Taken by B, then x2 again by C from B: each holder hears of its own loss, once.
        XCTAssertEqual(try wait(loop) { b.claimAgent("x1", collector: "b", leaseMs: 10_000, completion: $0) }, 2)
        XCTAssertEqual(try wait(loop) { b.claimAgent("x2", collector: "b", leaseMs: 10_000, completion: $0) }, 2)
        XCTAssertEqual(try wait(loop) { b.claimAgent("x2", collector: "c", leaseMs: 10_000, completion: $0) }, 3)
        let lostByA = try wait(loop) { a.heartbeat(presence("a", sessions: 2), leaseMs: 10_000, acknowledging: [], completion: $0) }.lost
        XCTAssertEqual(Set(lostByA), [SessionLease(agent: "x1", epoch: 1), SessionLease(agent: "x2", epoch: 1)])
        XCTAssertEqual(try wait(loop) { a.heartbeat(presence("a", sessions: 0), leaseMs: 10_000, acknowledging: lostByA, completion: $0) }.lost,
                       [], "not again once acknowledged")
        XCTAssertEqual(try wait(loop) { b.heartbeat(presence("b", sessions: 1), leaseMs: 10_000, acknowledging: [], completion: $0) }.lost,
                       [SessionLease(agent: "x2", epoch: 2)])
        XCTAssertEqual(try wait(loop) {
            b.heartbeat(presence("b", sessions: 1), leaseMs: 10_000, acknowledging: [SessionLease(agent: "x2", epoch: 2)], completion: $0)
        }.lost, [])
        XCTAssertEqual(try owners(["x1", "x2"]), ["x1": "b", "x2": "c"], "a heartbeat renews only what its id holds")

        // An instance that does not hold its id's row renews nothing and takes no losses.
        var d1 = presence("d", sessions: 1)
        d1.instance = "h/1/one"
        XCTAssertNil(try a.registerCollector(d1, leaseMs: 10_000, replacing: nil))
        XCTAssertEqual(try wait(loop) { a.claimAgent("y", collector: "d", leaseMs: 1, completion: $0) }, 1)
        XCTAssertEqual(try wait(loop) { a.claimAgent("z", collector: "d", leaseMs: 1, completion: $0) }, 1)
        XCTAssertEqual(try wait(loop) { b.claimAgent("z", collector: "b", leaseMs: 10_000, completion: $0) }, 2)
        usleep(20_000)
        var d2 = d1
        d2.instance = "h/2/two"
        let displaced = try wait(loop) { b.heartbeat(d2, leaseMs: 10_000, acknowledging: [], completion: $0) }
        XCTAssertEqual(displaced.displacedBy?.instance, "h/1/one")
        XCTAssertEqual(displaced.lost, [])
        XCTAssertEqual(try owners(["y"]), [:], "not renewed by an instance without the row")
        let held = try wait(loop) { a.heartbeat(d1, leaseMs: 10_000, acknowledging: [], completion: $0) }
        XCTAssertNil(held.displacedBy)
        XCTAssertEqual(held.lost, [SessionLease(agent: "z", epoch: 1)], "not acknowledged: left for the new process below")
        XCTAssertEqual(try owners(["y"]), ["y": "d"])

        // A new process of the id holds no sessions: what the last one left is released.
        var d3 = d1
        d3.instance = "h/3/three"
        XCTAssertNil(try a.registerCollector(d3, leaseMs: 10_000, replacing: "h/1/one"))
        XCTAssertEqual(try owners(["y"]), [:])
        XCTAssertEqual(try wait(loop) { a.heartbeat(d3, leaseMs: 10_000, acknowledging: [], completion: $0) }, HeartbeatAnswer(lost: [], pendingCommands: 0))
        XCTAssertEqual(try owners(["y"]), [:])
        XCTAssertEqual(pg.scalar("SELECT count(*) FROM agent_sessions_taken", in: db), "0")
    }

    func testATakenSessionIsReportedUntilAcknowledgedOldestFirstAndBounded() throws {
        let (pg, db, loop, a, b) = try twoCollectors()
        let beat = { (store: PostgreSQLStore, id: String, acks: [SessionLease]) throws -> [SessionLease] in
            try self.wait(loop) { store.heartbeat(self.presence(id, sessions: 1), leaseMs: 10_000, acknowledging: acks, completion: $0) }.lost
        }
        for x in ["x1", "x2", "x3"] {
            XCTAssertEqual(try wait(loop) { a.claimAgent(x, collector: "a", leaseMs: 10_000, completion: $0) }, 1)
        }
        // Taken in the order x2, x3, x1 (a few ms apart): reported oldest first.
        for x in ["x2", "x3", "x1"] {
            XCTAssertEqual(try wait(loop) { b.claimAgent(x, collector: "b", leaseMs: 10_000, completion: $0) }, 2)
            usleep(3_000)
        }
        let taken = ["x2", "x3", "x1"].map { SessionLease(agent: $0, epoch: 1) }
        XCTAssertEqual(try beat(a, "a", []), taken)
        // That answer was lost on its way (nothing acknowledged): the next beat reports the same.
        XCTAssertEqual(try beat(a, "a", []), taken, "an answer lost loses nothing")
        // Acknowledging some forgets those only; another collector's pairs and
        // pairs already gone change nothing.
        XCTAssertEqual(try beat(a, "a", [taken[0], SessionLease(agent: "x3", epoch: 2), SessionLease(agent: "nope", epoch: 1)]),
                       [taken[1], taken[2]])
        XCTAssertEqual(try beat(a, "a", [taken[0]]), [taken[1], taken[2]], "acknowledging again is harmless")
        // A holds x1 again (epoch 3): the report of its old epoch stays as it was, the new lease is A's.
        XCTAssertEqual(try wait(loop) { a.claimAgent("x1", collector: "a", leaseMs: 10_000, completion: $0) }, 3)
        XCTAssertEqual(try beat(a, "a", [taken[1]]), [taken[2]])
        XCTAssertEqual(try wait(loop) { a.agentOwners(["x1"], completion: $0) }["x1"]?.epoch, 3)
        XCTAssertEqual(try beat(a, "a", [taken[2]]), [])
        XCTAssertEqual(try beat(a, "a", []), [], "acknowledged: not again")
        XCTAssertEqual(try beat(b, "b", []), [SessionLease(agent: "x1", epoch: 2)], "B's rows are B's alone")

        // At most 2,000 a beat, oldest first; acknowledging them brings the rest.
        XCTAssertNil(pg.execute("""
            INSERT INTO agent_sessions_taken(collector_id, agent_id, epoch, taken_ms)
            SELECT 'c', 'm' || lpad(i::text, 5, '0'), 1, 1000 + i FROM generate_series(1, 2005) AS i
            """, in: db))
        let first = try beat(a, "c", [])
        XCTAssertEqual(first.count, PostgreSQLStore.lostPerHeartbeat)
        XCTAssertEqual(first.first?.agent, "m00001")
        XCTAssertEqual(first.last?.agent, "m02000")
        XCTAssertEqual(try beat(a, "c", first).map(\.agent), ["m02001", "m02002", "m02003", "m02004", "m02005"])
    }

    func testACommandNotifiesItsOwnerIsTakenOnceAndKeepsItsFirstOutcome() throws {
        let pg = try server()
        let db = pg.freshDatabase()
        let loop = EventLoop()
        let owner = try PostgreSQLStore.open(loop: loop, options: PostgreSQLOptions(conninfo: pg.socketConninfo(db)))
        let asker = try PostgreSQLStore.open(loop: loop, options: PostgreSQLOptions(conninfo: pg.socketConninfo(db)))
        defer { close(owner, on: loop); close(asker, on: loop) }
        var ownerHeard: [String] = [], askerHeard: [String] = []
        var ownerUp = false, askerUp = false
        let l1 = try XCTUnwrap(owner.listenControl(collector: "own", notified: { ownerHeard.append($0) }, listening: { ownerUp = true }))
        let l2 = try XCTUnwrap(asker.listenControl(collector: "ask", notified: { askerHeard.append($0) }, listening: { askerUp = true }))
        defer { l1.close(); l2.close() }
        XCTAssertTrue(loop.run(until: { ownerUp && askerUp }, timeout: 10))

        let id = try wait(loop) {
            asker.submitControlCommand(ControlCommand(agent: "x", owner: "own", epoch: 3, kind: "capture_start", payload: "[]",
                                                      detail: "d", requestedBy: "alice", asker: "ask", remainingMs: 0),
                                       timeoutMs: 5_000, completion: $0)
        }
        XCTAssertTrue(loop.run(until: { ownerHeard == [String(id)] }, timeout: 10), "\(ownerHeard)")
        let taken = try wait(loop) { owner.takeControlCommands(owner: "own", completion: $0) }
        XCTAssertEqual(taken.map(\.id), [id])
        XCTAssertEqual(taken.first?.requestedBy, "alice")
        XCTAssertEqual(taken.first?.epoch, 3)
        XCTAssertGreaterThan(taken.first?.remainingMs ?? 0, 3_000)
        XCTAssertNil(taken.first?.result)
        XCTAssertEqual(try wait(loop) { owner.takeControlCommands(owner: "own", completion: $0) }, [], "taken once")

        let done = try wait(loop) { owner.finishControlCommand(id: id, result: "ok", message: "on", errors: "", notifyAsker: true, completion: $0) }
        XCTAssertEqual(done.result, "ok")
        XCTAssertTrue(loop.run(until: { askerHeard == [String(id)] }, timeout: 10), "\(askerHeard)")
        // The asker's deadline coming later changes nothing.
        let late = try wait(loop) { asker.finishControlCommand(id: id, result: "timeout", message: "", errors: "", notifyAsker: false, completion: $0) }
        XCTAssertEqual(late.result, "ok")
        XCTAssertEqual(late.message, "on")
        XCTAssertEqual(try wait(loop) { asker.controlCommand(id: id, completion: $0) }.result, "ok")
        XCTAssertEqual(try waitResult(loop) { asker.controlCommand(id: id + 1, completion: $0) }.failureValue, .notFound("control command \(id + 1)"))
        XCTAssertTrue(l1.isListening)
    }
}

private extension Result {
    var failureValue: Failure? { if case .failure(let e) = self { return e } else { return nil } }
}
