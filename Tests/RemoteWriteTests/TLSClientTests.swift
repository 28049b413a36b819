// The https client's refusals, named: against `openssl s_server` (a real
// TLS server, on loopback) with certificates made by `openssl req`, the
// handshake fails when the CA file does not hold the server's issuer, and
// when the certificate is not for the URL's host — each a `.tls` failure
// whose text says which. A CA file without a certificate is refused when
// loaded. (Samples over https to a real receiver: CollectorTests'
// RemoteWritePrometheusTests.)
import Foundation
import XCTest
import Reactor
@testable import RemoteWrite

final class TLSClientTests: XCTestCase {
    var dir: URL!

    override func setUp() {
        dir = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("vigil-tls-\(UUID().uuidString)")
        try! FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }

    override func tearDown() { try? FileManager.default.removeItem(at: dir) }

    @discardableResult
    func run(_ path: String, _ args: [String]) throws -> Int32 {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: path)
        p.arguments = args
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        p.waitUntilExit()
        return p.terminationStatus
    }

    /// A self-signed certificate for `san`; returns (cert, key) paths.
    func certificate(_ name: String, san: String) throws -> (String, String) {
        let cert = dir.appendingPathComponent("\(name).crt").path, key = dir.appendingPathComponent("\(name).key").path
        XCTAssertEqual(try run("/usr/bin/openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                                                    "-nodes", "-days", "2", "-subj", "/CN=\(name)", "-addext", "subjectAltName=\(san)",
                                                    "-keyout", key, "-out", cert]), 0)
        return (cert, key)
    }

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

    /// `openssl s_server` on a free loopback port with `cert`; stopped by the caller.
    func server(_ cert: String, _ key: String) throws -> (Process, Pipe, UInt16) {
        let loop = EventLoop()
        let port = TLSClientTests.freePort()
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
        p.arguments = ["s_server", "-quiet", "-accept", "127.0.0.1:\(port)", "-cert", cert, "-key", key]
        let stdin = Pipe()
        p.standardInput = stdin
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        // Listening once a plain connect succeeds.
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline {
            var up = false
            let c = TCPConnection.connect(loop: loop, to: try SocketAddress(ip: "127.0.0.1", port: port),
                                          handler: TCPCallbacks(onConnect: { c in up = true; c.abort() }))
            _ = loop.run(until: { up || c.state == .closed }, timeout: 1)
            if up { return (p, stdin, port) }
            usleep(50_000)
        }
        p.terminate()
        throw NSError(domain: "s_server", code: 1)
    }

    /// A TLS HTTP/1.1 receiver in Python's `ssl` (OpenSSL) on a free
    /// loopback port: reads POSTs with a Content-Length, answers each 200
    /// with the body's length and CRC-32, keeps the connection,
    /// and prints "close_notify" when a client ends a connection with one.
    func pythonReceiver(_ cert: String, _ key: String) throws -> (Process, Pipe, UInt16) {
        let port = TLSClientTests.freePort()
        let script = """
        import socket, ssl, sys, zlib
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(sys.argv[1], sys.argv[2])
        srv = socket.socket()
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind(("127.0.0.1", int(sys.argv[3])))
        srv.listen(8)
        print("ready", flush=True)
        while True:
            raw, _ = srv.accept()
            try:
                c = ctx.wrap_socket(raw, server_side=True)
                f = c.makefile("rb")
                while True:
                    line = f.readline()
                    if not line:
                        break
                    length = 0
                    while line not in (b"\\r\\n", b""):
                        if line.lower().startswith(b"content-length:"):
                            length = int(line.split(b":")[1])
                        line = f.readline()
                    body = f.read(length)
                    answer = b"%d %08x" % (len(body), zlib.crc32(body))
                    c.sendall(b"HTTP/1.1 200 OK\\r\\nContent-Length: %d\\r\\n\\r\\n%s" % (len(answer), answer))
                try:
                    c.unwrap()
                    print("close_notify", flush=True)
                except Exception:
                    pass
            except Exception as e:
                print("error", e, flush=True)
        """
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        p.arguments = ["-c", script, cert, key, "\(port)"]
        let out = Pipe()
        p.standardOutput = out
        p.standardError = FileHandle.nullDevice
        try p.run()
        let first = out.fileHandleForReading.availableData
        guard String(decoding: first, as: UTF8.self).hasPrefix("ready") else {
            p.terminate()
            throw NSError(domain: "receiver", code: 1)
        }
        return (p, out, port)
    }

    /// CRC-32 (IEEE, zlib's), bit by bit: the receiver's check of the bytes.
    static func crc32(_ bytes: [UInt8]) -> UInt32 {
        var table = [UInt32](repeating: 0, count: 256)
        for i in 0..<256 {
            var c = UInt32(i)
            for _ in 0..<8 { c = c & 1 != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
            table[i] = c
        }
        var crc: UInt32 = 0xFFFF_FFFF
        for b in bytes { crc = table[Int((crc ^ UInt32(b)) & 0xFF)] ^ (crc >> 8) }
        return crc ^ 0xFFFF_FFFF
    }

    func testRequestsOverTLSOnOneKeptConnectionLargeBodiesAndCloseNotify() throws {
        let (cert, key) = try certificate("receiver", san: "IP:127.0.0.1,DNS:localhost")
        let (p, out, port) = try pythonReceiver(cert, key)
        defer { p.terminate(); p.waitUntilExit() }
        let loop = EventLoop()
        let poster = HTTPPoster(loop: loop, url: try RemoteWriteURL(parsing: "https://127.0.0.1:\(port)/api/v1/write"), timeout: 10,
                                credentials: try TLSCredentials(caFile: cert))
        // A small body, then 3 MB (more than the connection's write queue
        // takes at once: the session waits for room), then a small one.
        var big = [UInt8](repeating: 0, count: 3 << 20)
        var x: UInt32 = 12345
        for i in big.indices { x = x &* 1103515245 &+ 12345; big[i] = UInt8(truncatingIfNeeded: x >> 16) }
        for body in [Array("first".utf8), big, Array("third".utf8)] {
            var result: Result<HTTPResponse, HTTPPoster.Failure>?
            poster.post(headers: [("Content-Type", "application/x-protobuf")], body: body) { result = $0 }
            XCTAssertTrue(loop.run(until: { result != nil }, timeout: 20))
            guard case .success(let r) = result else { p.terminate(); return XCTFail("a body of \(body.count) bytes: \(String(describing: result)); receiver: \(String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self))") }
            XCTAssertEqual(r.status, 200)
            let crc = String(TLSClientTests.crc32(body), radix: 16)
            XCTAssertEqual(String(decoding: r.body, as: UTF8.self), "\(body.count) \(String(repeating: "0", count: 8 - crc.count) + crc)")
        }
        XCTAssertEqual(poster.connectionsOpened, 1, "the TLS connection is kept alive between requests")
        poster.close()
        _ = loop.run(until: { false }, timeout: 0.3)
        var said = ""
        let deadline = Date().addingTimeInterval(5)
        while !said.contains("close_notify") && Date() < deadline {
            said += String(decoding: out.fileHandleForReading.availableData, as: UTF8.self)
        }
        XCTAssertTrue(said.contains("close_notify"), "close() ends the session with a close_notify: \(said)")
    }

    func post(port: UInt16, host: String = "127.0.0.1", ca: String) throws -> HTTPPoster.Failure? {
        let loop = EventLoop()
        let poster = HTTPPoster(loop: loop, url: try RemoteWriteURL(parsing: "https://\(host):\(port)/w"), timeout: 5,
                                credentials: try TLSCredentials(caFile: ca))
        defer { poster.close() }
        var result: Result<HTTPResponse, HTTPPoster.Failure>?
        poster.post(headers: [], body: Array("x".utf8)) { result = $0 }
        XCTAssertTrue(loop.run(until: { result != nil }, timeout: 10))
        guard case .failure(let f) = result else { return nil }
        return f
    }

    func testAnUntrustedCertificateAndAHostnameMismatchAreNamedFailures() throws {
        let (cert, key) = try certificate("server", san: "DNS:other.example")
        let (otherCA, _) = try certificate("someone-else", san: "IP:127.0.0.1")
        let (p, stdin, port) = try server(cert, key)
        defer { p.terminate(); p.waitUntilExit(); _ = stdin }

        let untrusted = try post(port: port, ca: otherCA)
        XCTAssertTrue(untrusted?.description.contains("certificate not trusted") == true, "\(String(describing: untrusted))")
        XCTAssertTrue(untrusted?.description.contains(otherCA) == true, "names the CA file")

        let mismatch = try post(port: port, ca: cert)
        XCTAssertEqual(mismatch?.description.contains("hostname mismatch (the certificate is not for 127.0.0.1)"), true,
                       "\(String(describing: mismatch))")
        XCTAssertEqual(mismatch?.description.contains("not trusted"), false, "the CA is right; only the name is wrong")
    }

    func testCAFilesAreCheckedWhenLoaded() throws {
        let empty = dir.appendingPathComponent("empty.pem").path
        try "no certificate here\n".write(toFile: empty, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try TLSCredentials(caFile: empty)) { XCTAssertTrue("\($0)".contains(empty), "\($0)") }
        XCTAssertThrowsError(try TLSCredentials(caFile: dir.appendingPathComponent("missing.pem").path))
        let (cert, _) = try certificate("ca", san: "DNS:localhost")
        XCTAssertEqual(try TLSCredentials(caFile: cert).count, 1)
        XCTAssertGreaterThan(try TLSCredentials(caFile: nil).count, 0, "the system trust store (Debian's ca-certificates)")
        XCTAssertTrue(TLSClient.isIPLiteral("127.0.0.1") && TLSClient.isIPLiteral("::1") && !TLSClient.isIPLiteral("prom.example"))
    }
}
