// Capture uploads on a real collector: a file posted as the body and as a
// browser's multipart form goes through the agent's parse → filter →
// aggregate code into the store under the project's virtual `upload` agent;
// the status URL counts every line (read = stored + dropped); refusals come
// before the body (401, 413 by declared length, 415, 429) or name what was
// wrong (404 project, 400 multipart).
import Foundation
import Glibc
import XCTest

/// A raw HTTP/1.1 exchange on loopback, so a test can send headers and a
/// body apart, or not send the body at all.
final class RawHTTP {
    let fd: Int32
    /// MSG_NOSIGNAL (Linux): which clang module owns glibc's socket macros
    /// depends on the build order, so the value is written here.
    static let noSignal: Int32 = 0x4000

    init(port: UInt16) {
        fd = socket(AF_INET, 1 /* SOCK_STREAM */, 0)
        var tv = timeval(tv_sec: 20, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var sa = sockaddr_in()
        sa.sin_family = sa_family_t(AF_INET)
        sa.sin_port = port.bigEndian
        sa.sin_addr.s_addr = inet_addr("127.0.0.1")
        _ = withUnsafePointer(to: &sa) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
    }

    deinit { close(fd) }

    func send(_ bytes: [UInt8]) {
        var off = 0
        while off < bytes.count {
            let n = bytes[off...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, RawHTTP.noSignal) }
            if n <= 0 { return }
            off += n
        }
    }

    func send(_ text: String) { send(Array(text.utf8)) }

    /// Reads one response (its head and a Content-Length body).
    func response() -> HTTPResult {
        var data = [UInt8]()
        var buf = [UInt8](repeating: 0, count: 65536)
        while true {
            let text = String(decoding: data, as: UTF8.self)
            if let split = text.range(of: "\r\n\r\n") {
                let head = String(text[..<split.lowerBound])
                let length = head.split(separator: "\r\n").first { $0.lowercased().hasPrefix("content-length:") }
                    .flatMap { Int($0.split(separator: ":")[1].trimmingCharacters(in: .whitespaces)) } ?? 0
                let body = String(text[split.upperBound...])
                if body.utf8.count >= length {
                    let status = Int(head.split(separator: " ").dropFirst().first ?? "") ?? 0
                    return HTTPResult(status: status, headers: [:], body: body)
                }
            }
            let n = recv(fd, &buf, buf.count, 0)
            if n <= 0 { return HTTPResult(status: 0, headers: [:], body: String(decoding: data, as: UTF8.self)) }
            data += buf[0..<n]
        }
    }

    static func head(_ path: String, token: String?, type: String, length: Int?) -> String {
        var h = "POST \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: \(type)\r\n"
        if let token { h += "Authorization: Bearer \(token)\r\n" }
        if let length { h += "Content-Length: \(length)\r\n" }
        return h + "\r\n"
    }
}

final class UploadTests: XCTestCase {
    var c: CollectorProcess!

    override func setUpWithError() throws {
        c = try CollectorProcess(config: ["upload_max_concurrent = 1", "upload_max_bytes = 1000000"])
        _ = c.createKey(project: "shop")
        let rules = #"{"patterns":[{"method":"GET","host":"*","path":"/cart/*","monitor":"shop","check":"cart"},"#
            + #"{"host":"*","path":"/health","exclude":true}]}"#
        XCTAssertEqual(c.api("PUT", "/projects/shop/patterns", body: rules).status, 200)
    }

    override func tearDown() {
        c.stop()
        c.removeDirectory()
    }

    /// 2,000 matched lines (1..2000 ms), 10 unmatched, 5 excluded, 3
    /// malformed, the last line without its newline.
    static let capture: String = {
        var lines: [String] = []
        for i in 1...2000 { lines.append("1\tGET\thttps://shop.example/cart/\(i)?user=\(i)\t\(i)") }
        for i in 0..<10 { lines.append("1\tPOST\thttps://shop.example/order/\(i)\t5") }
        for _ in 0..<5 { lines.append("1\tGET\thttps://shop.example/health\t1") }
        lines += ["7\tGET\thttps://x/\t1", "1\tGET\thttps://shop.example/cart/x\tslow", "1\tGET"]
        return lines.joined(separator: "\n")
    }()

    private func upload(type: String, body: [UInt8]) -> HTTPResult {
        let h = RawHTTP(port: c.httpPort)
        h.send(RawHTTP.head("/api/v1/projects/shop/uploads", token: c.token, type: type, length: body.count))
        h.send(body)
        return h.response()
    }

    /// Polls the status URL until the upload is no longer running.
    private func finished(_ answer: HTTPResult) -> [String: Any] {
        XCTAssertEqual(answer.status, 202, answer.body)
        guard let url = answer.object["url"] as? String else { XCTFail(answer.body); return [:] }
        var status: [String: Any] = [:]
        XCTAssertTrue(c.eventually {
            status = self.c.http("GET", url).object
            return status["state"] as? String != "running"
        }, "\(status)")
        return status
    }

