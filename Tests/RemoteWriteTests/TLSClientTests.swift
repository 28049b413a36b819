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
