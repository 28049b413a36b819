// The HTTP API's own limits, black-box against the real collector: the
// token is checked before a body is read, per-address and total connection
// limits, the absolute request deadline, TLS, the metrics listener and
// /healthz's answer while the store fails.
import Foundation
import Glibc
import XCTest
import CSystem  // SOCK_* constants: glibc's socket macros may be owned by this C module
import Wire

/// A raw TCP connection to a loopback port, from a chosen loopback address.
final class RawConnection {
    let fd: Int32

    /// nil when connect fails (a refused or reset connection).
    init?(port: UInt16, from source: String = "127.0.0.1", timeout: Int = 10) {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var tv = timeval(tv_sec: timeout, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var local = sockaddr_in()
        local.sin_family = sa_family_t(AF_INET)
        local.sin_addr.s_addr = inet_addr(source)
        let b = withUnsafePointer(to: &local) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        var sa = sockaddr_in()
        sa.sin_family = sa_family_t(AF_INET)
        sa.sin_port = port.bigEndian
        sa.sin_addr.s_addr = inet_addr("127.0.0.1")
        let rc = withUnsafePointer(to: &sa) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        if b != 0 || rc != 0 { close(fd); return nil }
    }

    deinit { close(fd) }

    @discardableResult
    func send(_ text: String) -> Bool {
        let bytes = Array(text.utf8)
        var off = 0
        while off < bytes.count {
            let n = bytes[off...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { return false }
            off += n
        }
        return true
    }

    /// Everything until the peer closes (or the receive timeout); `closed`
    /// is true when the peer closed or reset the connection.
    func readToEnd() -> (text: String, closed: Bool) {
        var data = [UInt8]()
        var buf = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = recv(fd, &buf, buf.count, 0)
            if n == 0 { return (String(decoding: data, as: UTF8.self), true) }
            if n < 0 { return (String(decoding: data, as: UTF8.self), errno == ECONNRESET) }
            data += buf[0..<n]
        }
    }
}

final class HTTPHardeningTests: XCTestCase {
    /// A 100 MB upload without a token is answered 401 from its headers
    /// alone (no body byte is sent), with `Expect: 100-continue` too (401,
    /// never `100 Continue`); the connection then closes.
    func testUnauthorizedUploadIsAnswered401BeforeItsBody() throws {
        let c = try CollectorProcess()
        defer { c.stop(); c.removeDirectory() }
        for expect in [false, true] {
            let conn = try XCTUnwrap(RawConnection(port: c.httpPort))
            var head = "PUT /api/v1/projects/p/monitors HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                + "Content-Length: 100000000\r\n"
            if expect { head += "Expect: 100-continue\r\n" }
            XCTAssertTrue(conn.send(head + "\r\n"))
            let (text, closed) = conn.readToEnd()
            XCTAssertTrue(text.hasPrefix("HTTP/1.1 401 "), "expect=\(expect): \(text)")
            XCTAssertFalse(text.contains("100 Continue"), text)
            XCTAssertTrue(text.contains("\"unauthorized\""), text)
            XCTAssertTrue(closed, "the connection closes after the 401 (expect=\(expect))")
        }
        // A wrong token is refused the same way; the right one reaches the endpoint.
        let wrong = try XCTUnwrap(RawConnection(port: c.httpPort))
        wrong.send("POST /api/v1/agents/x/capture HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer nope\r\nContent-Length: 100000000\r\n\r\n")
        XCTAssertTrue(wrong.readToEnd().text.hasPrefix("HTTP/1.1 401 "))
        XCTAssertEqual(c.api("GET", "/projects").status, 200)
        XCTAssertEqual(c.metric("vigil_http_refused_total{cause=\"before_body\"}"), 3)
        XCTAssertEqual(c.metric("vigil_http_unauthorized_total"), 3)

        // The console's session cookie is decided at the same moment: a
        // change without its anti-CSRF value is 403 before the body; with it,
        // the request goes on to the endpoint.
        let signIn = c.http("POST", "/api/v1/session", body: "{\"token\":\"\(c.token)\"}", token: "")
        XCTAssertEqual(signIn.status, 200, signIn.body)
        let cookie = String((signIn.headers["set-cookie"] ?? "").split(separator: ";").first ?? "")
        let csrf = try XCTUnwrap(signIn.object["csrf"] as? String)
        let noCSRF = try XCTUnwrap(RawConnection(port: c.httpPort))
        noCSRF.send("PUT /api/v1/projects/p/monitors HTTP/1.1\r\nHost: h\r\nCookie: \(cookie)\r\nContent-Length: 100000000\r\n\r\n")
        let refused = noCSRF.readToEnd()
        XCTAssertTrue(refused.text.hasPrefix("HTTP/1.1 403 "), refused.text)
        XCTAssertTrue(refused.closed)
        XCTAssertEqual(c.metric("vigil_http_refused_total{cause=\"before_body\"}"), 4)
        let withCSRF = c.http("PUT", "/api/v1/projects/nope/monitors", body: #"{"monitors":[]}"#, token: "",
                              headers: ["Cookie": cookie, "X-Vigil-CSRF": csrf])
        XCTAssertEqual(withCSRF.status, 404, "reached the endpoint (no such project): \(withCSRF.body)")
    }