    private func checkCounts(_ s: [String: Any], file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(s["state"] as? String, "done", "\(s)", file: file, line: line)
        XCTAssertEqual(s["read"] as? Int, 2018, file: file, line: line)
        XCTAssertEqual(s["stored"] as? Int, 2000, file: file, line: line)
        let dropped = s["dropped"] as? [String: Int] ?? [:]
        XCTAssertEqual(dropped["unmatched"], 10, file: file, line: line)
        XCTAssertEqual(dropped["excluded"], 5, file: file, line: line)
        XCTAssertEqual(dropped["bad_version"], 1, file: file, line: line)
        XCTAssertEqual(dropped["duration"], 1, file: file, line: line)
        XCTAssertEqual(dropped["field_count"], 1, file: file, line: line)
        XCTAssertEqual(dropped.values.reduce(0, +), 18, "read = stored + dropped", file: file, line: line)
        XCTAssertTrue(s["error"] is NSNull, file: file, line: line)
    }

    func testAFileAsTheBodyIsAggregatedUnderTheUploadAgent() throws {
        let answer = upload(type: "text/plain", body: Array(UploadTests.capture.utf8))
        XCTAssertNotNil((answer.object["id"] as? String), answer.body)
        XCTAssertTrue((answer.object["url"] as? String ?? "").hasPrefix("/api/v1/projects/shop/uploads/"), answer.body)
        checkCounts(finished(answer))

        // Its measurements: one shop/cart window of 2,000 calls, as the agent would aggregate them.
        let rows = c.api("GET", "/measurements?project=shop&agent=upload-shop").object["measurements"] as? [[String: Any]] ?? []
        XCTAssertEqual(rows.map { $0["count"] as? Int ?? 0 }.reduce(0, +), 2000, "\(rows)")
        XCTAssertEqual(Set(rows.map { "\($0["monitor"]!)/\($0["check"]!)/\($0["source"]!)" }), ["shop/cart/ipa"])
        XCTAssertEqual(rows.compactMap { $0["max_ms"] as? Double }.max() ?? 0, 2000, accuracy: 20)
        // The virtual agent is in the fleet with its mode.
        let agents = c.api("GET", "/agents?project=shop").object["agents"] as? [[String: Any]] ?? []
        let agent = agents.first { $0["id"] as? String == "upload-shop" }
        XCTAssertEqual(agent?["mode"] as? String, "upload", "\(agents)")
        XCTAssertEqual(agent?["state"] as? String, "stopped")
        XCTAssertEqual(c.metric("vigil_uploads_total{result=\"done\"}"), 1)
    }

    func testABrowserFormIsReadAsItsFilePart() throws {
        let boundary = "----vigilBoundary7MA4YWxkTrZu0gW"
        var body = "--\(boundary)\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nnot the file\r\n"
        body += "--\(boundary)\r\nContent-Disposition: form-data; name=\"file\"; filename=\"capture.ipa\"\r\n"
        body += "Content-Type: application/octet-stream\r\n\r\n" + UploadTests.capture + "\r\n--\(boundary)--\r\n"
        let answer = upload(type: "multipart/form-data; boundary=\(boundary)", body: Array(body.utf8))
        checkCounts(finished(answer))

        // A form cut before its closing boundary fails, saying so.
        let cut = Array(body.utf8.dropLast(30))
        let bad = upload(type: "multipart/form-data; boundary=\(boundary)", body: cut)
        XCTAssertEqual(bad.status, 400, bad.body)
        XCTAssertTrue(bad.body.contains("closing boundary"), bad.body)
        // A form without a part named file, too.
        let other = "--\(boundary)\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nx\r\n--\(boundary)--\r\n"
        let none = upload(type: "multipart/form-data; boundary=\(boundary)", body: Array(other.utf8))
        XCTAssertEqual(none.status, 400, none.body)
        XCTAssertTrue(none.body.contains("no part named \\\"file\\\""), none.body)
    }

