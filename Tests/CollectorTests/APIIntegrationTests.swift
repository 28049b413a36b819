// The HTTP API of a real collector: authentication, every endpoint, and
// control requests answered (or not) by a Wire client playing the agent.
import Foundation
import Glibc
import XCTest
import ConfigFile
import Wire

final class APIIntegrationTests: CollectorAPITestCase {
    func testAuthentication() throws {
        XCTAssertEqual(c.http("GET", "/healthz", token: "").status, 200)
        XCTAssertEqual(c.http("GET", "/healthz").body, "ok\n")
        XCTAssertEqual(c.http("GET", "/metrics", token: "").status, 200)
        for token in ["", "wrong", String(c.token.dropLast())] {
            let r = c.http("GET", "/api/v1/agents", token: token)
            XCTAssertEqual(r.status, 401, token)
            XCTAssertEqual(r.object["error"] as? String, "unauthorized")
            XCTAssertNotNil(r.object.index(forKey: "detail"))
        }
        let basic = c.http("GET", "/api/v1/agents", token: "", headers: ["Authorization": "Basic \(c.token)"])
        XCTAssertEqual(basic.status, 401)
        XCTAssertEqual(c.api("GET", "/agents").status, 200)
        XCTAssertEqual(c.api("GET", "/nothing").status, 404)
        XCTAssertEqual(c.api("DELETE", "/agents").status, 405)
        XCTAssertEqual(c.http("GET", "/elsewhere").status, 404)
        // The token file is private.
        var st = stat()
        XCTAssertEqual(stat(c.dataDir + "/admin_token", &st), 0)
        XCTAssertEqual(st.st_mode & 0o777, 0o600)
        XCTAssertTrue(c.log.contains("admin token written to \(c.dataDir)/admin_token") ||
                      c.log.contains("admin token written to /"), c.log)
    }

