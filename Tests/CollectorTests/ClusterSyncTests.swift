// Two real vigil-collector processes on one PostgreSQL database (and, last,
// two on one SQLite file): a change made through one reaches agents
// connected to the other through the change log (docs/COLLECTOR.md,
// "Changes between collectors") — filter rules, monitors, project and agent
// overrides, keys created and revoked — and an agent that fails over from
// one to the other is de-duplicated by the second. Latencies are printed;
// the bounds are generous so the tests are deterministic (the figures are
// in docs/PERFORMANCE.md, measured by scripts/cluster-sync-latency.sh).
import Foundation
import XCTest
import Wire

final class ClusterSyncTests: XCTestCase {
    private var a: CollectorProcess!
    private var b: CollectorProcess!
    private var key: AccessKey!
    private var db = ""
    private var pg: TestPostgreSQL!
    /// Generous, so the tests do not flake on a loaded machine; the target is one second.
    private let bound = 5.0

    override func setUpWithError() throws {
        guard let server = TestPostgreSQL.shared else { throw XCTSkip("no PostgreSQL server can run here") }
        pg = server
        db = pg.freshDatabase()
        let config = ["store = postgresql", "postgresql_url = \(pg.socketConninfo(db))"]
        a = try CollectorProcess(config: config)
        b = try CollectorProcess(directory: try ClusterSyncTests.sharingKey(of: a), config: config)
        key = a.createKey(project: "acme")
    }

    override func tearDown() {
        if let run = testRun, !run.hasSucceeded { print("collector A:\n\(a?.log ?? "")\ncollector B:\n\(b?.log ?? "")") }
        a?.stop(); a?.removeDirectory()
        b?.stop(); b?.removeDirectory()
    }

    /// A directory for a second collector of the same installation: the
    /// collectors of a cluster share the static key agents verify.
    static func sharingKey(of c: CollectorProcess) throws -> URL {
        let dir = CollectorProcess.makeDirectory()
        let data = dir.appendingPathComponent("data")
        try FileManager.default.createDirectory(at: data, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let target = data.appendingPathComponent("collector_key").path
        try FileManager.default.copyItem(atPath: c.dataDir + "/collector_key", toPath: target)
        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: target)
        return dir
    }

    private func agent(_ id: String, on c: CollectorProcess, key: AccessKey? = nil) throws -> WireTestClient {
        let client = try WireTestClient(port: c.sessionPort, key: key ?? self.key, hello: WireTestClient.hello(id))
        XCTAssertNotNil(client.handshake(), "handshake of \(id)")
        client.send([.status(Status(timestampMs: 1, state: .stopped))])
        XCTAssertTrue(c.eventually { (c.api("GET", "/agents/\(id)").object["connected"] as? Bool) == true })
        return client
    }

    /// Waits for a record on `client`; the seconds it took from `since`.
    private func arrival(_ client: WireTestClient, since: Date, _ what: String,
                         _ match: (Record) -> Bool) -> (Record?, Double) {
        let r = client.waitForRecord(timeout: bound, match)
        let took = Date().timeIntervalSince(since)
        print("cluster sync: \(what) reached the other collector's agent after \(String(format: "%.0f", took * 1000)) ms")
        return (r, took)
    }

    private func count(_ client: WireTestClient, _ match: (Record) -> Bool) -> Int { client.records.filter(match).count }

