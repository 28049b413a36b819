// Alerts in a cluster: two real vigil-collector processes on one
// PostgreSQL database (TestPostgreSQL), the first holding the evaluation
// lease, the agent (a Wire client) on the second; a local webhook receiver
// that keeps every request it answers with its X-Vigil-Notification-Id.
// The lease holder is killed with SIGKILL at three moments — while a rule
// is pending, after its firing was delivered, and after a firing was stored
// but before it could be delivered (the receiver refuses connections until
// the kill) — and the survivor takes over: every notification arrives
// exactly once (counted by its id), and the records read through the
// survivor's API say so.
import Foundation
import XCTest
import Wire

/// A webhook receiver on 127.0.0.1:<port>: each POST it answers is one
/// line of <dir>/hooks.jsonl, `{"id": <X-Vigil-Notification-Id>, "body": …}`.
/// It writes <dir>/ready once listening.
let countingReceiverScript = #"""
import http.server, json, os, sys
port, directory = int(sys.argv[1]), sys.argv[2]
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        body = json.loads(self.rfile.read(n))
        line = json.dumps({"id": self.headers.get("X-Vigil-Notification-Id", ""), "body": body})
        with open(os.path.join(directory, "hooks.jsonl"), "a") as f:
            f.write(line + "\n")
        self.send_response(200); self.send_header("Content-Length", "2"); self.end_headers(); self.wfile.write(b"ok")
    def log_message(self, *a): pass