    func testVersion2RecordsLandInTheWindowsOfTheirTime() throws {
        // Ten minutes ago, and a minute earlier: two windows, with outcomes.
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        let t1 = now - 600_000, t2 = now - 660_000
        let text = ["2\t\(t1)\tGET\thttps://shop.example/cart/1\t200\t10", "2\t\(t1 + 1)\tGET\thttps://shop.example/cart/2\t503\t30",
                    "2\t\(t2)\tGET\thttps://shop.example/cart/3\t404\t20",
                    "2\t\(now - 3 * 86_400_000)\tGET\thttps://shop.example/cart/4\t200\t20"].joined(separator: "\n") + "\n"
        let s = finished(upload(type: "application/octet-stream", body: Array(text.utf8)))
        XCTAssertEqual(s["state"] as? String, "done", "\(s)")
        XCTAssertEqual(s["stored"] as? Int, 3)
        XCTAssertEqual((s["dropped"] as? [String: Int])?["too_old"], 1, "\(s)")
        let rows = c.api("GET", "/measurements?project=shop&agent=upload-shop").object["measurements"] as? [[String: Any]] ?? []
        let byTs = Dictionary(uniqueKeysWithValues: rows.map { (($0["ts"] as? NSNumber)?.int64Value ?? 0, $0) })
        XCTAssertEqual(Set(byTs.keys), [t1 - t1 % 60_000, t2 - t2 % 60_000], "\(rows)")
        let w1 = byTs[t1 - t1 % 60_000]
        XCTAssertEqual(w1?["count"] as? Int, 2)
        let outcomes = w1?["outcomes"] as? [String: Int] ?? [:]
        XCTAssertEqual(outcomes["2xx"], 1, "\(w1 ?? [:])")
        XCTAssertEqual(outcomes["5xx"], 1, "\(w1 ?? [:])")
        // The windows keep their histograms: merged over both, the percentiles come from them.
        let merged = c.api("GET", "/measurements?project=shop&agent=upload-shop&step=3600000&group_by=none&since=\(t2 - 3_600_000)")
            .object["measurements"] as? [[String: Any]] ?? []
        XCTAssertFalse(merged.isEmpty)
        for g in merged { XCTAssertEqual(g["merged"] as? Bool, true, "\(g)") }
        XCTAssertEqual(merged.reduce(0) { $0 + ($1["count"] as? Int ?? 0) }, 3, "\(merged)")
    }

    func testRefusalsComeBeforeTheBody() throws {
        // Only headers are sent: each answer arrives without any body.
        func headersOnly(token: String?, type: String, length: Int, project: String = "shop") -> HTTPResult {
            let h = RawHTTP(port: c.httpPort)
            h.send(RawHTTP.head("/api/v1/projects/\(project)/uploads", token: token, type: type, length: length))
            return h.response()
        }
        XCTAssertEqual(headersOnly(token: nil, type: "text/plain", length: 500_000).status, 401)
        XCTAssertEqual(headersOnly(token: "wrong", type: "text/plain", length: 500_000).status, 401)
        let big = headersOnly(token: c.token, type: "text/plain", length: 2_000_000)
        XCTAssertEqual(big.status, 413, big.body)
        XCTAssertEqual((big.object["detail"] as? [String: Any])?["limit_bytes"] as? Int, 1_000_000)
        let type = headersOnly(token: c.token, type: "image/png", length: 10)
        XCTAssertEqual(type.status, 415, type.body)
        XCTAssertTrue(type.body.contains("image/png"), type.body)

        // One upload running (its body half sent): a second is refused, 429.
        let first = RawHTTP(port: c.httpPort)
        let body = Array(UploadTests.capture.utf8)
        first.send(RawHTTP.head("/api/v1/projects/shop/uploads", token: c.token, type: "text/plain", length: body.count))
        first.send(Array(body[0..<1000]))
        XCTAssertTrue(c.eventually { self.c.metric("vigil_uploads_running") == 1 })
        let second = headersOnly(token: c.token, type: "text/plain", length: 10)
        XCTAssertEqual(second.status, 429, second.body)
        first.send(Array(body[1000...]))
        checkCounts(finished(first.response()))

        // Over the limit without a declared length: refused while reading.
        let chunked = RawHTTP(port: c.httpPort)
        chunked.send("POST /api/v1/projects/shop/uploads HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\n"
                     + "Authorization: Bearer \(c.token)\r\nTransfer-Encoding: chunked\r\n\r\n")
        let piece = [UInt8](repeating: 0x0A, count: 300_000)
        for _ in 0..<4 {
            chunked.send(String(piece.count, radix: 16) + "\r\n")
            chunked.send(piece)
            chunked.send("\r\n")
        }
        chunked.send("0\r\n\r\n")
        let tooBig = chunked.response()
        XCTAssertEqual(tooBig.status, 413, tooBig.body)

        // An unknown project, and an unknown upload id.
        let unknown = upload404()
        XCTAssertEqual(unknown.status, 404, unknown.body)
        XCTAssertEqual(c.api("GET", "/projects/shop/uploads/nope").status, 404)
        XCTAssertEqual(c.metric("vigil_uploads_total{result=\"refused_size\"}"), 1)
        XCTAssertEqual(c.metric("vigil_uploads_total{result=\"refused_concurrency\"}"), 1)
        XCTAssertEqual(c.metric("vigil_uploads_total{result=\"refused_type\"}"), 1)
    }

    private func upload404() -> HTTPResult {
        let h = RawHTTP(port: c.httpPort)
        h.send(RawHTTP.head("/api/v1/projects/nope/uploads", token: c.token, type: "text/plain", length: 5))
        h.send("1\tGET")
        return h.response()
    }
}