    /// Forty clients from 127.0.0.2 that trickle a request's headers one
    /// byte at a time, against 16 connections in all: eight are let in (the
    /// rest closed at accept, where without the per-address limit they would
    /// take all 16), /healthz from 127.0.0.1 is answered meanwhile, and the
    /// eight are closed at their absolute deadline although they never fall
    /// silent long enough for the inactivity timeout.
    func testSlowClientsFromOneAddressDoNotStarveAnother() throws {
        let c = try CollectorProcess(config: ["http_max_connections = 16", "http_max_connections_per_address = 8",
                                              "http_request_deadline_ms = 2000"])
        defer { c.stop(); c.removeDirectory() }
        var slow: [RawConnection] = []
        for _ in 0..<40 {
            if let conn = RawConnection(port: c.httpPort, from: "127.0.0.2", timeout: 1) {
                conn.send("GET /healthz HTTP/1.1\r\n")
                slow.append(conn)
            }
        }
        XCTAssertTrue(c.eventually { c.metric("vigil_http_refused_total{cause=\"address_limit\"}") == 32 },
                      "\(String(describing: c.metric("vigil_http_refused_total{cause=\"address_limit\"}")))")
        XCTAssertEqual(c.http("GET", "/healthz").status, 200)
        XCTAssertEqual(c.metric("vigil_http_refused_total{cause=\"connection_limit\"}"), 0)
        // Trickle one header byte every 200 ms; the deadline still ends them.
        var closedAt: Date?
        let until = Date().addingTimeInterval(6)
        while Date() < until && closedAt == nil {
            var sent = 0
            for conn in slow where conn.send("X") { sent += 1 }
            if sent == 0 { closedAt = Date() }
            usleep(200_000)
        }
        XCTAssertNotNil(closedAt, "the slow connections were closed by their deadline")
        XCTAssertEqual(c.metric("vigil_http_refused_total{cause=\"deadline\"}"), 8)
        // The address may connect again.
        let again = try XCTUnwrap(RawConnection(port: c.httpPort, from: "127.0.0.2"))
        again.send("GET /healthz HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
        XCTAssertTrue(again.readToEnd().text.hasPrefix("HTTP/1.1 200 "))
        // Two addresses together can fill all 16: one more is closed at accept, counted.
        var held: [RawConnection] = []
        for source in ["127.0.0.2", "127.0.0.3"] {
            for _ in 0..<8 {
                if let conn = RawConnection(port: c.httpPort, from: source, timeout: 1) { conn.send("GET / HTTP/1.1\r\n"); held.append(conn) }
            }
        }
        usleep(200_000)
        let refused = try XCTUnwrap(RawConnection(port: c.httpPort, timeout: 5))
        refused.send("GET /healthz HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
        XCTAssertEqual(refused.readToEnd().text, "", "closed at accept without an answer")
        held.removeAll()
        XCTAssertTrue(c.eventually { (c.metric("vigil_http_refused_total{cause=\"connection_limit\"}") ?? 0) >= 1 })
    }

    /// Runs a program to completion; its status and standard output.
    private func run(_ path: String, _ args: [String]) -> (status: Int32, out: String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: path)
        p.arguments = args
        let out = Pipe()
        p.standardOutput = out
        p.standardError = FileHandle.nullDevice
        do { try p.run() } catch { XCTFail("cannot run \(path): \(error)"); return (-1, "") }
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    /// A self-signed certificate made here with openssl: curl trusting it
    /// reaches /healthz and the API over HTTPS; plain HTTP to the same port
    /// gets no answer; a missing key file stops the start with an error
    /// naming the key and the path.
    func testTLSWithASelfSignedCertificate() throws {
        let dir = CollectorProcess.makeDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let cert = dir.appendingPathComponent("cert.pem").path, key = dir.appendingPathComponent("key.pem").path
        let made = run("/usr/bin/openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                                            "-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=127.0.0.1",
                                            "-addext", "subjectAltName=IP:127.0.0.1"])
        XCTAssertEqual(made.status, 0, "openssl req")

        let c = try CollectorProcess(config: ["http_tls_cert = \(cert)", "http_tls_key = \(key)"])
        defer { c.stop(); c.removeDirectory() }
        XCTAssertTrue(c.log.contains("tls=on"), c.log)
        let base = "https://127.0.0.1:\(c.httpPort)"
        let health = run("/usr/bin/curl", ["-sS", "--max-time", "10", "--cacert", cert, base + "/healthz"])
        XCTAssertEqual(health.status, 0)
        XCTAssertTrue(health.out.hasPrefix("ok"), health.out)
        let api = run("/usr/bin/curl", ["-sS", "--max-time", "10", "--cacert", cert, "-o", "/dev/null", "-w", "%{http_code}",
                                        "-H", "Authorization: Bearer \(c.token)", base + "/api/v1/projects"])
        XCTAssertEqual(api.out, "200")
        // Without trusting the certificate, curl refuses; plain HTTP gets no HTTP answer.
        XCTAssertNotEqual(run("/usr/bin/curl", ["-sS", "--max-time", "10", base + "/healthz"]).status, 0)
        let plain = run("/usr/bin/curl", ["-sS", "--max-time", "5", "-o", "/dev/null", "-w", "%{http_code}",
                                          "http://127.0.0.1:\(c.httpPort)/healthz"])
        XCTAssertNotEqual(plain.status, 0)
        XCTAssertEqual(plain.out, "000")

        let missing = dir.appendingPathComponent("nope.pem").path
        let bad = runCollectorCommand(["run", "--set", "listen=127.0.0.1:0", "--set", "http_listen=127.0.0.1:0",
                                       "--set", "data_dir=\(dir.appendingPathComponent("data2").path)",
                                       "--set", "http_tls_cert=\(cert)", "--set", "http_tls_key=\(missing)"])
        XCTAssertNotEqual(bad.status, 0)
        XCTAssertTrue(bad.err.contains("http_tls_key: cannot read \(missing): No such file or directory"), bad.err)
        let notPEM = runCollectorCommand(["run", "--set", "listen=127.0.0.1:0", "--set", "http_listen=127.0.0.1:0",
                                          "--set", "data_dir=\(dir.appendingPathComponent("data3").path)",
                                          "--set", "http_tls_cert=\(key)", "--set", "http_tls_key=\(key)"])
        XCTAssertTrue(notPEM.err.contains("http_tls_cert: \(key) is not PEM"), notPEM.err)
    }

