// Two real vigil-collector processes on one PostgreSQL database (the test
// process's TestPostgreSQL), sharing the installation's collector key as a
// cluster's collectors do: an agent (a Wire client playing it) connected to
// A is controlled through B's API with A's answers; its state written by A
// shows through B within a second; a newer session on B closes A's stale
// one; after A is killed (SIGKILL) and the agent reconnects to B, B
// controls it at once; a process restarted after kill -9 holds none of the
// agents its last process held. And the single collector on SQLite: /cluster and
// `cluster status` show it alone.
import Foundation
import Glibc
import XCTest
import Wire

final class ClusterTests: XCTestCase {
    private func server() throws -> TestPostgreSQL {
        guard let s = TestPostgreSQL.shared else { throw XCTSkip("no PostgreSQL server can run here") }
        return s
    }

    /// Collectors `a` and `b` on a fresh database with one collector key.
    private func twoCollectors(_ pg: TestPostgreSQL) throws -> (CollectorProcess, CollectorProcess, String) {
        let db = pg.freshDatabase()
        let common = ["store = postgresql", "postgresql_url = \(pg.socketConninfo(db))", "status_write_interval_ms = 2000"]
        let a = try CollectorProcess(config: common + ["collector_id = a"])
        let dirB = CollectorProcess.makeDirectory()
        let dataB = dirB.appendingPathComponent("data").path
        try FileManager.default.createDirectory(atPath: dataB, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: a.dataDir + "/collector_key", toPath: dataB + "/collector_key")
        let b = try CollectorProcess(directory: dirB, config: common + ["collector_id = b"])
        return (a, b, db)
    }

    /// Answers the next ControlRequest of `kind` (a configuration push
    /// after a handshake is answered ok on the way).
    private func answerControl(_ client: WireTestClient, kind: ControlKind, ok: Bool, errors: [KeyValue] = [],
                               message: String = "") -> ControlRequest? {
        while true {
            guard case .controlRequest(let req)? = client.waitForRecord(timeout: 10, { if case .controlRequest = $0 { return true }; return false })
            else { return nil }
            client.clearEvents()
            guard req.kind == kind else {
                client.send([.controlResponse(ControlResponse(requestID: req.requestID, ok: true, errors: [], message: ""))])
                continue
            }
            client.send([.controlResponse(ControlResponse(requestID: req.requestID, ok: ok, errors: errors, message: message))])
            return req
        }
    }

    /// Sends a control request through `c` and plays the agent's answer.
    private func control(_ c: CollectorProcess, _ client: WireTestClient, _ method: String, _ path: String, _ body: String,
                         ok: Bool, errors: [KeyValue] = [], message: String = "") -> (HTTPResult?, ControlRequest?) {
        let pending = PendingHTTP(c, method, path, body: body)
        let kind: ControlKind = path.hasSuffix("/config") ? .configUpdate : body.contains("start") ? .captureStart : .captureStop
        let req = answerControl(client, kind: kind, ok: ok, errors: errors, message: message)
        return (pending.wait(), req)
    }

