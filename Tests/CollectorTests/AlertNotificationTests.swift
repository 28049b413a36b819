// Alert notifications from a real collector to local receivers: a webhook
// receiver (a small Python HTTP server that answers 500 to its first
// request, so the delivery is retried) and an SMTP sink (Python's aiosmtpd,
// Debian's python3-aiosmtpd) reached through vigil-notify and libcurl. An
// agent whose session ends fires the rule: the webhook gets the firing
// once (after one retry) with the documented JSON body, the e-mail
// arrives; a silence then suppresses the resolved notification, which is
// recorded as silenced; no secret reaches the records, the API or the log.
import Foundation
import XCTest
import Wire
import Glibc
import CSystem  // SOCK_* constants: glibc's socket macros may be owned by this C module

/// A child process of the test (a local server), stopped with it.
final class LocalServer {
    let process = Process()
    let directory: String

    init(python script: String, arguments: [String], directory: String) throws {
        self.directory = directory
        let path = directory + "/server.py"
        try script.write(toFile: path, atomically: true, encoding: .utf8)
        process.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        process.arguments = [path] + arguments
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
    }

    func stop() {
        if process.isRunning { process.terminate(); process.waitUntilExit() }
    }
}

/// A webhook receiver on 127.0.0.1:<port>: each POST body is one line of
/// <dir>/hooks.jsonl; the first <fail> requests are answered 500. It
/// writes <dir>/ready once listening.
let webhookReceiverScript = #"""
import http.server, json, os, sys
port, directory, fail = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
count = [0]
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(n)
        count[0] += 1
        if count[0] <= fail:
            self.send_response(500); self.send_header("Content-Length", "0"); self.end_headers(); return
        with open(os.path.join(directory, "hooks.jsonl"), "ab") as f:
            f.write(body.replace(b"\n", b" ") + b"\n")
        self.send_response(200); self.send_header("Content-Length", "2"); self.end_headers(); self.wfile.write(b"ok")
    def log_message(self, *a): pass