    /// `metrics_listen`: /metrics and /healthz without a token, nothing else
    /// (the API is 404 there even with the token); the API stays on http_listen.
    func testMetricsListenServesOnlyMetricsAndHealth() throws {
        let c = try CollectorProcess(config: ["metrics_listen = 127.0.0.1:0"])
        defer { c.stop(); c.removeDirectory() }
        let line = try XCTUnwrap(c.log.split(separator: "\n").first { $0.contains("metrics on 127.0.0.1:") })
        let portText = line.split(separator: " ").first { $0.hasPrefix("127.0.0.1:") }?.split(separator: ":").last
        let port = try XCTUnwrap(portText.flatMap { UInt16($0) }, String(line))
        XCTAssertNotEqual(port, c.httpPort)
        let metrics = HTTPResult.fetch(port: port, method: "GET", path: "/metrics", body: nil, token: nil)
        XCTAssertEqual(metrics.status, 200)
        XCTAssertTrue(metrics.body.contains("vigil_http_refused_total{cause=\"before_body\"} 0"), metrics.body)
        XCTAssertEqual(HTTPResult.fetch(port: port, method: "GET", path: "/healthz", body: nil, token: nil).status, 200)
        for path in ["/api/v1/projects", "/api/v1/config", "/", "/metricsx"] {
            let r = HTTPResult.fetch(port: port, method: "GET", path: path, body: nil, token: c.token)
            XCTAssertEqual(r.status, 404, path)
        }
        XCTAssertEqual(c.api("GET", "/projects").status, 200)
        // Bad values are refused before anything listens, naming the key.
        let bad = runCollectorCommand(["run", "--set", "listen=127.0.0.1:0", "--set", "http_listen=127.0.0.1:6681",
                                       "--set", "metrics_listen=localhost:9100"])
        XCTAssertNotEqual(bad.status, 0)
        XCTAssertTrue(bad.err.contains("key 'metrics_listen'"), bad.err)
        let clash = runCollectorCommand(["run", "--set", "listen=127.0.0.1:0", "--set", "http_listen=127.0.0.1:6681",
                                         "--set", "metrics_listen=127.0.0.1:6681"])
        XCTAssertTrue(clash.err.contains("other than http_listen's"), clash.err)
    }

