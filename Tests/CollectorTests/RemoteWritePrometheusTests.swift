// Remote write end to end: a real vigil-collector configured with
// remote_write_url sends what it stores to Debian's real `prometheus`
// (started here on loopback, a free port, a temporary TSDB, with
// --web.enable-remote-write-receiver), and the counts queried back through
// Prometheus's HTTP API equal what the collector's API says it stored.
// Also: a receiver that is down never delays acknowledgements; over https
// (prometheus with a `tls_server_config`, a certificate made here with
// `openssl req`) samples arrive with the CA file and do not with a wrong
// one (failed requests, named, ingest unaffected).
import Foundation
import XCTest
import CSystem  // SOCK_* constants: glibc's socket macros may be owned by this C module
import Wire
import CSystem  // SOCK_* constants: glibc's socket macros may be owned by this C module

final class RemoteWritePrometheusTests: XCTestCase {
    static let binary = "/usr/bin/prometheus"

    /// A port the kernel just handed out (bound, then closed).
    static func freePort() -> UInt16 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var sa = sockaddr_in()
        sa.sin_family = sa_family_t(AF_INET)
        sa.sin_addr.s_addr = inet_addr("127.0.0.1")
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &sa) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) } }
        _ = withUnsafeMutablePointer(to: &sa) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        return UInt16(bigEndian: sa.sin_port)
    }

    final class Prometheus {
        let process = Process()
        let directory: URL
        let port: UInt16
        /// With TLS: the server's certificate (self-signed, so also its CA).
        let certificate: String?

        /// `tls`: serve https with a certificate for 127.0.0.1 and localhost.
        init(tls: Bool = false) throws {
            directory = CollectorProcess.makeDirectory()
            port = RemoteWritePrometheusTests.freePort()
            let config = directory.appendingPathComponent("prometheus.yml")
            try "global:\n  scrape_interval: 1m\n".write(to: config, atomically: true, encoding: .utf8)
            process.executableURL = URL(fileURLWithPath: RemoteWritePrometheusTests.binary)
            process.arguments = ["--config.file=\(config.path)", "--storage.tsdb.path=\(directory.appendingPathComponent("tsdb").path)",
                                 "--web.listen-address=127.0.0.1:\(port)", "--web.enable-remote-write-receiver"]
            if tls {
                let (cert, key) = try RemoteWritePrometheusTests.makeCertificate(in: directory, name: "server",
                                                                                 san: "IP:127.0.0.1,DNS:localhost")
                certificate = cert
                let web = directory.appendingPathComponent("web.yml")
                try "tls_server_config:\n  cert_file: \(cert)\n  key_file: \(key)\n".write(to: web, atomically: true, encoding: .utf8)
                process.arguments! += ["--web.config.file=\(web.path)"]
            } else {
                certificate = nil
            }
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            try process.run()
            let deadline = Date().addingTimeInterval(30)
            while Date() < deadline {
                if get("/-/ready").status == 200 { return }
                usleep(100_000)
            }
            stop()
            throw NSError(domain: "Prometheus", code: 1, userInfo: [NSLocalizedDescriptionKey: "prometheus did not become ready"])
        }

        /// The value of a PromQL expression that yields one sample.
        func query(_ expr: String) -> Double? {
            var allowed = CharacterSet.alphanumerics
            allowed.insert(charactersIn: "-._~")
            let q = expr.addingPercentEncoding(withAllowedCharacters: allowed)!
            let r = get("/api/v1/query?query=\(q)")
            let result = ((r.object["data"] as? [String: Any])?["result"] as? [[String: Any]]) ?? []
            guard result.count == 1, let v = result[0]["value"] as? [Any], let s = v.last as? String else { return nil }
            return Double(s)
        }

        /// GET over http, or over https with curl trusting `certificate`.
        func get(_ path: String) -> HTTPResult {
            guard let certificate else {
                return HTTPResult.fetch(port: port, method: "GET", path: path, body: nil, token: nil, timeout: 10)
            }
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/usr/bin/curl")
            p.arguments = ["-s", "--max-time", "10", "--cacert", certificate, "-w", "\n%{http_code}", "https://127.0.0.1:\(port)\(path)"]
            let out = Pipe()
            p.standardOutput = out
            p.standardError = FileHandle.nullDevice
            guard (try? p.run()) != nil else { return HTTPResult(status: 0, headers: [:], body: "curl did not start") }
            let data = out.fileHandleForReading.readDataToEndOfFile()
            p.waitUntilExit()
            var text = String(decoding: data, as: UTF8.self)
            guard let nl = text.lastIndex(of: "\n") else { return HTTPResult(status: 0, headers: [:], body: text) }
            let status = Int(text[text.index(after: nl)...]) ?? 0
            text = String(text[..<nl])
            return HTTPResult(status: status, headers: [:], body: text)
        }

        func stop() {
            if process.isRunning { process.terminate(); process.waitUntilExit() }
            try? FileManager.default.removeItem(at: directory)
        }
    }

    /// A self-signed certificate and key made with `openssl req`; returns their paths.
    static func makeCertificate(in dir: URL, name: String, san: String) throws -> (cert: String, key: String) {
        let cert = dir.appendingPathComponent("\(name).crt").path, key = dir.appendingPathComponent("\(name).key").path
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
        p.arguments = ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
                       "-subj", "/CN=vigil-test-\(name)", "-addext", "subjectAltName=\(san)", "-keyout", key, "-out", cert]
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else {
            throw NSError(domain: "openssl", code: Int(p.terminationStatus), userInfo: [NSLocalizedDescriptionKey: "openssl req failed"])
        }
        return (cert, key)
    }

    func testOverHTTPSSamplesArriveWithTheCAFileAndNotWithAWrongOne() throws {
        guard FileManager.default.isExecutableFile(atPath: RemoteWritePrometheusTests.binary) else {
            return XCTFail("prometheus missing: install Debian's prometheus package (scripts/lib/deps.sh)")
        }
        let prom = try Prometheus(tls: true)
        defer { prom.stop() }
        XCTAssertEqual(HTTPResult.fetch(port: prom.port, method: "GET", path: "/-/ready", body: nil, token: nil, timeout: 5).status == 200,
                       false, "plain http is not served")
        let url = "https://127.0.0.1:\(prom.port)/api/v1/write"
        let windowStart = UInt64(Date().timeIntervalSince1970 * 1000) - 300_000

        // The right CA: samples arrive, no request fails.
        let c = try CollectorProcess(config: ["remote_write_url = \(url)", "remote_write_tls_ca_file = \(prom.certificate!)",
                                              "remote_write_flush_ms = 100"])
        defer { c.stop(); c.removeDirectory() }
        XCTAssertTrue(c.log.contains("remote write to \(url)"), c.log)
        let key = c.createKey(project: "acme")
        let a = try WireTestClient(port: c.sessionPort, key: key, hello: WireTestClient.hello("rw-tls"))
        XCTAssertNotNil(a.handshake())
        for seq in UInt64(1)...5 { a.send(a.batch(seq, monitor: "shop", check: "GET /cart", count: seq * 2, windowStart: windowStart)) }
        XCTAssertNotNil(a.waitForRecord { if case .ack(let k) = $0 { return k.sequence == 5 }; return false })
        let series = "{agent=\"rw-tls\",check=\"GET /cart\"}"
        XCTAssertTrue(c.eventually(timeout: 30) {
            prom.query("last_over_time(vigil_request_duration_seconds_count\(series)[1h])") == 30
        }, "prometheus has \(String(describing: prom.query("last_over_time(vigil_request_duration_seconds_count\(series)[1h])")))")
        XCTAssertEqual(prom.query("count_over_time(vigil_request_duration_seconds_count\(series)[1h])"), 5)
        XCTAssertTrue(c.eventually { c.metric("vigil_remote_write_queue_samples") == 0 })
        XCTAssertEqual(c.metric("vigil_remote_write_requests_total{result=\"failed\"}"), 0)
        XCTAssertGreaterThanOrEqual(c.metric("vigil_remote_write_requests_total{result=\"ok\"}") ?? 0, 1)

        // A wrong CA (another self-signed certificate): nothing arrives,
        // the requests fail naming why, and ingest goes on.
        let other = try RemoteWritePrometheusTests.makeCertificate(in: c.directory, name: "other", san: "IP:127.0.0.1,DNS:localhost")
        let w = try CollectorProcess(config: ["remote_write_url = \(url)", "remote_write_tls_ca_file = \(other.cert)",
                                              "remote_write_flush_ms = 50"])
        defer { w.stop(); w.removeDirectory() }
        let wkey = w.createKey(project: "acme")
        let b = try WireTestClient(port: w.sessionPort, key: wkey, hello: WireTestClient.hello("rw-wrong-ca"))
        XCTAssertNotNil(b.handshake())
        let t0 = Date()
        for seq in UInt64(1)...50 { b.send(b.batch(seq, windowStart: windowStart)) }
        XCTAssertNotNil(b.waitForRecord(timeout: 20) { if case .ack(let k) = $0 { return k.sequence == 50 }; return false })
        XCTAssertLessThan(Date().timeIntervalSince(t0), 10, "acknowledgements do not wait for the receiver")
        XCTAssertEqual(w.metric("vigil_batches_total{outcome=\"stored\"}"), 50)
        XCTAssertTrue(w.eventually { (w.metric("vigil_remote_write_requests_total{result=\"failed\"}") ?? 0) >= 1 })
        XCTAssertTrue(w.eventually { w.log.contains("certificate not trusted") }, w.log)
        XCTAssertEqual(w.metric("vigil_remote_write_samples_sent_total"), 0)
        XCTAssertEqual(w.metric("vigil_remote_write_requests_total{result=\"ok\"}"), 0)
        XCTAssertNil(prom.query("last_over_time(vigil_request_duration_seconds_count{agent=\"rw-wrong-ca\"}[1h])"))
    }

    func testCountsInPrometheusEqualWhatTheCollectorStored() throws {
        guard FileManager.default.isExecutableFile(atPath: RemoteWritePrometheusTests.binary) else {
            return XCTFail("prometheus missing: install Debian's prometheus package (scripts/lib/deps.sh)")
        }
        let prom = try Prometheus()
        defer { prom.stop() }
        let c = try CollectorProcess(config: ["remote_write_url = http://127.0.0.1:\(prom.port)/api/v1/write",
                                              "remote_write_flush_ms = 100", "remote_write_max_samples_per_request = 50"])
        defer { c.stop(); c.removeDirectory() }
        XCTAssertTrue(c.log.contains("remote write to http://127.0.0.1:\(prom.port)/api/v1/write"), c.log)
        let key = c.createKey(project: "acme")
        let a = try WireTestClient(port: c.sessionPort, key: key, hello: WireTestClient.hello("rw-1"))
        XCTAssertNotNil(a.handshake())
        a.send([.status(Status(timestampMs: 1, state: .capturing))])
        // Twelve 10-second windows that ended in the last few minutes, with known counts.
        let start = UInt64(Date().timeIntervalSince1970 * 1000) - 300_000
        var total: UInt64 = 0
        for seq in UInt64(1)...12 {
            a.send(a.batch(seq, monitor: "shop", check: "GET /cart", count: seq * 3, windowStart: start))
            a.send(a.batch(seq + 100, monitor: "shop", check: "POST /pay", count: 1, windowStart: start - 1_000_000))
            total += seq * 3
        }
        XCTAssertNotNil(a.waitForRecord { if case .ack(let k) = $0 { return k.sequence == 112 }; return false })

        // What the collector stored, from its own API.
        let stored = c.api("GET", "/measurements?project=acme&agent=rw-1&check=GET%20/cart&limit=1000")
        let rows = stored.object["measurements"] as? [[String: Any]] ?? []
        XCTAssertEqual(rows.count, 12, stored.body)
        let storedCount = rows.reduce(0) { $0 + (($1["count"] as? NSNumber)?.intValue ?? 0) }
        XCTAssertEqual(storedCount, Int(total))

        let series = "{project=\"acme\",agent=\"rw-1\",monitor=\"shop\",check=\"GET /cart\",source=\"ipa\"}"
        XCTAssertTrue(c.eventually(timeout: 30) {
            prom.query("last_over_time(vigil_request_duration_seconds_count\(series)[1h])") == Double(storedCount)
        }, "prometheus has \(String(describing: prom.query("last_over_time(vigil_request_duration_seconds_count\(series)[1h])")))")
        XCTAssertEqual(prom.query("count_over_time(vigil_request_duration_seconds_count\(series)[1h])"), 12, "one sample per window")
        // Sum: each window 1.5 s; quantiles and extremes as stored.
        XCTAssertEqual(prom.query("last_over_time(vigil_request_duration_seconds_sum\(series)[1h])"), 18)
        let p95 = "{project=\"acme\",agent=\"rw-1\",monitor=\"shop\",check=\"GET /cart\",source=\"ipa\",quantile=\"0.95\"}"
        XCTAssertEqual(prom.query("last_over_time(vigil_request_duration_seconds\(p95)[1h])"), 0.3)
        XCTAssertEqual(prom.query("last_over_time(vigil_request_duration_max_seconds\(series)[1h])"), 0.4)
        XCTAssertEqual(prom.query("last_over_time(vigil_request_duration_seconds_count{check=\"POST /pay\"}[1h])"), 12)
        XCTAssertTrue(c.eventually(timeout: 40) {
            prom.query("last_over_time(vigil_agent_state{agent=\"rw-1\",state=\"capturing\"}[1h])") == 1
        })
        XCTAssertEqual(prom.query("last_over_time(vigil_agent_state{agent=\"rw-1\",state=\"stopped\"}[1h])"), 0)

        XCTAssertTrue(c.eventually { c.metric("vigil_remote_write_queue_samples") == 0 })
        XCTAssertGreaterThanOrEqual(c.metric("vigil_remote_write_samples_sent_total") ?? 0, 24 * 8)
        XCTAssertEqual(c.metric("vigil_remote_write_samples_dropped_total{cause=\"rejected\"}"), 0)
        XCTAssertEqual(c.metric("vigil_remote_write_samples_dropped_total{cause=\"queue_full\"}"), 0)
        XCTAssertGreaterThanOrEqual(c.metric("vigil_remote_write_requests_total{result=\"ok\"}") ?? 0, 4, "batched by 50")
    }

    func testReceiverDownNeverDelaysAcknowledgements() throws {
        let port = RemoteWritePrometheusTests.freePort()   // nothing listens there
        // At most 100 samples in the one request held for retry, so at least
        // 1,600 - 100 - 1,000 samples must be dropped however the batches'
        // arrival falls between flushes (with the default 2,000 per request,
        // a first request cut after every batch arrived held all 1,600).
        let c = try CollectorProcess(config: ["remote_write_url = http://127.0.0.1:\(port)/api/v1/write",
                                              "remote_write_flush_ms = 50", "remote_write_queue_samples = 1000",
                                              "remote_write_max_samples_per_request = 100"])
        defer { c.stop(); c.removeDirectory() }
        let key = c.createKey(project: "acme")
        let a = try WireTestClient(port: c.sessionPort, key: key, hello: WireTestClient.hello("rw-down"))
        XCTAssertNotNil(a.handshake())
        let t0 = Date()
        for seq in UInt64(1)...200 { a.send(a.batch(seq, windowStart: UInt64(Date().timeIntervalSince1970 * 1000) - 3_000_000)) }
        XCTAssertNotNil(a.waitForRecord(timeout: 20) { if case .ack(let k) = $0 { return k.sequence == 200 }; return false })
        XCTAssertLessThan(Date().timeIntervalSince(t0), 10, "acknowledgements do not wait for the receiver")
        XCTAssertEqual(c.metric("vigil_batches_total{outcome=\"stored\"}"), 200)
        XCTAssertTrue(c.eventually { (c.metric("vigil_remote_write_requests_total{result=\"failed\"}") ?? 0) >= 1 })
        XCTAssertTrue(c.eventually { (c.metric("vigil_remote_write_samples_dropped_total{cause=\"queue_full\"}") ?? 0) >= 500 },
                      "1,600 samples against a queue of 1,000 and one request of 100")
        XCTAssertLessThanOrEqual(c.metric("vigil_remote_write_queue_samples") ?? .infinity, 1000)
        XCTAssertGreaterThan(c.metric("vigil_remote_write_lag_seconds") ?? 0, 0)
        XCTAssertEqual(c.metric("vigil_remote_write_samples_sent_total"), 0)
    }

    func testCredentialsAreNeverLoggedNorShownByTheAPI() throws {
        let dir = CollectorProcess.makeDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let tokenFile = dir.appendingPathComponent("token").path
        let secret = "tok-\(UUID().uuidString)"
        try (secret + "\n").write(toFile: tokenFile, atomically: true, encoding: .utf8)
        let port = RemoteWritePrometheusTests.freePort()
        let c = try CollectorProcess(config: ["remote_write_url = http://127.0.0.1:\(port)/w", "remote_write_flush_ms = 50",
                                              "remote_write_bearer_token_file = \(tokenFile)", "log_level = debug"])
        defer { c.stop(); c.removeDirectory() }
        let key = c.createKey(project: "acme")
        let a = try WireTestClient(port: c.sessionPort, key: key, hello: WireTestClient.hello("rw-secret"))
        XCTAssertNotNil(a.handshake())
        a.send(a.batch(1))
        XCTAssertTrue(c.eventually { (c.metric("vigil_remote_write_requests_total{result=\"failed\"}") ?? 0) >= 1 })
        XCTAssertTrue(c.log.contains("auth=bearer"), c.log)
        let config = c.api("GET", "/config")
        XCTAssertEqual(config.status, 200)
        XCTAssertTrue(config.body.contains("remote_write_bearer_token_file"), config.body)
        for text in [c.log, config.body, c.http("GET", "/metrics").body] { XCTAssertFalse(text.contains(secret)) }

        // A credential file that cannot be read stops the start, naming the key.
        let conf = dir.appendingPathComponent("c.conf").path
        try "remote_write_url = http://127.0.0.1:9/w\nremote_write_bearer_token_file = \(dir.path)/missing\n\(["listen = 127.0.0.1:0", "http_listen = 127.0.0.1:0", "data_dir = \(dir.path)/data"].joined(separator: "\n"))\n"
            .write(toFile: conf, atomically: true, encoding: .utf8)
        let r = runCollectorCommand(["run", "--config", conf], timeout: 20)
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.err.contains("remote_write_bearer_token_file") && r.err.contains("missing"), r.err)
    }

    func testHTTPSAndURLCredentialsAreRefusedNamingTheKey() throws {
        let dir = CollectorProcess.makeDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        for (url, says) in [("ftp://prom.example/api/v1/write", "expected an http:// or https:// URL"),
                            ("http://u:secret@prom.example/api/v1/write", "credentials in remote_write_url are not allowed")] {
            let conf = dir.appendingPathComponent("c.conf").path
            try "remote_write_url = \(url)\n".write(toFile: conf, atomically: true, encoding: .utf8)
            let r = runCollectorCommand(["check-config", "--config", conf])
            XCTAssertNotEqual(r.status, 0)
            XCTAssertTrue(r.err.contains("remote_write_url") && r.err.contains(says), r.err)
        }
        let conf = dir.appendingPathComponent("c.conf").path
        try "remote_write_url = http://127.0.0.1:9/w\nremote_write_username = u\n".write(toFile: conf, atomically: true, encoding: .utf8)
        let r = runCollectorCommand(["check-config", "--config", conf])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.err.contains("remote_write_password_file"), r.err)

        // A CA file that holds no certificate stops the start, naming the key.
        let notPEM = dir.appendingPathComponent("ca.pem").path
        try "not a certificate\n".write(toFile: notPEM, atomically: true, encoding: .utf8)
        try "remote_write_url = https://127.0.0.1:9/w\nremote_write_tls_ca_file = \(notPEM)\n\(["listen = 127.0.0.1:0", "http_listen = 127.0.0.1:0", "data_dir = \(dir.path)/data"].joined(separator: "\n"))\n"
            .write(toFile: conf, atomically: true, encoding: .utf8)
        let bad = runCollectorCommand(["run", "--config", conf], timeout: 20)
        XCTAssertNotEqual(bad.status, 0)
        XCTAssertTrue(bad.err.contains("remote_write_tls_ca_file") && bad.err.contains(notPEM), bad.err)
    }
}