s = http.server.HTTPServer(("127.0.0.1", port), H)
open(os.path.join(directory, "ready"), "w").close()
s.serve_forever()
"""#

/// An SMTP sink on 127.0.0.1:<port> keeping mail in the Maildir <dir>/mail.
let smtpSinkScript = #"""
import asyncio, os, sys
from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Mailbox
port, directory = int(sys.argv[1]), sys.argv[2]
c = Controller(Mailbox(os.path.join(directory, "mail")), hostname="127.0.0.1", port=port)
c.start()
open(os.path.join(directory, "smtp-ready"), "w").close()
asyncio.new_event_loop().run_forever()
"""#

func lines(_ path: String) -> [String] {
    ((try? String(contentsOfFile: path, encoding: .utf8)) ?? "").split(separator: "\n").map(String.init)
}

func mails(_ directory: String) -> [String] {
    let dir = directory + "/mail/new"
    let names = (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
    return names.compactMap { try? String(contentsOfFile: dir + "/" + $0, encoding: .utf8) }
}

final class AlertNotificationTests: XCTestCase {
    func testWebhookRetriedAndMailArriveOnceThenASilenceSuppresses() throws {
        guard FileManager.default.fileExists(atPath: "/usr/lib/python3/dist-packages/aiosmtpd") else {
            throw XCTSkip("python3-aiosmtpd is not installed (scripts/lib/deps.sh)")
        }
        let c = try CollectorProcess(config: ["alert_eval_interval_ms = 200", "alert_group_wait_ms = 100"])
        defer { c.stop(); c.removeDirectory() }
        let dir = c.directory.path
        let hookPort = freeTCPPortForTest(), smtpPort = freeTCPPortForTest()
        let hooks = try LocalServer(python: webhookReceiverScript, arguments: ["\(hookPort)", dir, "1"], directory: dir)
        defer { hooks.stop() }
        let smtpDir = dir + "/smtp"
        try FileManager.default.createDirectory(atPath: smtpDir, withIntermediateDirectories: true)
        let smtp = try LocalServer(python: smtpSinkScript, arguments: ["\(smtpPort)", smtpDir], directory: smtpDir)
        defer { smtp.stop() }
        XCTAssertTrue(c.eventually { FileManager.default.fileExists(atPath: dir + "/ready") && FileManager.default.fileExists(atPath: smtpDir + "/smtp-ready") })

        let key = c.createKey(project: "acme")
        let rule = """
        {"name":"edge dark","condition":{"kind":"agent_state","agent":"edge-1","state":"not_visible","longer_than_s":0},
         "labels":{"team":"ops"},
         "receivers":[{"type":"webhook","url":"http://127.0.0.1:\(hookPort)/hooks/SECRET-TOKEN"},
                      {"type":"email","url":"smtp://127.0.0.1:\(smtpPort)","from":"vigil@example.org","to":["ops@example.org"],
                       "password":"smtp-secret"}]}
        """
        let created = c.api("POST", "/projects/acme/alerts", body: rule)
        XCTAssertEqual(created.status, 201, created.body)
        let id = try XCTUnwrap(created.object["id"] as? Int)

        var client: WireTestClient? = try WireTestClient(port: c.sessionPort, key: key, hello: WireTestClient.hello("edge-1"))
        XCTAssertNotNil(client?.handshake())
        XCTAssertTrue(c.eventually { (c.api("GET", "/agents/edge-1").object["connected"] as? Bool) == true })
        client = nil

        // Firing: the webhook (after a 500 and one retry) and the e-mail, once each.
        XCTAssertTrue(c.eventually(timeout: 20) { lines(dir + "/hooks.jsonl").count == 1 && mails(smtpDir).count == 1 }, c.log)
        let hook = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(lines(dir + "/hooks.jsonl")[0].utf8)) as? [String: Any])
        XCTAssertEqual(hook["status"] as? String, "firing")
        XCTAssertTrue((hook["text"] as? String ?? "").hasPrefix("[FIRING] edge dark (acme)"), "\(hook)")
        let alert = try XCTUnwrap((hook["alerts"] as? [[String: Any]])?.first)
        XCTAssertEqual(alert["rule_id"] as? Int, id)
        XCTAssertEqual((alert["labels"] as? [String: Any])?["team"] as? String, "ops")
        let mail = mails(smtpDir)[0]
        XCTAssertTrue(mail.contains("Subject: [FIRING] edge dark (acme)"), mail)
        XCTAssertTrue(mail.contains("edge-1"), mail)

        var records: [[String: Any]] = []
        XCTAssertTrue(c.eventually {
            records = c.api("GET", "/projects/acme/notifications?rule=\(id)").object["notifications"] as? [[String: Any]] ?? []
            return records.count == 2
        }, "\(records)")
        let webhookRecord = records.first { ($0["receiver"] as? String ?? "").hasPrefix("webhook") }
        XCTAssertEqual(webhookRecord?["result"] as? String, "sent")
        XCTAssertEqual(webhookRecord?["attempts"] as? Int, 2, "one 500, then sent")
        XCTAssertEqual(webhookRecord?["receiver"] as? String, "webhook http://127.0.0.1:\(hookPort)/[redacted]")
        XCTAssertEqual(records.first { ($0["receiver"] as? String ?? "").hasPrefix("email") }?["result"] as? String, "sent")

        // A silence on the rule: the agent comes back, the rule resolves, nothing is sent.
        let silence = c.api("POST", "/projects/acme/silences", body: #"{"rule_id":\#(id),"duration_s":600,"comment":"maintenance"}"#)
        XCTAssertEqual(silence.status, 201, silence.body)
        XCTAssertEqual((c.api("GET", "/projects/acme/silences").object["silences"] as? [[String: Any]])?.count, 1)
        client = try WireTestClient(port: c.sessionPort, key: key, hello: WireTestClient.hello("edge-1"))
        XCTAssertNotNil(client?.handshake())
        XCTAssertTrue(c.eventually(timeout: 20) {
            let all = c.api("GET", "/projects/acme/notifications?rule=\(id)").object["notifications"] as? [[String: Any]] ?? []
            return all.filter { $0["result"] as? String == "silenced" && $0["event"] as? String == "resolved" }.count == 2
        }, c.log)
        usleep(500_000)
        XCTAssertEqual(lines(dir + "/hooks.jsonl").count, 1, "the silence held the webhook back")
        XCTAssertEqual(mails(smtpDir).count, 1, "and the e-mail")
        XCTAssertEqual(c.metric("vigil_alert_notifications_total{result=\"silenced\"}"), 2)
        XCTAssertEqual(c.metric("vigil_alert_notifications_total{result=\"sent\"}"), 2)

        let everything = c.api("GET", "/projects/acme/notifications").body + c.api("GET", "/projects/acme/alerts").body + c.log
        XCTAssertFalse(everything.contains("SECRET-TOKEN") || everything.contains("smtp-secret"), "a secret leaked")
        _ = client
    }
}

/// A TCP port free right now on 127.0.0.1.
func freeTCPPortForTest() -> UInt16 {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var sa = sockaddr_in()
    sa.sin_family = sa_family_t(AF_INET)
    sa.sin_addr.s_addr = inet_addr("127.0.0.1")
    _ = withUnsafePointer(to: &sa) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
    var len = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafeMutablePointer(to: &sa) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
    return UInt16(bigEndian: sa.sin_port)
}