    /// /healthz while another process holds the database's write lock: a
    /// write waits, and after health_store_stall_ms the answer is 503 naming
    /// `store_stalled`; once the lock is gone the write commits and /healthz
    /// is 200 again. A stopped process (SIGSTOP, then SIGCONT) is a stalled
    /// loop: 503 `loop_stalled` afterwards.
    func testHealthzIs503WhileTheStoreIsStalledOrTheLoopWas() throws {
        let c = try CollectorProcess(config: ["health_store_stall_ms = 1000", "health_loop_stall_ms = 500"])
        defer { c.stop(); c.removeDirectory() }
        _ = c.createKey(project: "shop")
        XCTAssertEqual(c.http("GET", "/healthz").status, 200)

        let lock = try SQLiteWriteLock(path: c.dataDir + "/vigil.db")

        let put = PendingHTTP(c, "PUT", "/projects/shop/patterns",
                              body: #"{"patterns":[{"host":"a.example","path":"/x","monitor":"m","check":"c"}]}"#)
        var unhealthy = HTTPResult(status: 0, headers: [:], body: "")
        XCTAssertTrue(c.eventually(timeout: 10) { unhealthy = c.http("GET", "/healthz"); return unhealthy.status == 503 })
        XCTAssertEqual(unhealthy.headers["content-type"], "application/json")
        let detail = unhealthy.object["detail"] as? [String: Any]
        let reasons = detail?["reasons"] as? [[String: Any]] ?? []
        XCTAssertEqual(unhealthy.object["error"] as? String, "unhealthy")
        XCTAssertEqual(reasons.first?["cause"] as? String, "store_stalled", unhealthy.body)
        XCTAssertNil(put.result, "the write waits for the lock")

        try lock.release()   // the locker exits, the lock is gone
        XCTAssertEqual(put.wait()?.status, 200)
        XCTAssertTrue(c.eventually(timeout: 10) { c.http("GET", "/healthz").status == 200 })

        c.signal(SIGSTOP)
        // A sleep, however often SIGCHLD (the child stopped) interrupts it.
        let resume = Date().addingTimeInterval(1.2)
        while Date() < resume { usleep(50_000) }
        c.signal(SIGCONT)
        let stalled = c.http("GET", "/healthz")
        XCTAssertEqual(stalled.status, 503, stalled.body)
        XCTAssertTrue(stalled.body.contains("\"loop_stalled\""), stalled.body)
    }

    /// Two agents that ask for a 1,000-monitor schedule again and again and
    /// never read: with a 1 MiB outbound budget both are dropped for holding
    /// more than their share (counted), long before their own 2 MiB queues
    /// fill, while an agent that reads keeps its session and gets its schedule.
    func testAgentsThatNeverReadAreDroppedAtTheOutboundBudget() throws {
        let c = try CollectorProcess(config: ["session_outbound_budget_bytes = 1M"])
        defer { c.stop(); c.removeDirectory() }
        let key = c.createKey(project: "flood")
        let monitors = (0..<1000).map { i in
            #"{"id":"m\#(i)","name":"monitor \#(i) \#(String(repeating: "n", count: 150))","kind":"tcp","interval_secs":60,"#
                + #""timeout_secs":3,"spec":{"host":"127.0.0.1","port":\#(1000 + i)}}"#
        }
        XCTAssertEqual(c.api("PUT", "/projects/flood/monitors", body: #"{"monitors":["# + monitors.joined(separator: ",") + "]}").status, 200)
        XCTAssertEqual(c.metric("vigil_outbound_budget_bytes"), 1_048_576)

        let reader = try WireTestClient(port: c.sessionPort, key: key, hello: WireTestClient.hello("reader"))
        XCTAssertNotNil(reader.handshake())
        var sinks: [WireTestClient] = []
        for i in 1...2 {
            let sink = try WireTestClient(port: c.sessionPort, key: key, hello: WireTestClient.hello("sink-\(i)"))
            XCTAssertNotNil(sink.handshake())
            var small: Int32 = 4096
            setsockopt(sink.fd, SOL_SOCKET, SO_RCVBUF, &small, socklen_t(MemoryLayout<Int32>.size))
            sinks.append(sink)
        }
        let dropped = #"vigil_session_limited_total{cause="outbound_budget"}"#
        let until = Date().addingTimeInterval(30)
        while Date() < until && (c.metric(dropped) ?? 0) < 2 {
            for sink in sinks { sink.send([.scheduleRequest(ScheduleRequest(haveVersion: 0))]) }
            usleep(20_000)
        }
        XCTAssertEqual(c.metric(dropped), 2)
        XCTAssertEqual(c.metric(#"vigil_sessions_closed_total{reason="outbound_overflow"}"#), 2)
        XCTAssertTrue(c.eventually { (c.metric("vigil_outbound_queued_bytes") ?? .infinity) < 1_048_576 })
        reader.clearEvents()
        reader.send([.scheduleRequest(ScheduleRequest(haveVersion: 0))])
        XCTAssertNotNil(reader.waitForRecord { if case .schedule = $0 { return true }; return false })
        XCTAssertFalse(reader.peerClosed)
        XCTAssertEqual(c.metric(#"vigil_sessions{phase="established"}"#), 1)
        // What the reader was sent left the queue: the account falls to 0
        // with the flushes themselves, no periodic re-read needed.
        XCTAssertTrue(c.eventually { c.metric("vigil_outbound_queued_bytes") == 0 })
    }
}