    func testAgentsCaptureAndAudit() throws {
        let client = try stoppedAgent("ctl-1")
        XCTAssertEqual((c.api("GET", "/agents").object["agents"] as? [[String: Any]])?.count, 1)
        XCTAssertEqual((c.api("GET", "/agents?project=acme").object["agents"] as? [[String: Any]])?.count, 1)
        XCTAssertEqual(c.api("GET", "/agents?project=other").status, 404, "an unknown project is named, not an empty list")
        let missing = c.api("GET", "/agents/nope")
        XCTAssertEqual(missing.status, 404)
        XCTAssertEqual(missing.object["error"] as? String, "not found")

        // Accepted.
        var pending = PendingHTTP(c, "POST", "/agents/ctl-1/capture", body: #"{"action":"start"}"#)
        let req = try XCTUnwrap(answerControl(client, ok: true, message: "capturing on eth0"))
        XCTAssertEqual(req.kind, .captureStart)
        var r = try XCTUnwrap(pending.wait())
        XCTAssertEqual(r.status, 200, r.body)
        XCTAssertEqual(r.object["result"] as? String, "ok")
        XCTAssertEqual(r.object["message"] as? String, "capturing on eth0")

        // Refused by the agent.
        pending = PendingHTTP(c, "POST", "/agents/ctl-1/capture", body: #"{"action":"stop"}"#)
        XCTAssertEqual(answerControl(client, ok: false, message: "not capturing")?.kind, .captureStop)
        r = try XCTUnwrap(pending.wait())
        XCTAssertEqual(r.status, 422, r.body)
        XCTAssertEqual((r.object["detail"] as? [String: Any])?["message"] as? String, "not capturing")

        // No answer.
        r = c.api("POST", "/agents/ctl-1/capture?timeout_ms=300", body: #"{"action":"start"}"#)
        XCTAssertEqual(r.status, 504, r.body)
        XCTAssertEqual(r.object["error"] as? String, "agent did not answer")
        // The late answer is ignored (counted), the session stays.
        _ = answerControl(client, ok: true)

        // Bad requests.
        XCTAssertEqual(c.api("POST", "/agents/ctl-1/capture", body: #"{"action":"pause"}"#).status, 422)
        XCTAssertEqual(c.api("POST", "/agents/ctl-1/capture", body: "{nope").status, 400)
        XCTAssertEqual(c.api("POST", "/agents/nope/capture", body: #"{"action":"start"}"#).status, 404)

        // Known but not connected.
        close(client.fd)
        XCTAssertTrue(c.eventually { (self.c.api("GET", "/agents/ctl-1").object["connected"] as? Bool) == false })
        r = c.api("POST", "/agents/ctl-1/capture", body: #"{"action":"start"}"#)
        XCTAssertEqual(r.status, 409, r.body)
        XCTAssertEqual((r.object["detail"] as? [String: Any])?["state"] as? String, "not_visible")

        // Every control action is in the audit table, with who and how it ended.
        let audit = c.http("GET", "/api/v1/audit?target=ctl-1", headers: ["X-Vigil-Actor": "alice"]).object["audit"] as? [[String: Any]] ?? []
        let results = audit.map { "\($0["action"]!):\($0["result"]!)" }
        XCTAssertEqual(Array(results.reversed()), ["capture.start:ok", "capture.stop:rejected", "capture.start:timeout",
                                                   "capture.start:not_connected"])
        XCTAssertEqual(audit.first?["actor"] as? String, "api")
        XCTAssertEqual((c.api("GET", "/audit?action=capture.stop").object["audit"] as? [[String: Any]])?.count, 1)
    }

    func testAgentConfiguration() throws {
        let client = try stoppedAgent("cfg-1")
        var r = c.api("GET", "/agents/cfg-1/config")
        XCTAssertEqual(r.status, 200)
        let entries = r.object["config"] as? [[String: Any]] ?? []
        func entry(_ list: [[String: Any]], _ key: String) -> [String: Any]? { list.first { $0["key"] as? String == key } }
        XCTAssertEqual(entry(entries, "capture")?["value"] as? String, "on")
        XCTAssertEqual(entry(entries, "capture")?["origin"] as? String, "default")
        XCTAssertEqual(entry(entries, "access_key")?["secret"] as? Bool, true)
        XCTAssertEqual(entry(entries, "access_key")?["live"] as? Bool, false)
        XCTAssertTrue(entry(entries, "access_key")?["value"] is NSNull)
        XCTAssertEqual(entries.count, AgentSchema.keys.count)

        // Refused by the collector before anything is sent.
        for (body, key) in [(#"{"access_key":"x.y"}"#, "access_key"), (#"{"server_port":7000}"#, "server_port"),
                            (#"{"nope":1}"#, "nope"), (#"{"status_interval_ms":"soon"}"#, "status_interval_ms"),
                            (#"{"capture":[1]}"#, "capture")] {
            r = c.api("PUT", "/agents/cfg-1/config", body: body)
            XCTAssertEqual(r.status, 422, body)
            let detail = r.object["detail"] as? [String: Any]
            XCTAssertNotNil((detail?["keys"] as? [String: Any])?[key], r.body)
            XCTAssertEqual(detail?["by"] as? String, "collector")
        }
        XCTAssertTrue(client.records.isEmpty, "nothing was sent for an invalid update")

        // Accepted by the agent: stored as the agent's override.
        var pending = PendingHTTP(c, "PUT", "/agents/cfg-1/config", body: #"{"capture": false, "status_interval_ms": 5000}"#)
        let req = try XCTUnwrap(answerControl(client, ok: true))
        XCTAssertEqual(req.kind, .configUpdate)
        XCTAssertEqual(req.values, [KeyValue("capture", "off"), KeyValue("status_interval_ms", "5000")])
        r = try XCTUnwrap(pending.wait())
        XCTAssertEqual(r.status, 200, r.body)
        r = c.api("GET", "/agents/cfg-1/config")
        let after = r.object["config"] as? [[String: Any]] ?? []
        XCTAssertEqual(entry(after, "capture")?["value"] as? String, "off")
        XCTAssertEqual(entry(after, "capture")?["origin"] as? String, "agent")
        XCTAssertEqual(entry(after, "status_interval_ms")?["value"] as? String, "5000")

        // Rejected by the agent: its per-key messages come back.
        pending = PendingHTTP(c, "PUT", "/agents/cfg-1/config", body: #"{"ipa_port": 9}"#)
        _ = answerControl(client, ok: false, errors: [KeyValue("ipa_port", "address in use")], message: "kept the running configuration")
        r = try XCTUnwrap(pending.wait())
        XCTAssertEqual(r.status, 422, r.body)
        let detail = r.object["detail"] as? [String: Any]
        XCTAssertEqual((detail?["keys"] as? [String: Any])?["ipa_port"] as? String, "address in use")
        XCTAssertEqual(detail?["by"] as? String, "agent")
        XCTAssertEqual(entry(c.api("GET", "/agents/cfg-1/config").object["config"] as? [[String: Any]] ?? [], "ipa_port")?["origin"] as? String,
                       "default", "a rejected value is not stored")

        // No answer.
        r = c.api("PUT", "/agents/cfg-1/config?timeout_ms=300", body: #"{"capture": true}"#)
        XCTAssertEqual(r.status, 504)
        _ = answerControl(client, ok: true)  // the late answer: ignored, and not stored
        XCTAssertEqual(entry(c.api("GET", "/agents/cfg-1/config").object["config"] as? [[String: Any]] ?? [], "capture")?["value"] as? String,
                       "off")

        // null removes the agent's override: the agent gets the default back.
        pending = PendingHTTP(c, "PUT", "/agents/cfg-1/config", body: #"{"status_interval_ms": null}"#)
        client.clearEvents()
        let reset = try XCTUnwrap(answerControl(client, ok: true))
        XCTAssertEqual(reset.values, [KeyValue("status_interval_ms", "10000")])
        XCTAssertEqual(try XCTUnwrap(pending.wait()).status, 200)

        // Reconnecting: the stored overrides are pushed so the agent converges.
        close(client.fd)
        XCTAssertTrue(c.eventually { (self.c.api("GET", "/agents/cfg-1").object["connected"] as? Bool) == false })
        let again = try WireTestClient(port: c.sessionPort, key: key, hello: WireTestClient.hello("cfg-1"))
        XCTAssertNotNil(again.handshake())
        let converge = try XCTUnwrap(answerControl(again, ok: true))
        XCTAssertEqual(converge.kind, .configUpdate)
        XCTAssertEqual(converge.values, [KeyValue("capture", "off")])
        XCTAssertTrue(c.eventually {
            (self.c.api("GET", "/audit?action=config.converge").object["audit"] as? [[String: Any]])?.first?["result"] as? String == "ok"
        })
    }

    func testPatternsAreServedAndPushed() throws {
        let client = try stoppedAgent("pat-1")
        var r = c.api("GET", "/projects/acme/patterns")
        XCTAssertEqual(r.status, 200)
        XCTAssertEqual(r.object["version"] as? Int, 0)
        XCTAssertEqual((r.object["patterns"] as? [Any])?.count, 0)
        XCTAssertEqual(c.api("GET", "/projects/nope/patterns").status, 404)

        // Nothing set yet: the agent's version 0 is current.
        client.send([.patternsRequest(PatternsRequest(haveVersion: 0))])
        XCTAssertNotNil(client.waitForRecord { $0 == .patternsUnchanged(PatternsUnchanged(version: 0)) })

        let body = #"{"patterns":[{"method":"GET","host":"shop.example","path":"/cart/*","monitor":"shop","check":"cart"},"# +
                   #"{"host":"*","path":"*","monitor":"other","check":"all"}]}"#
        client.clearEvents()
        r = c.api("PUT", "/projects/acme/patterns", body: body)
        XCTAssertEqual(r.status, 200, r.body)
        XCTAssertEqual(r.object["version"] as? Int, 1)
        XCTAssertEqual((r.object["patterns"] as? [[String: Any]])?.last?["method"] as? String, "")
        // Pushed to the connected agent without asking.
        let pushed = client.waitForRecord { if case .patterns = $0 { return true }; return false }
        guard case .patterns(let p)? = pushed else { return XCTFail("no push: \(client.records)") }
        XCTAssertEqual(p.version, 1)
        XCTAssertEqual(p.rules.map(\.hostGlob), ["shop.example", "*"])
        XCTAssertEqual(p.rules.first?.pathGlob, "/cart/*")

        client.clearEvents()
        client.send([.patternsRequest(PatternsRequest(haveVersion: 1)), .patternsRequest(PatternsRequest(haveVersion: 0))])
        XCTAssertNotNil(client.waitForRecord { $0 == .patternsUnchanged(PatternsUnchanged(version: 1)) })
        XCTAssertNotNil(client.waitForRecord { if case .patterns(let x) = $0 { return x.version == 1 }; return false })
        XCTAssertEqual(c.api("GET", "/projects/acme/patterns").object["version"] as? Int, 1)

        r = c.api("PUT", "/projects/acme/patterns", body: #"{"patterns":[{"host":"","path":"*","monitor":"m","check":"c"}]}"#)
        XCTAssertEqual(r.status, 422)
        XCTAssertNotNil((r.object["detail"] as? [String: Any])?["patterns[0].host"], r.body)
        XCTAssertEqual(c.api("PUT", "/projects/acme/patterns", body: #"{"rules":[]}"#).status, 422)
        XCTAssertEqual(c.api("PUT", "/projects/nope/patterns", body: #"{"patterns":[]}"#).status, 404)

        // No monitors defined: the agent's version 0 is current.
        client.send([.scheduleRequest(ScheduleRequest(haveVersion: 0))])
        XCTAssertNotNil(client.waitForRecord { $0 == .scheduleUnchanged(ScheduleUnchanged(version: 0)) })
    }

    func testMonitorSchedulesAnsweredAndPushed() throws {
        let client = try stoppedAgent("sched-1")
        client.send([.scheduleRequest(ScheduleRequest(haveVersion: 0))])
        XCTAssertNotNil(client.waitForRecord { $0 == .scheduleUnchanged(ScheduleUnchanged(version: 0)) })

        // Two monitors: one in the agent's group ("default"), one not.
        let body = #"{"monitors":[{"id":"db","name":"db port","kind":"tcp","interval_secs":10,"timeout_secs":3,"#
            + #""spec":{"host":"127.0.0.1","port":5432}},"#
            + #"{"id":"eu","name":"eu only","kind":"tcp","interval_secs":10,"timeout_secs":3,"groups":["eu"],"#
            + #""spec":{"host":"127.0.0.1","port":5433}}]}"#
        client.clearEvents()
        XCTAssertEqual(c.api("PUT", "/projects/acme/monitors", body: body).status, 200)
        // Pushed without asking, only the agent's groups.
        let pushed = client.waitForRecord { if case .schedule = $0 { return true }; return false }
        guard case .schedule(let s)? = pushed else { return XCTFail("no push: \(client.records)") }
        XCTAssertEqual(s.version, 1)
        XCTAssertEqual(s.monitors.map(\.name), ["db port"])
        XCTAssertEqual(s.monitors.first?.target, "127.0.0.1:5432")
        XCTAssertEqual(s.monitors.first?.lastRunMs, 0)

        client.clearEvents()
        client.send([.scheduleRequest(ScheduleRequest(haveVersion: 1)), .scheduleRequest(ScheduleRequest(haveVersion: 0))])
        XCTAssertNotNil(client.waitForRecord { $0 == .scheduleUnchanged(ScheduleUnchanged(version: 1)) })
        XCTAssertNotNil(client.waitForRecord { if case .schedule(let x) = $0 { return x.version == 1 }; return false })
        XCTAssertEqual(c.metric(#"vigil_schedules_total{kind="pushed"}"#), 1)
    }

    func testMonitorsProjectsAndOwnConfig() throws {
        var r = c.api("GET", "/projects/acme/monitors")
        XCTAssertEqual(r.status, 200)
        XCTAssertEqual(r.object["version"] as? Int, 0)
        let body = #"{"monitors":[{"id":"m1","name":"home","kind":"http","interval_secs":60,"timeout_secs":5,"#
            + #""groups":["default"],"spec":{"method":"GET","url":"https://example.com/"}}]}"#
        r = c.api("PUT", "/projects/acme/monitors", body: body)
        XCTAssertEqual(r.status, 200, r.body)
        XCTAssertEqual(r.object["version"] as? Int, 1)
        r = c.api("GET", "/projects/acme/monitors")
        let monitors = r.object["monitors"] as? [[String: Any]]
        XCTAssertEqual(monitors?.first?["name"] as? String, "home")
        XCTAssertEqual((monitors?.first?["spec"] as? [String: Any])?["url"] as? String, "https://example.com/")
        XCTAssertEqual((r.object["state"] as? [String: [String: Any]])?["m1"]?["stale"] as? Bool, false)
        r = c.api("PUT", "/projects/acme/monitors", body: #"{"monitors":[{"name":"x"}]}"#)
        XCTAssertEqual(r.status, 422)
        XCTAssertNotNil((r.object["detail"] as? [String: Any])?["monitors[0].id"], r.body)
        XCTAssertEqual(c.api("PUT", "/projects/acme/monitors", body: #"{"monitors":[{"id":1},{"id":1}]}"#).status, 422)
        r = c.api("GET", "/projects/acme/monitors/m1/runs")
        XCTAssertEqual(r.status, 200, r.body)
        XCTAssertEqual((r.object["runs"] as? [Any])?.count, 0)
        XCTAssertEqual(c.api("GET", "/projects/acme/monitors/nope/runs").status, 404)
        XCTAssertEqual(c.api("PUT", "/projects/nope/monitors", body: #"{"monitors":[]}"#).status, 404)

        let projects = c.api("GET", "/projects").object["projects"] as? [[String: Any]]
        XCTAssertEqual(projects?.map { $0["name"] as? String }, ["acme"])

        let own = c.api("GET", "/config").object["config"] as? [[String: Any]] ?? []
        XCTAssertEqual(own.first { $0["key"] as? String == "listen" }?["origin"] as? String, "file")
        XCTAssertEqual(own.count, CollectorSchema.keys.count, "every collector key, the secret ones included (redacted)")
        XCTAssertEqual(own.first { $0["key"] as? String == "console_max_sessions" }?["value"] as? String, "64")
    }

    /// Patterns and monitors read their bodies the same way: a key given
    /// twice is refused (400, naming the key), not resolved one way by one
    /// endpoint and another way by the other; nothing is stored.
    func testDuplicateKeysAreRefusedNamingTheKey() throws {
        let cases: [(String, String, String)] = [
            ("/projects/acme/patterns", #"{"patterns":[{"host":"a.example","host":"*","path":"*","monitor":"m","check":"c"}]}"#, "host"),
            ("/projects/acme/patterns", #"{"patterns":[],"patterns":[{"host":"*","path":"*","monitor":"m","check":"c"}]}"#, "patterns"),
            ("/projects/acme/monitors", #"{"monitors":[{"id":"m1","name":"a","kind":"tcp","interval_secs":10,"timeout_secs":3,"#
                + #""spec":{"host":"127.0.0.1","port":5432,"port":5433}}]}"#, "port"),
            ("/projects/acme/monitors", #"{"monitors":[],"monitors":[]}"#, "monitors"),
        ]
        for (path, body, key) in cases {
            let r = c.api("PUT", path, body: body)
            XCTAssertEqual(r.status, 400, "\(path) \(body): \(r.body)")
            XCTAssertEqual(r.object["error"] as? String, "request body is not JSON", r.body)
            let detail = r.object["detail"] as? String ?? ""
            XCTAssertTrue(detail.contains("duplicate key \"\(key)\""), "\(path): \(detail)")
            XCTAssertTrue(detail.hasPrefix("invalid JSON at line 1, column "), detail)
        }
        XCTAssertEqual(c.api("GET", "/projects/acme/patterns").object["version"] as? Int, 0, "nothing stored")
        XCTAssertEqual(c.api("GET", "/projects/acme/monitors").object["version"] as? Int, 0, "nothing stored")
        // Other malformed bodies are refused alike on both.
        for path in ["/projects/acme/patterns", "/projects/acme/monitors"] {
            XCTAssertEqual(c.api("PUT", path, body: #"{"x":1,}"#).status, 400, path)
            XCTAssertEqual(c.api("PUT", path, body: "").status, 400, path)
        }
    }

    func testMeasurementsEventsAndStatusQueries() throws {
        let client = try stoppedAgent("data-1")
        let method = try client.session.stringRef("GET"), host = try client.session.stringRef("shop.example")
        client.send(client.batch(1) + [.dataBatch(DataBatch(sequence: 2, items: [
            .event(RawEvent(timestampUs: 1_700_000_000_000_000, method: method, host: host, path: "/cart/42", status: 200,
                            durationUs: 12_500)),
        ]))])
        XCTAssertNotNil(client.waitForRecord { $0 == .ack(Ack(sequence: 2)) })

        var r = c.api("GET", "/measurements?project=acme&agent=data-1")
        XCTAssertEqual(r.status, 200)
        let m = try XCTUnwrap((r.object["measurements"] as? [[String: Any]])?.first)
        XCTAssertEqual(m["monitor"] as? String, "shop")
        XCTAssertEqual(m["check"] as? String, "GET /cart")
        XCTAssertEqual(m["source"] as? String, "ipa")
        XCTAssertEqual(m["count"] as? Int, 10)
        XCTAssertEqual(m["sum_ms"] as? Double, 1500)
        XCTAssertEqual(m["p99_ms"] as? Double, 390)
        XCTAssertEqual(m["agent"] as? String, "data-1")
        XCTAssertEqual(m["ts"] as? Int, 1_700_000_010_000)
        for key in ["ts", "agent", "monitor", "check", "source", "count", "sum_ms", "min_ms", "max_ms", "p50_ms", "p95_ms", "p99_ms"] {
            XCTAssertNotNil(m[key], key)
        }
        // Microseconds on the wire and in the store, milliseconds here, as docs/API.md shows them.
        XCTAssertTrue(r.body.contains(#""source":"ipa","count":10,"sum_ms":1500,"min_ms":20,"max_ms":400,"p50_ms":100,"p95_ms":300,"p99_ms":390,"outcomes":{"2xx":0,"3xx":0,"4xx":0,"5xx":0,"error":0},"meta":{"window_ms":10000}}"#),
                      r.body)
        XCTAssertEqual((c.api("GET", "/measurements?monitor=shop&check=GET%20/cart&source=ipa&since=1700000000000").object["measurements"] as? [Any])?.count, 1)
        XCTAssertEqual((c.api("GET", "/measurements?monitor=other").object["measurements"] as? [Any])?.count, 0)
        r = c.api("GET", "/measurements?limit=lots")
        XCTAssertEqual(r.status, 400)
        XCTAssertNotNil((r.object["detail"] as? [String: Any])?["limit"])
        XCTAssertEqual(c.api("GET", "/measurements?limit=0").status, 400)

        r = c.api("GET", "/events?agent=data-1")
        let e = try XCTUnwrap((r.object["events"] as? [[String: Any]])?.first)
        XCTAssertEqual(e["path"] as? String, "/cart/42")
        XCTAssertEqual(e["method"] as? String, "GET")
        XCTAssertEqual(e["duration_ms"] as? Double, 12.5)
        XCTAssertEqual((e["meta"] as? [String: Any])?["status"] as? Int, 200)
        XCTAssertTrue(r.body.contains(#""path":"/cart/42","duration_ms":12.5,"status":200,"error_class":null,"meta":{"status":200}}"#), r.body)

        r = c.api("GET", "/agents/data-1/status?limit=5")
        XCTAssertEqual(r.status, 200)
        XCTAssertEqual(((r.object["status"] as? [[String: Any]])?.first?["status"] as? [String: Any])?["state"] as? String, "stopped")
        XCTAssertEqual(c.api("GET", "/agents/nope/status").status, 404)

        // A batch naming a string id that was never defined is refused and
        // the session closed (the agent re-sends it on a new session).
        client.send([.dataBatch(DataBatch(sequence: 3, items: [
            .aggregate(Aggregate(windowStartMs: 1, windowLengthMs: 1, monitor: 999, check: 0, source: 0, count: 1,
                                 sumUs: 1, minUs: 1, maxUs: 1, p50Us: 1, p95Us: 1, p99Us: 1)),
        ]))])
        XCTAssertTrue(client.waitForClose())
        XCTAssertEqual(client.peerError?.code, .protocolViolation)

        let metrics = c.http("GET", "/metrics").body
        for series in ["vigil_sessions{phase=\"established\"}", "vigil_handshakes_total", "vigil_handshake_failures_total{reason=\"wrong_key\"}",
                       "vigil_records_in_total", "vigil_bytes_in_total", "vigil_acks_total", "vigil_store_commit_seconds{quantile=\"0.99\"}",
                       "vigil_loop_lag_seconds{quantile=\"0.99\"}", "process_open_fds", "process_max_fds",
                       "vigil_agents{project=\"acme\",state=\"stopped\"}", "vigil_batches_total{outcome=\"stored\"}"] {
            XCTAssertTrue(metrics.contains(series + " "), series)
        }
        XCTAssertEqual(c.metric("vigil_acks_total").map { $0 >= 1 }, true)
    }
}
