import XCTest
import Glibc
import Reactor
import HTTPServer
import CSystem  // SOCK_* constants: glibc's socket macros may be owned by this C module

/// A blocking HTTP/1.0 client run on a helper thread while the loop runs.
final class RawHTTPClient: @unchecked Sendable {
    private let lock = NSLock()
    private var _result: String?
    var result: String? { lock.lock(); defer { lock.unlock() }; return _result }

    func send(port: UInt16, _ request: String) {
        let t = Thread { [self] in
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var sa = sockaddr_in()
            sa.sin_family = sa_family_t(AF_INET)
            sa.sin_port = port.bigEndian
            sa.sin_addr.s_addr = inet_addr("127.0.0.1")
            let rc = withUnsafePointer(to: &sa) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
            var out = ""
            if rc == 0 {
                _ = request.withCString { Glibc.send(fd, $0, strlen($0), Int32(MSG_NOSIGNAL)) }
                var buf = [UInt8](repeating: 0, count: 65536)
                while true {
                    let n = recv(fd, &buf, buf.count, 0)
                    if n <= 0 { break }
                    out += String(decoding: buf[0..<n], as: UTF8.self)
                }
            }
            close(fd)
            lock.lock(); _result = out; lock.unlock()
        }
        t.start()
    }
}

final class HTTPServerTests: XCTestCase {
    func testSyncAsyncAndOversizedRequests() throws {
        let loop = EventLoop()
        var seen: [HTTPRequest] = []
        var pending: HTTPResponder?
        let server = HTTPServer(loop: loop, maxBodyBytes: 64) { req, responder in
            seen.append(req)
            if req.path == "/later" {
                pending = responder   // answered from a timer below
            } else {
                responder.respond(HTTPResponse(status: 200, contentType: "text/plain", text: "ok \(req.query["a"] ?? "-") \(req.body.count)"))
            }
        }
        try server.start(address: SocketAddress(parsing: "127.0.0.1:0"))
        XCTAssertGreaterThan(server.port, 0)

        let c1 = RawHTTPClient()
        c1.send(port: server.port, "GET /healthz?a=1&b=two HTTP/1.0\r\nAuthorization: Bearer t0k\r\n\r\n")
        XCTAssertTrue(loop.run(until: { c1.result != nil }, timeout: 10))
        XCTAssertTrue(c1.result!.hasPrefix("HTTP/1.0 200") || c1.result!.hasPrefix("HTTP/1.1 200"), c1.result!)
        XCTAssertTrue(c1.result!.hasSuffix("ok 1 0"), c1.result!)
        XCTAssertEqual(seen.last?.header("Authorization"), "Bearer t0k")
        XCTAssertEqual(seen.last?.query["b"], "two")

        let c2 = RawHTTPClient()
        c2.send(port: server.port, "POST /later HTTP/1.0\r\nContent-Length: 5\r\n\r\nhello")
        XCTAssertTrue(loop.run(until: { pending != nil }, timeout: 10))
        XCTAssertEqual(seen.last?.body, Array("hello".utf8))
        let answer = TimerWatcher(loop: loop) { _ in
            pending!.respond(HTTPResponse(status: 504, text: "{\"error\":\"agent did not answer\"}"))
        }
        answer.start(after: 0.05)
        XCTAssertTrue(loop.run(until: { c2.result != nil }, timeout: 10))
        XCTAssertTrue(c2.result!.contains(" 504 "), c2.result!)
        XCTAssertTrue(c2.result!.hasSuffix("{\"error\":\"agent did not answer\"}"))

        let c3 = RawHTTPClient()
        c3.send(port: server.port, "POST /big HTTP/1.0\r\nContent-Length: 100\r\n\r\n" + String(repeating: "x", count: 100))
        XCTAssertTrue(loop.run(until: { c3.result != nil }, timeout: 10))
        XCTAssertTrue(c3.result!.contains(" 413 "), c3.result!)
        XCTAssertEqual(server.rejectedBodies, 1)
        XCTAssertEqual(seen.count, 2, "the oversized request never reached the handler")
        server.stop()
    }

    /// MHD aborts when stopped with a suspended connection; `stop()` must
    /// answer waiting requests first.
    func testStopWhileARequestWaitsForALateAnswer() throws {
        let loop = EventLoop()
        var pending: HTTPResponder?
        let server = HTTPServer(loop: loop) { _, responder in pending = responder }
        try server.start(address: SocketAddress(parsing: "127.0.0.1:0"))
        let c = RawHTTPClient()
        c.send(port: server.port, "GET /wait HTTP/1.0\r\n\r\n")
        XCTAssertTrue(loop.run(until: { pending != nil }, timeout: 10))
        server.stop()
        XCTAssertTrue(loop.run(until: { c.result != nil }, timeout: 10))
        XCTAssertTrue(c.result!.isEmpty || c.result!.contains(" 503 "), c.result!)
        pending!.respond(HTTPResponse(status: 200, text: "late"))   // ignored, no crash
    }

    func testBindFailureNamesTheAddress() throws {
        let loop = EventLoop()
        let a = HTTPServer(loop: loop) { _, r in r.respond(HTTPResponse(status: 200, text: "")) }
        try a.start(address: SocketAddress(parsing: "127.0.0.1:0"))
        let b = HTTPServer(loop: loop) { _, r in r.respond(HTTPResponse(status: 200, text: "")) }
        XCTAssertThrowsError(try b.start(address: SocketAddress(parsing: "127.0.0.1:\(a.port)"))) { e in
            XCTAssertTrue("\(e)".contains("127.0.0.1:\(a.port)"), "\(e)")
        }
        a.stop()
    }
}