    func testControlThroughAnotherCollectorAndFailover() throws {
        let pg = try server()
        let (a, b, db) = try twoCollectors(pg)
        defer { a.stop(); b.stop(); a.removeDirectory(); b.removeDirectory() }
        let key = a.createKey(project: "acme")
        let client = try WireTestClient(port: a.sessionPort, key: key, hello: WireTestClient.hello("agent-1"))
        XCTAssertNotNil(client.handshake())
        client.send([.status(Status(timestampMs: 1, state: .stopped))])

        // B sees the agent, its state, and who holds it.
        XCTAssertTrue(b.eventually {
            let o = b.api("GET", "/agents/agent-1").object
            return o["collector"] as? String == "a" && o["state"] as? String == "stopped" && o["connected"] as? Bool == true
        }, b.api("GET", "/agents/agent-1").body)
        XCTAssertEqual(a.api("GET", "/agents/agent-1").object["collector"] as? String, "a")
        let listed = (b.api("GET", "/agents").object["agents"] as? [[String: Any]]) ?? []
        XCTAssertEqual(listed.first?["collector"] as? String, "a")
        XCTAssertEqual(pg.scalar("SELECT collector_id || ':' || epoch FROM agent_sessions WHERE agent_id = 'agent-1'", in: db), "a:1")

        // Capture start through B reaches the agent and answers as A does.
        let (viaB, reqB) = control(b, client, "POST", "/agents/agent-1/capture", #"{"action":"start"}"#,
                                   ok: true, message: "capturing")
        XCTAssertEqual(reqB?.kind, .captureStart)
        let (viaA, _) = control(a, client, "POST", "/agents/agent-1/capture", #"{"action":"start"}"#,
                                ok: true, message: "capturing")
        XCTAssertEqual(viaB?.status, 200, viaB?.body ?? "no answer")
        XCTAssertEqual(viaB?.status, viaA?.status)
        XCTAssertEqual(viaB?.body, viaA?.body)
        XCTAssertEqual(pg.scalar("SELECT count(*) FROM audit WHERE action = 'capture.start' AND result = 'ok'", in: db), "2",
                       "the owner audits a relayed request as a local one")

        // A refusal and a timeout come back with the same statuses.
        let (rejectedB, _) = control(b, client, "PUT", "/agents/agent-1/config", #"{"log_level":"debug"}"#,
                                     ok: false, errors: [KeyValue("log_level", "not now")], message: "busy")
        let (rejectedA, _) = control(a, client, "PUT", "/agents/agent-1/config", #"{"log_level":"debug"}"#,
                                     ok: false, errors: [KeyValue("log_level", "not now")], message: "busy")
        XCTAssertEqual(rejectedB?.status, 422, rejectedB?.body ?? "no answer")
        XCTAssertEqual(rejectedB?.body, rejectedA?.body)
        let (configB, reqConfig) = control(b, client, "PUT", "/agents/agent-1/config", #"{"log_level":"debug"}"#, ok: true)
        XCTAssertEqual(configB?.status, 200, configB?.body ?? "no answer")
        XCTAssertEqual(reqConfig?.kind, .configUpdate)
        XCTAssertEqual(configB?.object["result"] as? String, "ok")
        let slow = b.api("POST", "/agents/agent-1/capture?timeout_ms=700", body: #"{"action":"stop"}"#)
        XCTAssertEqual(slow.status, 504, slow.body)
        XCTAssertEqual((slow.object["detail"] as? [String: Any])?["timeout_ms"] as? Int, 700)
        XCTAssertEqual(pg.scalar("SELECT result FROM control_commands WHERE kind = 'capture_stop'", in: db), "timeout")
        client.clearEvents()

        // A state change written by A shows through B within a second.
        usleep(600_000)
        client.send([.status(Status(timestampMs: 2, state: .capturing))])
        let sent = Date()
        XCTAssertTrue(b.eventually(timeout: 1.0) { b.api("GET", "/agents/agent-1").object["state"] as? String == "capturing" },
                      "state through B after \(Date().timeIntervalSince(sent)) s")

        // A dies; the agent fails over to B, which holds it at once.
        a.kill9()
        XCTAssertTrue(client.waitForClose(timeout: 10))
        let again = try WireTestClient(port: b.sessionPort, key: key, hello: WireTestClient.hello("agent-1"))
        XCTAssertNotNil(again.handshake())
        XCTAssertTrue(b.eventually { b.api("GET", "/agents/agent-1").object["collector"] as? String == "b" })
        XCTAssertEqual(pg.scalar("SELECT collector_id || ':' || epoch FROM agent_sessions WHERE agent_id = 'agent-1'", in: db), "b:2")
        let (afterFailover, req) = control(b, again, "POST", "/agents/agent-1/capture", #"{"action":"stop"}"#, ok: true, message: "stopped")
        XCTAssertEqual(req?.kind, .captureStop)
        XCTAssertEqual(afterFailover?.status, 200, afterFailover?.body ?? "no answer")

        // The cluster as B and the command line see it.
        let cluster = b.api("GET", "/cluster")
        XCTAssertEqual(cluster.status, 200, cluster.body)
        let members = (cluster.object["collectors"] as? [[String: Any]]) ?? []
        XCTAssertEqual(members.map { $0["id"] as? String }, ["a", "b"])
        XCTAssertEqual(members.last?["leases"] as? Int, 1)
        XCTAssertEqual(members.last?["live"] as? Bool, true)
        let status = runCollectorCommand(["cluster", "status", "--config", b.configPath])
        XCTAssertEqual(status.status, 0, status.err)
        let lines = status.out.split(separator: "\n")
        XCTAssertTrue(lines.first?.hasPrefix("COLLECTOR") == true, status.out)
        XCTAssertTrue(lines.contains { $0.hasPrefix("b ") && $0.contains("live") }, status.out)
        XCTAssertTrue(lines.contains { $0.hasPrefix("a ") }, status.out)
    }

    func testNewerSessionElsewhereClosesTheStaleOne() throws {
        let pg = try server()
        let (a, b, db) = try twoCollectors(pg)
        defer { a.stop(); b.stop(); a.removeDirectory(); b.removeDirectory() }
        let key = a.createKey(project: "acme")
        XCTAssertNotEqual(a.sessionPort, 0, a.log)
        XCTAssertNotEqual(b.sessionPort, 0, b.log)
        let first = try WireTestClient(port: a.sessionPort, key: key, hello: WireTestClient.hello("agent-2"))
        XCTAssertNotNil(first.handshake())
        XCTAssertTrue(a.eventually { pg.scalar("SELECT collector_id FROM agent_sessions WHERE agent_id = 'agent-2'", in: db) == "a" })
        // The agent comes up on B while A still has its old connection open.
        let second = try WireTestClient(port: b.sessionPort, key: key, hello: WireTestClient.hello("agent-2"))
        XCTAssertNotNil(second.handshake())
        second.send([.status(Status(timestampMs: 1, state: .stopped))])
        XCTAssertTrue(first.waitForClose(timeout: 5), "A closes its stale session at its next heartbeat")
        XCTAssertEqual(first.peerError?.code, .duplicateAgent)
        XCTAssertFalse(second.peerClosed)
        XCTAssertEqual(pg.scalar("SELECT collector_id || ':' || epoch FROM agent_sessions WHERE agent_id = 'agent-2'", in: db), "b:2")
        // A's end of the stale session does not mark the agent gone.
        usleep(500_000)
        let o = a.api("GET", "/agents/agent-2").object
        XCTAssertEqual(o["collector"] as? String, "b")
        XCTAssertEqual(o["state"] as? String, "stopped")
        XCTAssertEqual(o["connected"] as? Bool, true)
        // Nor can A forget an agent B holds.
        let forget = a.api("DELETE", "/agents/agent-2")
        XCTAssertEqual(forget.status, 409, forget.body)
        XCTAssertEqual((forget.object["detail"] as? [String: Any])?["collector"] as? String, "b", forget.body)
        XCTAssertEqual((forget.object["detail"] as? [String: Any])?["state"] as? String, "stopped", forget.body)
    }

    func testATakenSessionReportedAgainLeavesTheAgentsNewerSessionOpenAndIsAcknowledged() throws {
        let pg = try server()
        let (a, b, db) = try twoCollectors(pg)
        defer { a.stop(); b.stop(); a.removeDirectory(); b.removeDirectory() }
        let key = a.createKey(project: "acme")
        let holder = { pg.scalar("SELECT collector_id || ':' || epoch FROM agent_sessions WHERE agent_id = 'agent-3'", in: db) }
        let takenRows = { pg.scalar("SELECT count(*) FROM agent_sessions_taken WHERE agent_id = 'agent-3'", in: db) }
        // A (epoch 1), then B (2): A closes its stale session; then A again (3): B closes its.
        let first = try WireTestClient(port: a.sessionPort, key: key, hello: WireTestClient.hello("agent-3"))
        XCTAssertNotNil(first.handshake())
        XCTAssertTrue(a.eventually { holder() == "a:1" })
        let second = try WireTestClient(port: b.sessionPort, key: key, hello: WireTestClient.hello("agent-3"))
        XCTAssertNotNil(second.handshake())
        XCTAssertTrue(first.waitForClose(timeout: 5))
        let third = try WireTestClient(port: a.sessionPort, key: key, hello: WireTestClient.hello("agent-3"))
        XCTAssertNotNil(third.handshake())
        XCTAssertTrue(second.waitForClose(timeout: 5))
        XCTAssertEqual(holder(), "a:3")
        // Each report is acknowledged by the collector's next heartbeat and then gone.
        XCTAssertTrue(a.eventually { takenRows() == "0" }, "\(takenRows() ?? "nil")")
        // The report of epoch 1 comes again, as after a heartbeat whose answer was
        // lost: A handles and acknowledges it, and its epoch-3 session stays open.
        XCTAssertNil(pg.execute("""
            INSERT INTO agent_sessions_taken(collector_id, agent_id, epoch, taken_ms) VALUES ('a', 'agent-3', 1, 1)
            """, in: db))
        XCTAssertTrue(a.eventually { takenRows() == "0" }, "acknowledged by a later beat")
        XCTAssertFalse(third.waitForClose(timeout: 1.5), "the session A holds again stays open")
        XCTAssertEqual(holder(), "a:3")
        let o = a.api("GET", "/agents/agent-3").object
        XCTAssertEqual(o["collector"] as? String, "a")
        XCTAssertEqual(o["connected"] as? Bool, true)
    }

    func testALostListenConnectionComesBackAndMissesNothing() throws {
        let pg = try server()
        let (a, b, db) = try twoCollectors(pg)
        defer { a.stop(); b.stop(); a.removeDirectory(); b.removeDirectory() }
        let key = a.createKey(project: "acme")
        let client = try WireTestClient(port: a.sessionPort, key: key, hello: WireTestClient.hello("agent-4"))
        XCTAssertNotNil(client.handshake())
        XCTAssertTrue(b.eventually { b.api("GET", "/agents/agent-4").object["collector"] as? String == "a" })
        XCTAssertEqual(a.metric("vigil_cluster_listening"), 1)
        // A's LISTEN connection dies; a request through B is sent meanwhile.
        XCTAssertEqual(pg.scalar("""
            SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE query = 'LISTEN "vigil_control_a"'
            """, in: db), "1")
        let (answer, req) = control(b, client, "POST", "/agents/agent-4/capture", #"{"action":"start"}"#, ok: true, message: "on")
        XCTAssertEqual(req?.kind, .captureStart)
        XCTAssertEqual(answer?.status, 200, answer?.body ?? "no answer")
        XCTAssertTrue(a.eventually { a.metric("vigil_cluster_listen_reconnects_total") == 1 && a.metric("vigil_cluster_listening") == 1 })
        XCTAssertEqual(b.metric("vigil_cluster_relayed_total{direction=\"out\"}"), 1)
        XCTAssertEqual(a.metric("vigil_cluster_relayed_total{direction=\"in\"}"), 1)
        XCTAssertEqual(b.metric("vigil_cluster_relayed_results_total{result=\"ok\"}"), 1)
    }

    func testAKilledCollectorsAgentsBecomeNotVisibleAndAStartingOneLeavesOthersAlone() throws {
        let pg = try server()
        let (a, b, db) = try twoCollectors(pg)
        defer { a.stop(); b.stop(); a.removeDirectory(); b.removeDirectory() }
        let key = a.createKey(project: "acme")
        let client = try WireTestClient(port: a.sessionPort, key: key, hello: WireTestClient.hello("agent-5"))
        XCTAssertNotNil(client.handshake())
        client.send([.status(Status(timestampMs: 1, state: .stopped))])
        XCTAssertTrue(b.eventually { b.api("GET", "/agents/agent-5").object["state"] as? String == "stopped" })
        // A third collector starting on the database leaves A's agent as it is.
        let c = try CollectorProcess(config: ["store = postgresql", "postgresql_url = \(pg.socketConninfo(db))", "collector_id = c"])
        defer { c.stop(); c.removeDirectory() }
        XCTAssertEqual(b.api("GET", "/agents/agent-5").object["state"] as? String, "stopped")
        XCTAssertEqual(pg.scalar("SELECT state FROM agents WHERE id = 'agent-5'", in: db), "stopped")
        // A dies and the agent does not come back: once A's lease expired
        // (10 s) a live collector marks it gone.
        a.kill9()
        let killed = Date()
        XCTAssertTrue(b.eventually(timeout: 20) {
            let o = b.api("GET", "/agents/agent-5").object
            return o["state"] as? String == "not_visible" && o["connected"] as? Bool == false && o["collector"] is NSNull
        }, b.api("GET", "/agents/agent-5").body)
        XCTAssertGreaterThanOrEqual(Date().timeIntervalSince(killed), 8, "not before the lease expired")
        let members = (b.api("GET", "/cluster").object["collectors"] as? [[String: Any]]) ?? []
        XCTAssertEqual(members.first { $0["id"] as? String == "a" }?["live"] as? Bool, false)
        XCTAssertEqual(pg.scalar("SELECT count(*) FROM agent_states WHERE agent_id = 'agent-5' AND state = 'not_visible'", in: db), "1")
    }

    func testAnAgentForgottenThroughAWhileItsSessionIsOnBIsClosedThere() throws {
        let pg = try server()
        let (a, b, db) = try twoCollectors(pg)
        defer { b.signal(SIGCONT); a.stop(); b.stop(); a.removeDirectory(); b.removeDirectory() }
        let key = a.createKey(project: "acme")
        let client = try WireTestClient(port: b.sessionPort, key: key, hello: WireTestClient.hello("agent-6"))
        XCTAssertNotNil(client.handshake())
        client.send([.status(Status(timestampMs: 1, state: .stopped))])
        XCTAssertTrue(a.eventually { a.api("GET", "/agents/agent-6").object["collector"] as? String == "b" })
        // B is paused past its lease: A no longer sees anyone hold the
        // agent, so forgetting it through A goes through.
        b.signal(SIGSTOP)
        XCTAssertTrue(a.eventually(timeout: 25) { a.api("GET", "/agents/agent-6").object["connected"] as? Bool == false },
                      a.api("GET", "/agents/agent-6").body)
        let forget = a.api("DELETE", "/agents/agent-6")
        XCTAssertEqual(forget.status, 200, forget.body)
        b.signal(SIGCONT)
        // B, back, learns it from the change log and closes the session.
        XCTAssertTrue(client.waitForClose(timeout: 3), "B keeps the session of a forgotten agent")
        XCTAssertEqual(client.peerError?.code, .rejected)
        XCTAssertTrue(client.peerError?.message.contains("forgotten") == true, "\(String(describing: client.peerError))")
        XCTAssertEqual(b.metric("vigil_cluster_forgotten_sessions_closed_total"), 1)
        // Its end writes nothing back: the agent stays forgotten on both, its lease released.
        usleep(1_500_000)
        XCTAssertEqual(pg.scalar("SELECT count(*) FROM agents WHERE id = 'agent-6'", in: db), "0")
        XCTAssertEqual(pg.scalar("SELECT count(*) FROM agent_states WHERE agent_id = 'agent-6'", in: db), "0")
        XCTAssertEqual(pg.scalar("SELECT count(*) FROM agent_sessions WHERE agent_id = 'agent-6' AND lease_until_ms > 0", in: db), "0")
        XCTAssertEqual(a.api("GET", "/agents/agent-6").status, 404)
        XCTAssertEqual(b.api("GET", "/agents/agent-6").status, 404)
    }

    func testAfterAFailoverAControlRequestThroughAThirdCollectorReachesTheAgentAtOnce() throws {
        let pg = try server()
        let (a, b, db) = try twoCollectors(pg)
        let dirC = CollectorProcess.makeDirectory()
        try FileManager.default.createDirectory(atPath: dirC.appendingPathComponent("data").path, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: a.dataDir + "/collector_key", toPath: dirC.appendingPathComponent("data/collector_key").path)
        let c = try CollectorProcess(directory: dirC, config: ["store = postgresql", "postgresql_url = \(pg.socketConninfo(db))",
                                                              "collector_id = c"])
        defer { a.stop(); b.stop(); c.stop(); a.removeDirectory(); b.removeDirectory(); c.removeDirectory() }
        let key = a.createKey(project: "acme")
        let client = try WireTestClient(port: a.sessionPort, key: key, hello: WireTestClient.hello("agent-7"))
        XCTAssertNotNil(client.handshake())
        XCTAssertTrue(c.eventually { c.api("GET", "/agents/agent-7").object["collector"] as? String == "a" })
        a.kill9()
        XCTAssertTrue(client.waitForClose(timeout: 10))

        // Whatever makes B's claim slow (here another transaction holding the
        // agent's ownership row for a while), the agent is told it is
        // connected only once B is recorded as its owner.
        let released = DispatchSemaphore(value: 0)
        Thread {
            _ = pg.execute("BEGIN; SELECT 1 FROM agent_sessions WHERE agent_id = 'agent-7' FOR UPDATE; SELECT pg_sleep(1.5); COMMIT",
                           in: db)
            released.signal()
        }.start()
        XCTAssertTrue(c.eventually {
            pg.scalar("SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query LIKE '%pg_sleep(1.5)%' AND pid <> pg_backend_pid()",
                      in: db) == "1"
        })
        let again = try WireTestClient(port: b.sessionPort, key: key, hello: WireTestClient.hello("agent-7"))
        XCTAssertNotNil(again.handshake())
        // Right after B's Welcome: a configuration update through C is
        // answered by the agent (not relayed to dead A, not staged as for
        // an agent nobody holds).
        let (answer, req) = control(c, again, "PUT", "/agents/agent-7/config", #"{"log_level":"debug"}"#, ok: true)
        XCTAssertEqual(req?.kind, .configUpdate)
        XCTAssertEqual(answer?.status, 200, answer?.body ?? "no answer")
        XCTAssertEqual(answer?.object["result"] as? String, "ok", answer?.body ?? "")
        XCTAssertEqual(released.wait(timeout: .now() + 10), .success)
        XCTAssertEqual(pg.scalar("SELECT collector_id || ':' || epoch FROM agent_sessions WHERE agent_id = 'agent-7'", in: db), "b:2")
    }

    func testAConfigurationUpdateRelayedToTheOwnerReachesTheAgentOnce() throws {
        let pg = try server()
        let (a, b, _) = try twoCollectors(pg)
        defer { a.stop(); b.stop(); a.removeDirectory(); b.removeDirectory() }
        let key = a.createKey(project: "acme")
        let client = try WireTestClient(port: a.sessionPort, key: key, hello: WireTestClient.hello("agent-8"))
        XCTAssertNotNil(client.handshake())
        XCTAssertTrue(b.eventually { b.api("GET", "/agents/agent-8").object["collector"] as? String == "a" })
        // Through B, held by A: the agent answers it once...
        let (answer, req) = control(b, client, "PUT", "/agents/agent-8/config", #"{"log_level":"debug"}"#, ok: true)
        XCTAssertEqual(answer?.status, 200, answer?.body ?? "no answer")
        XCTAssertEqual(req?.values, [KeyValue("log_level", "debug")])
        // ...and B's stored change, read back by A from the change log (4 polls
        // a second), does not send it again.
        let again = client.waitForRecord(timeout: 2) { if case .controlRequest = $0 { return true }; return false }
        XCTAssertNil(again, "pushed twice: \(String(describing: again))")
        XCTAssertGreaterThanOrEqual(a.metric(#"vigil_changes_applied_total{kind="config"}"#) ?? 0, 1, "A read B's change")
        // A change of another value made elsewhere still reaches the agent.
        let project = b.api("PUT", "/projects/acme/config", body: #"{"log_format":"json"}"#)
        XCTAssertEqual(project.status, 200, project.body)
        let pushed = answerControl(client, kind: .configUpdate, ok: true)
        XCTAssertEqual(pushed?.values, [KeyValue("log_format", "json")])
    }

    func testARestartAfterKill9HoldsNoneOfTheAgentsItsLastProcessHeld() throws {
        let pg = try server()
        let db = pg.freshDatabase()
        let config = ["store = postgresql", "postgresql_url = \(pg.socketConninfo(db))", "collector_id = solo"]
        let a = try CollectorProcess(config: config)
        defer { a.removeDirectory() }
        let key = a.createKey(project: "acme")
        let client = try WireTestClient(port: a.sessionPort, key: key, hello: WireTestClient.hello("agent-9"))
        XCTAssertNotNil(client.handshake())
        client.send([.status(Status(timestampMs: 1, state: .stopped))])
        XCTAssertTrue(a.eventually { a.api("GET", "/agents/agent-9").object["state"] as? String == "stopped" })
        XCTAssertEqual(pg.scalar("SELECT collector_id FROM agent_sessions WHERE agent_id = 'agent-9'", in: db), "solo")
        // The process dies with the agent's lease running; the next one of the
        // id (its heartbeat renews every lease under the id) holds no session:
        // the lease is released at its start, not kept alive nor left to expire.
        a.kill9()
        let killed = Date()
        let again = try CollectorProcess.restart(a, config: config)
        defer { again.stop() }
        XCTAssertTrue(again.eventually(timeout: 5) {
            let o = again.api("GET", "/agents/agent-9").object
            return o["state"] as? String == "not_visible" && o["collector"] is NSNull
        }, again.api("GET", "/agents/agent-9").body)
        XCTAssertLessThan(Date().timeIntervalSince(killed), 8, "before the old lease would have expired")
        usleep(2_500_000)
        XCTAssertEqual(pg.scalar("SELECT collector_id || ':' || lease_until_ms FROM agent_sessions WHERE agent_id = 'agent-9'", in: db),
                       ":0", "its heartbeats renew nothing it does not hold")
        XCTAssertTrue(again.api("GET", "/agents/agent-9").object["collector"] is NSNull)
    }

    func testTwoLiveCollectorsWithOneIDAreRefusedOrReported() throws {
        let pg = try server()
        let db = pg.freshDatabase()
        let config = ["store = postgresql", "postgresql_url = \(pg.socketConninfo(db))", "collector_id = twin"]
        let a = try CollectorProcess(config: config)
        defer { a.signal(SIGCONT); a.stop(); a.removeDirectory() }
        XCTAssertTrue(a.eventually { pg.scalar("SELECT instance FROM collectors WHERE id = 'twin'", in: db)?.isEmpty == false })

        // A second process with the same id refuses to start, naming the id and A.
        XCTAssertThrowsError(try CollectorProcess(config: config)) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains("collector_id 'twin' is in use by another live collector"), text)
            XCTAssertTrue(text.contains("listen 127.0.0.1:\(a.sessionPort)"), text)
            XCTAssertTrue(text.contains("http_listen 127.0.0.1:\(a.httpPort)"), text)
            XCTAssertTrue(text.contains("last heartbeat"), text)
        }
        XCTAssertEqual(a.http("GET", "/healthz").status, 200)

        // A paused past its lease: a second process may start with the id...
        a.signal(SIGSTOP)
        // Past A's lease; a loop, since a SIGCHLD (the refused process's exit) cuts a usleep short.
        let expired = Date().addingTimeInterval(11)
        while Date() < expired { usleep(50_000) }
        let b = try CollectorProcess(config: config)
        defer { b.stop(); b.removeDirectory() }
        a.signal(SIGCONT)
        // ...and A, back, finds its row held by B: it says so, counts it and is unhealthy.
        // (The pause itself shows as loop_stalled for a while.)
        func conflict(_ h: HTTPResult) -> [String: Any]? {
            (((h.object["detail"] as? [String: Any])?["reasons"] as? [[String: Any]]) ?? []).first { $0["cause"] as? String == "collector_id_conflict" }
        }
        XCTAssertTrue(a.eventually { conflict(a.http("GET", "/healthz")) != nil }, a.http("GET", "/healthz").body)
        let health = a.http("GET", "/healthz")
        XCTAssertEqual(health.status, 503)
        let cause = conflict(health)
        XCTAssertEqual(cause?["other_http_listen"] as? String, "127.0.0.1:\(b.httpPort)", health.body)
        XCTAssertGreaterThanOrEqual(a.metric("vigil_cluster_id_conflicts_total") ?? 0, 1)
        XCTAssertTrue(a.log.contains("another live collector runs with this collector_id"), a.log)
        XCTAssertEqual(b.http("GET", "/healthz").status, 200, b.http("GET", "/healthz").body)
        XCTAssertEqual(b.metric("vigil_cluster_id_conflicts_total"), 0)
        // The row stays B's.
        usleep(1_500_000)
        XCTAssertEqual(pg.scalar("SELECT http_listen FROM collectors WHERE id = 'twin'", in: db), "127.0.0.1:\(b.httpPort)")

        // A restart on this host right after kill -9 is not refused: the old process is gone.
        b.kill9()
        let again = try CollectorProcess.restart(b, config: config)
        defer { again.stop() }
        XCTAssertTrue(again.log.contains("the last process with this collector id is gone"), again.log)
    }

    func testSingleCollectorOnSQLite() throws {
        let c = try CollectorProcess(config: ["collector_id = solo"])
        defer { c.stop(); c.removeDirectory() }
        let key = c.createKey(project: "acme")
        let client = try WireTestClient(port: c.sessionPort, key: key, hello: WireTestClient.hello("agent-3"))
        XCTAssertNotNil(client.handshake())
        XCTAssertTrue(c.eventually { c.api("GET", "/agents/agent-3").object["collector"] as? String == "solo" })
        let cluster = c.api("GET", "/cluster")
        XCTAssertEqual(cluster.status, 200, cluster.body)
        XCTAssertEqual(cluster.object["shared"] as? Bool, false)
        let members = (cluster.object["collectors"] as? [[String: Any]]) ?? []
        XCTAssertEqual(members.map { $0["id"] as? String }, ["solo"])
        XCTAssertEqual(members.first?["sessions"] as? Int, 1)
        XCTAssertTrue(c.eventually { ((c.api("GET", "/cluster").object["collectors"] as? [[String: Any]])?.first?["leases"] as? Int) == 1 })
        // The count /metrics shows is kept as leases change (not counted
        // per scrape): it follows the session's end too.
        XCTAssertEqual(c.metric("vigil_cluster_leases"), 1)
        close(client.fd)
        XCTAssertTrue(c.eventually { c.metric("vigil_cluster_leases") == 0 })
        let status = runCollectorCommand(["cluster", "status", "--config", c.configPath])
        XCTAssertEqual(status.status, 0, status.err)
        XCTAssertTrue(status.out.contains("store sqlite: one collector") && status.out.contains("solo"), status.out)
        let bad = runCollectorCommand(["check-config", "--set", "collector_id=has space"])
        XCTAssertEqual(bad.status, 2)
        XCTAssertTrue(bad.err.contains("collector_id"), bad.err)
    }

    func testCheckConfigRefusesAPostgreSQLPasswordFileItCannotRead() throws {
        let dir = URL(fileURLWithPath: "/tmp/vigil-pw-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let missing = dir.appendingPathComponent("no-such-password").path
        let bad = runCollectorCommand(["check-config", "--set", "store=postgresql", "--set", "postgresql_url=dbname=vigil",
                                       "--set", "postgresql_password_file=\(missing)"])
        XCTAssertEqual(bad.status, 2, bad.err)
        XCTAssertTrue(bad.err.contains("postgresql_password_file") && bad.err.contains(missing) && bad.err.contains("no such file"), bad.err)
        // A directory is not a password file either (root reads any file, so permissions cannot stand in here).
        let notFile = runCollectorCommand(["check-config", "--set", "postgresql_password_file=\(dir.path)"])
        XCTAssertEqual(notFile.status, 2, notFile.err)
        XCTAssertTrue(notFile.err.contains("postgresql_password_file") && notFile.err.contains("not a regular file"), notFile.err)
        let file = dir.appendingPathComponent("password").path
        try "secret\n".write(toFile: file, atomically: true, encoding: .utf8)
        let ok = runCollectorCommand(["check-config", "--set", "postgresql_password_file=\(file)"])
        XCTAssertEqual(ok.status, 0, ok.err)
        XCTAssertFalse(ok.out.contains("secret"), ok.out)
    }
}