    func testFilterRulesChangedThroughOneCollectorReachAgentsOnTheOther() throws {
        let onB = try agent("b-1", on: b)
        let onA = try agent("a-1", on: a)
        let body = #"{"patterns":[{"method":"GET","host":"shop.example","path":"/cart/*","monitor":"shop","check":"cart"}]}"#
        let started = Date()
        let r = a.api("PUT", "/projects/acme/patterns", body: body)
        XCTAssertEqual(r.status, 200, r.body)
        let (pushed, took) = arrival(onB, since: started, "a filter-rule change") { if case .patterns = $0 { return true }; return false }
        guard case .patterns(let p)? = pushed else { return XCTFail("no push on B: \(onB.records)") }
        XCTAssertEqual(p.version, 1)
        XCTAssertEqual(p.rules.map(\.hostGlob), ["shop.example"])
        XCTAssertLessThan(took, bound)
        // A's own agent got it from A's API path; A reads its change back and does not push again.
        XCTAssertNotNil(onA.waitForRecord { if case .patterns = $0 { return true }; return false })
        XCTAssertTrue(a.eventually { (self.a.metric("vigil_changes_own_total") ?? 0) >= 1 })
        Thread.sleep(forTimeInterval: 0.6)   // two more polls of A
        _ = onA.read(until: { _ in false }, timeout: 0.2)
        XCTAssertEqual(count(onA) { if case .patterns = $0 { return true }; return false }, 1, "pushed once on A")
        XCTAssertEqual(count(onB) { if case .patterns = $0 { return true }; return false }, 1, "pushed once on B")
        XCTAssertEqual(b.metric(#"vigil_changes_applied_total{kind="patterns"}"#), 1)
        XCTAssertEqual(a.metric(#"vigil_changes_applied_total{kind="patterns"}"#), 0)
        // B's cache was dropped: an agent asking B gets the new rules, not the old "version 0".
        onB.clearEvents()
        onB.send([.patternsRequest(PatternsRequest(haveVersion: 1))])
        XCTAssertNotNil(onB.waitForRecord { $0 == .patternsUnchanged(PatternsUnchanged(version: 1)) })
    }

    func testMonitorsChangedThroughOneCollectorReachAgentsOnTheOther() throws {
        let onB = try agent("b-1", on: b)
        // B has the project's (empty) schedule cached.
        onB.send([.scheduleRequest(ScheduleRequest(haveVersion: 0))])
        XCTAssertNotNil(onB.waitForRecord { $0 == .scheduleUnchanged(ScheduleUnchanged(version: 0)) })
        onB.clearEvents()
        let body = #"{"monitors":[{"id":"db","name":"db port","kind":"tcp","interval_secs":10,"timeout_secs":3,"#
            + #""spec":{"host":"127.0.0.1","port":5432}}]}"#
        let started = Date()
        XCTAssertEqual(a.api("PUT", "/projects/acme/monitors", body: body).status, 200)
        let (pushed, took) = arrival(onB, since: started, "a monitor change") { if case .schedule = $0 { return true }; return false }
        guard case .schedule(let s)? = pushed else { return XCTFail("no push on B: \(onB.records)") }
        XCTAssertEqual(s.version, 1)
        XCTAssertEqual(s.monitors.map(\.name), ["db port"])
        XCTAssertLessThan(took, bound)
        XCTAssertEqual(b.metric(#"vigil_changes_applied_total{kind="monitors"}"#), 1)
    }

    /// Answers the next control request `ok`; the request, nil when none came in time.
    private func answer(_ client: WireTestClient, since: Date, _ what: String) -> (ControlRequest?, Double) {
        let (r, took) = arrival(client, since: since, what) { if case .controlRequest = $0 { return true }; return false }
        guard case .controlRequest(let req)? = r else { return (nil, took) }
        client.clearEvents()
        client.send([.controlResponse(ControlResponse(requestID: req.requestID, ok: true, errors: [], message: ""))])
        return (req, took)
    }

    func testOverridesChangedThroughOneCollectorReachAgentsOnTheOther() throws {
        let onB = try agent("b-1", on: b)
        // An agent override through A, which does not hold the agent: relayed
        // to B, its owner, and answered with the agent's own answer. The
        // request waits for that answer, so it runs beside the agent here.
        var started = Date()
        final class Answer: @unchecked Sendable { var status = 0, body = "" }   // written before `done`, read after
        let relayed = Answer()
        let done = DispatchSemaphore(value: 0)
        DispatchQueue.global().async { [a] in
            let x = a!.api("PUT", "/agents/b-1/config", body: #"{"status_interval_ms": 6000}"#)
            relayed.status = x.status
            relayed.body = x.body
            done.signal()
        }
        var (req, took) = answer(onB, since: started, "an agent override")
        XCTAssertEqual(req?.kind, .configUpdate)
        XCTAssertEqual(req?.values, [KeyValue("status_interval_ms", "6000")])
        XCTAssertLessThan(took, bound)
        XCTAssertEqual(done.wait(timeout: .now() + 15), .success)
        XCTAssertEqual(relayed.status, 200, relayed.body)
        // B also reads A's stored override from the change log and may push
        // the same values once more (idempotent for the agent); answer it.
        var repeats = 0
        if let again = answer(onB, since: Date(), "the stored override read back").0 {
            XCTAssertEqual(again.values, [KeyValue("status_interval_ms", "6000")], "only ever the same values")
            repeats = 1
        }

        // A project override through A: B pushes the key to its agent, except where the agent overrides it.
        started = Date()
        var r = a.api("PUT", "/projects/acme/config", body: #"{"capture": false, "status_interval_ms": 5000}"#)
        XCTAssertEqual(r.status, 200, r.body)
        XCTAssertEqual(r.object["pushed_to"] as? [String], [], "A holds none of the project's agents")
        (req, took) = answer(onB, since: started, "a project override")
        XCTAssertEqual(req?.values, [KeyValue("capture", "off")], "the agent's own status_interval_ms is kept")
        XCTAssertLessThan(took, bound)

        // Removing it: the default goes out.
        started = Date()
        XCTAssertEqual(a.api("PUT", "/projects/acme/config", body: #"{"capture": null}"#).status, 200)
        (req, _) = answer(onB, since: started, "a removed project override")
        XCTAssertEqual(req?.values, [KeyValue("capture", "on")])
        XCTAssertEqual(b.metric(#"vigil_changes_applied_total{kind="config"}"#), 3)
        let audit = b.api("GET", "/audit?target=b-1&action=config.converge").object["audit"] as? [[String: Any]] ?? []
        XCTAssertEqual(audit.count, 2 + repeats, "B's pushes are audited as B's")
    }

    func testAGapInTheChangeLogReloadsEverything() throws {
        let onB = try agent("b-1", on: b)
        XCTAssertTrue(b.eventually { (self.b.metric(#"vigil_change_polls_total{result="ok"}"#) ?? 0) >= 2 })
        // B stops reading; meanwhile two changes are made and the first's row
        // (and the one B saw last) are deleted, as retention would after a day.
        b.signal(SIGSTOP)
        var stopped = true
        defer { if stopped { b.signal(SIGCONT) } }
        // Let the SIGCHLD of B stopping arrive now, not in the middle of a request to A.
        let settled = Date().addingTimeInterval(0.3)
        while Date() < settled { usleep(20_000) }
        XCTAssertEqual(a.api("PUT", "/projects/acme/patterns", body: #"{"patterns":[{"host":"*","path":"/g","monitor":"m","check":"c"}]}"#).status, 200)
        XCTAssertEqual(a.api("PUT", "/projects/acme/monitors", body: #"{"monitors":[]}"#).status, 200)
        XCTAssertNil(pg.execute("DELETE FROM change_log WHERE seq < (SELECT max(seq) FROM change_log)", in: db))
        b.signal(SIGCONT)
        stopped = false
        let pushed = onB.waitForRecord(timeout: bound) { if case .patterns = $0 { return true }; return false }
        guard case .patterns(let p)? = pushed else { return XCTFail("no push after the gap: \(onB.records)") }
        XCTAssertEqual(p.version, 1)
        XCTAssertEqual(b.metric("vigil_change_reloads_total"), 1)
        XCTAssertTrue(b.log.contains("change log: rows were deleted before this collector read them"), b.log)
    }

    func testAKeyCreatedThroughOneCollectorWorksOnTheOtherAtOnce() throws {
        // B learns that project "fresh" does not exist (and caches that for a second).
        let early = try WireTestClient(port: b.sessionPort, key: a.foreignKey(project: "fresh"), hello: WireTestClient.hello("f-0"))
        XCTAssertNil(early.handshake(timeout: 5))
        XCTAssertTrue(b.eventually { (self.b.metric(#"vigil_handshake_failures_total{reason="unknown_project"}"#) ?? 0) >= 1 })
        let started = Date()
        let r = a.api("POST", "/projects/fresh/keys", body: #"{"create_project": true}"#)
        XCTAssertEqual(r.status, 200, r.body)
        let fresh = try AccessKey(parsing: try XCTUnwrap(r.object["access_key"] as? String))
        XCTAssertTrue(b.eventually(timeout: bound) { (self.b.metric(#"vigil_changes_applied_total{kind="key"}"#) ?? 0) >= 1 })
        print("cluster sync: a key creation reached the other collector after \(Int(Date().timeIntervalSince(started) * 1000)) ms")
        // At once: not after the negative cache's second.
        let client = try WireTestClient(port: b.sessionPort, key: fresh, hello: WireTestClient.hello("f-1"))
        XCTAssertNotNil(client.handshake(), "the key made through A works on B")
    }

    func testAKeyRevokedThroughOneCollectorEndsTheSessionOnTheOther() throws {
        let r = a.api("POST", "/projects/acme/keys", body: "")
        XCTAssertEqual(r.status, 200, r.body)
        let second = try AccessKey(parsing: try XCTUnwrap(r.object["access_key"] as? String))
        let id = try XCTUnwrap(r.object["id"] as? Int)
        let onB = try agent("b-2", on: b, key: second)
        let started = Date()
        XCTAssertEqual(a.api("DELETE", "/projects/acme/keys/\(id)").status, 200)
        XCTAssertTrue(onB.waitForClose(timeout: bound), "B ended the session")
        let took = Date().timeIntervalSince(started)
        print("cluster sync: a key revocation ended the other collector's session after \(Int(took * 1000)) ms")
        XCTAssertEqual(onB.peerError?.message, "access key revoked")
    }

    func testAnAgentFailingOverIsDeduplicatedByTheOtherCollector() throws {
        var onA: WireTestClient? = try WireTestClient(port: a.sessionPort, key: key, hello: WireTestClient.hello("fo-1"))
        XCTAssertNotNil(onA!.handshake())
        for seq in 1...3 { onA!.send(onA!.batch(UInt64(seq))) }
        XCTAssertNotNil(onA!.waitForRecord(timeout: 20) { $0 == .ack(Ack(sequence: 3)) })
        onA = nil   // A's session ends; the agent fails over to B
        let onB = try WireTestClient(port: b.sessionPort, key: key, hello: WireTestClient.hello("fo-1"))
        XCTAssertNotNil(onB.handshake())
        // Batch 3 was acknowledged by A, but the agent re-sends it (the ack raced the failover).
        onB.send(onB.batch(3))
        onB.send(onB.batch(4))
        XCTAssertNotNil(onB.waitForRecord(timeout: 20) { $0 == .ack(Ack(sequence: 4)) })
        XCTAssertNotNil(onB.records.first { $0 == .ack(Ack(sequence: 3)) }, "the duplicate is acknowledged")
        XCTAssertEqual(pg.scalar("SELECT count(*) FROM measurements", in: db), "4", "batch 3 stored once")
        XCTAssertEqual(b.metric(#"vigil_batches_total{outcome="duplicate"}"#), 1)
    }
}

/// The same on one SQLite file: changes written by another process —
/// `vigil-collector keys create`, or a second collector on the same data
/// directory — reach the running collector's agents.
final class SQLiteChangeFollowingTests: XCTestCase {
    func testChangesWrittenByAnotherProcessReachTheRunningCollectorsAgents() throws {
        let a = try CollectorProcess()
        defer { a.stop(); a.removeDirectory() }
        let key = a.createKey(project: "acme")
        let client = try WireTestClient(port: a.sessionPort, key: key, hello: WireTestClient.hello("s-1"))
        XCTAssertNotNil(client.handshake())

        // keys create in another process, for a project A has just been told does not exist.
        let early = try WireTestClient(port: a.sessionPort, key: a.foreignKey(project: "late"), hello: WireTestClient.hello("l-0"))
        XCTAssertNil(early.handshake(timeout: 5))
        let late = a.createKey(project: "late")
        XCTAssertTrue(a.eventually(timeout: 5) { (a.metric(#"vigil_changes_applied_total{kind="key"}"#) ?? 0) >= 2 })
        XCTAssertNotNil(try WireTestClient(port: a.sessionPort, key: late, hello: WireTestClient.hello("l-1")).handshake(),
                        "a key made by another process works at once")

        // A rule change written by another process on the same database.
        let other = try CollectorProcess(directory: a.directory)
        defer { other.stop() }
        client.clearEvents()
        let started = Date()
        let r = other.api("PUT", "/projects/acme/patterns", body: #"{"patterns":[{"host":"*","path":"/x","monitor":"m","check":"c"}]}"#)
        XCTAssertEqual(r.status, 200, r.body)
        let pushed = client.waitForRecord(timeout: 5) { if case .patterns = $0 { return true }; return false }
        print("sqlite change log: a rule change by another process reached the agent after \(Int(Date().timeIntervalSince(started) * 1000)) ms")
        guard case .patterns(let p)? = pushed else { return XCTFail("no push: \(client.records)") }
        XCTAssertEqual(p.version, 1)
        XCTAssertEqual(a.metric(#"vigil_changes_applied_total{kind="patterns"}"#), 1)
    }
}