s = http.server.HTTPServer(("127.0.0.1", port), H)
open(os.path.join(directory, "ready"), "w").close()
s.serve_forever()
"""#

final class AlertClusterTests: XCTestCase {
    /// One delivered request: its header id, and each alert's event and notification_id.
    struct Hook { var header: String; var alerts: [(event: String, id: Int)] }

    private func hooks(_ dir: String) -> [Hook] {
        lines(dir + "/hooks.jsonl").compactMap { line in
            guard let o = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                  let body = o["body"] as? [String: Any], let alerts = body["alerts"] as? [[String: Any]] else { return nil }
            return Hook(header: o["id"] as? String ?? "",
                        alerts: alerts.map { ($0["event"] as? String ?? "", $0["notification_id"] as? Int ?? -1) })
        }
    }

    /// Requests per notification id of `event`.
    private func counts(_ dir: String, _ event: String) -> [Int: Int] {
        var out: [Int: Int] = [:]
        for h in hooks(dir) { for a in h.alerts where a.event == event { out[a.id, default: 0] += 1 } }
        return out
    }

    private struct Cluster {
        let holder: CollectorProcess
        let survivor: CollectorProcess
        let key: AccessKey
    }

    /// Two collectors on one fresh database; the first holds the lease
    /// before the second starts. Rounds every 300 ms: the lease lasts 900 ms.
    private func cluster() throws -> Cluster {
        guard let pg = TestPostgreSQL.shared else { throw XCTSkip("no PostgreSQL server can run here") }
        let db = pg.freshDatabase()
        let common = ["store = postgresql", "postgresql_url = \(pg.socketConninfo(db))", "alert_eval_interval_ms = 300",
                      "alert_group_wait_ms = 50"]
        let a = try CollectorProcess(config: common + ["alert_evaluator_id = collector-a"])
        XCTAssertTrue(a.eventually { a.metric("vigil_alert_lease_held") == 1 }, a.log)
        let b = try CollectorProcess(config: common + ["alert_evaluator_id = collector-b"])
        XCTAssertTrue(b.eventually { (b.metric("vigil_alert_rounds_total{role=\"standby\"}") ?? 0) >= 2 }, b.log)
        XCTAssertEqual(a.metric("vigil_alert_lease_held"), 1, "the first keeps the lease")
        // The agent's key from the survivor (an access key names its collector's key).
        return Cluster(holder: a, survivor: b, key: b.createKey(project: "acme"))
    }

    private func createRule(_ c: CollectorProcess, port: UInt16, forS: Int) throws -> Int {
        let rule = """
        {"name":"edge dark","condition":{"kind":"agent_state","agent":"edge-1","state":"not_visible","longer_than_s":0},
         "for_s":\(forS),"receivers":[{"type":"webhook","url":"http://127.0.0.1:\(port)/hooks/TOKEN"}]}
        """
        let created = c.api("POST", "/projects/acme/alerts", body: rule)
        XCTAssertEqual(created.status, 201, created.body)
        return try XCTUnwrap(created.object["id"] as? Int)
    }

    /// The agent connects to `c` and goes away: it is not_visible from then on.
    private func agentComesAndGoes(_ c: CollectorProcess, _ key: AccessKey) throws {
        var client: WireTestClient? = try WireTestClient(port: c.sessionPort, key: key, hello: WireTestClient.hello("edge-1"))
        XCTAssertNotNil(client?.handshake())
        XCTAssertTrue(c.eventually { (c.api("GET", "/agents/edge-1").object["connected"] as? Bool) == true })
        client = nil
        _ = client
    }

    private func state(_ c: CollectorProcess, _ rule: Int) -> String {
        (c.api("GET", "/projects/acme/alerts/\(rule)").object["state"] as? [String: Any])?["state"] as? String ?? ""
    }

    private func records(_ c: CollectorProcess, _ rule: Int) -> [[String: Any]] {
        c.api("GET", "/projects/acme/notifications?rule=\(rule)").object["notifications"] as? [[String: Any]] ?? []
    }

    private func receiver(_ dir: String, _ port: UInt16) throws -> LocalServer {
        let s = try LocalServer(python: countingReceiverScript, arguments: ["\(port)", dir], directory: dir)
        XCTAssertTrue(eventuallyTrue { FileManager.default.fileExists(atPath: dir + "/ready") })
        return s
    }

    private func eventuallyTrue(timeout: Double = 10, _ condition: () -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if condition() { return true }
            usleep(20_000)
        }
        return condition()
    }

    /// (a) The holder dies while the rule is pending: the survivor takes the
    /// lease over, carries the pending state on and fires once.
    func testKillingTheLeaseHolderWhilePendingFiresOnceFromTheSurvivor() throws {
        let c = try cluster()
        defer { c.holder.stop(); c.survivor.stop(); c.holder.removeDirectory(); c.survivor.removeDirectory() }
        let dir = c.survivor.directory.path
        let port = freeTCPPortForTest()
        let server = try receiver(dir, port)
        defer { server.stop() }
        let rule = try createRule(c.holder, port: port, forS: 4)
        try agentComesAndGoes(c.survivor, c.key)
        XCTAssertTrue(c.holder.eventually { self.state(c.holder, rule) == "pending" }, c.holder.log)
        c.holder.kill9()

        XCTAssertTrue(c.survivor.eventually(timeout: 20) { self.counts(dir, "firing").count == 1 }, c.survivor.log)
        XCTAssertEqual(c.survivor.metric("vigil_alert_lease_held"), 1, "the survivor took the lease over")
        usleep(1_500_000)  // several rounds more
        let firing = counts(dir, "firing")
        XCTAssertEqual(firing.count, 1, "one notification: \(firing)")
        XCTAssertEqual(firing.values.first, 1, "delivered once")
        let id = try XCTUnwrap(firing.keys.first)
        XCTAssertEqual(hooks(dir).first?.header, "\(id)", "the header carries the body's notification_id")
        let recs = records(c.survivor, rule)
        XCTAssertEqual(recs.count, 1, "\(recs)")
        XCTAssertEqual(recs.first?["id"] as? Int, id)
        XCTAssertEqual(recs.first?["result"] as? String, "sent")
        XCTAssertEqual(recs.first?["attempts"] as? Int, 1)
        XCTAssertEqual(state(c.survivor, rule), "firing")
    }

    /// (b) The holder dies after the firing was delivered: the survivor sends
    /// no second firing, and the resolved arrives once when the agent returns.
    func testKillingTheLeaseHolderAfterDeliveryNeitherRepeatsNorLosesTheResolved() throws {
        let c = try cluster()
        defer { c.holder.stop(); c.survivor.stop(); c.holder.removeDirectory(); c.survivor.removeDirectory() }
        let dir = c.survivor.directory.path
        let port = freeTCPPortForTest()
        let server = try receiver(dir, port)
        defer { server.stop() }
        let rule = try createRule(c.holder, port: port, forS: 0)
        try agentComesAndGoes(c.survivor, c.key)
        XCTAssertTrue(c.holder.eventually(timeout: 20) { self.counts(dir, "firing").count == 1 }, c.holder.log)
        XCTAssertTrue(c.holder.eventually { self.records(c.holder, rule).first?["result"] as? String == "sent" })
        c.holder.kill9()

        XCTAssertTrue(c.survivor.eventually(timeout: 20) { c.survivor.metric("vigil_alert_lease_held") == 1 }, c.survivor.log)
        usleep(1_500_000)  // several rounds holding the lease
        XCTAssertEqual(counts(dir, "firing").values.reduce(0, +), 1, "no second firing")
        XCTAssertEqual(c.survivor.metric("vigil_alert_notifications_taken_over_total"), 0, "nothing was left pending")

        // The agent returns: resolved, once.
        let client = try WireTestClient(port: c.survivor.sessionPort, key: c.key, hello: WireTestClient.hello("edge-1"))
        XCTAssertNotNil(client.handshake())
        XCTAssertTrue(c.survivor.eventually(timeout: 20) { self.counts(dir, "resolved").count == 1 }, c.survivor.log)
        usleep(1_000_000)
        XCTAssertEqual(counts(dir, "resolved").values.reduce(0, +), 1, "one resolved")
        XCTAssertEqual(counts(dir, "firing").values.reduce(0, +), 1)
        let recs = records(c.survivor, rule)
        XCTAssertEqual(recs.map { "\($0["event"] as? String ?? ""):\($0["result"] as? String ?? "")" }, ["resolved:sent", "firing:sent"])
        XCTAssertEqual(Set(recs.compactMap { $0["id"] as? Int }), Set(counts(dir, "firing").keys).union(counts(dir, "resolved").keys))
        _ = client
    }

    /// (c) The holder stored the firing (its outbox row pending) but could
    /// not deliver it — the receiver refuses connections — and dies: the
    /// survivor delivers it, once, recorded sent with both collectors'
    /// attempts under the one id.
    func testKillingTheLeaseHolderBeforeDeliveryLetsTheSurvivorDeliverOnce() throws {
        let c = try cluster()
        defer { c.holder.stop(); c.survivor.stop(); c.holder.removeDirectory(); c.survivor.removeDirectory() }
        let dir = c.survivor.directory.path
        let port = freeTCPPortForTest()  // nothing listens yet: the holder's attempts are refused
        let rule = try createRule(c.holder, port: port, forS: 0)
        try agentComesAndGoes(c.survivor, c.key)
        var pending: [String: Any] = [:]
        XCTAssertTrue(c.holder.eventually(timeout: 20) {
            pending = self.records(c.holder, rule).first ?? [:]
            return pending["result"] as? String == "pending" && (pending["attempts"] as? Int ?? 0) >= 1
        }, "\(pending) \(c.holder.log)")
        c.holder.kill9()
        let id = try XCTUnwrap(pending["id"] as? Int)
        let attemptsBefore = try XCTUnwrap(records(c.survivor, rule).first?["attempts"] as? Int)

        let server = try receiver(dir, port)
        defer { server.stop() }
        XCTAssertTrue(c.survivor.eventually(timeout: 20) { self.counts(dir, "firing")[id] == 1 }, c.survivor.log)
        XCTAssertTrue(c.survivor.eventually { self.records(c.survivor, rule).first?["result"] as? String == "sent" })
        usleep(1_500_000)
        XCTAssertEqual(counts(dir, "firing"), [id: 1], "the stored firing, delivered once under its id")
        XCTAssertEqual(hooks(dir).map(\.header), ["\(id)"])
        let recs = records(c.survivor, rule)
        XCTAssertEqual(recs.count, 1, "\(recs)")
        XCTAssertEqual(recs.first?["result"] as? String, "sent")
        XCTAssertEqual(recs.first?["attempts"] as? Int, attemptsBefore + 1, "the holder's refused attempts, then the survivor's")
        XCTAssertEqual(c.survivor.metric("vigil_alert_notifications_taken_over_total"), 1)
        XCTAssertEqual(c.survivor.metric("vigil_alert_notifications_total{result=\"sent\"}"), 1)
    }

    /// vigil-notify (https webhooks and e-mail go through it) dies with its
    /// collector and sends nothing once the collector named in the request
    /// is not its parent any more; with its parent alive it delivers, the
    /// notification id in the header.
    func testVigilNotifySendsNothingOnceItsCollectorIsGone() throws {
        let helper = URL(fileURLWithPath: CollectorBinary.path).deletingLastPathComponent().appendingPathComponent("vigil-notify").path
        let dir = CollectorProcess.makeDirectory().path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let port = freeTCPPortForTest()
        let server = try receiver(dir, port)
        defer { server.stop() }
        func run(parent: Int32) -> (status: Int32, out: String) {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: helper)
            let input = Pipe(), output = Pipe()
            p.standardInput = input
            p.standardOutput = output
            p.standardError = FileHandle.nullDevice
            guard (try? p.run()) != nil else { XCTFail("cannot start \(helper)"); return (-1, "") }
            let body = #"{"alerts":[{"event":"firing","notification_id":42}]}"#.replacingOccurrences(of: "\"", with: "\\\"")
            let req = #"{"kind":"webhook","url":"http://127.0.0.1:\#(port)/h","body":"\#(body)","timeout_ms":5000,"#
                + #""parent_pid":\#(parent),"headers":[["X-Vigil-Notification-Id","42"]]}"#
            input.fileHandleForWriting.write(Data(req.utf8))
            try? input.fileHandleForWriting.close()
            let out = output.fileHandleForReading.readDataToEndOfFile()
            p.waitUntilExit()
            return (p.terminationStatus, String(decoding: out, as: UTF8.self))
        }
        // Its parent is this test process, not pid 1: the collector it was started for is gone.
        let gone = run(parent: 1)
        XCTAssertEqual(gone.status, 1, gone.out)
        XCTAssertTrue(gone.out.contains("the collector is gone; nothing sent"), gone.out)
        usleep(300_000)
        XCTAssertEqual(hooks(dir).count, 0, "nothing reached the receiver")
        let alive = run(parent: getpid())
        XCTAssertEqual(alive.status, 0, alive.out)
        XCTAssertTrue(eventuallyTrue { self.hooks(dir).count == 1 })
        XCTAssertEqual(hooks(dir).first?.header, "42")
        XCTAssertEqual(counts(dir, "firing"), [42: 1])
    }
}
