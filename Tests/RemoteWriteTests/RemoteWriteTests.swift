// The remote-write pieces in process: the WriteRequest bytes against the
// protobuf format, snappy, the URL rules, the HTTP response parser, and the
// sender against a scripted receiver on the same loop (retry on 5xx and
// connection errors, drop and count on 4xx, the queue bound, batching, the
// spec's headers). Against Debian's real prometheus: PrometheusReceiverTests.
import XCTest
import Reactor
@testable import RemoteWrite

final class RemoteWriteTests: XCTestCase {
    func testWriteRequestBytesFollowTheProtobufFormat() {
        let s = Series(name: "up", labels: [("job", "a")], samples: [(1.0, 1000)])
        // timeseries{labels{name:"__name__" value:"up"} labels{name:"job" value:"a"} samples{value:1 timestamp:1000}}
        let expected: [UInt8] = [0x0A, 0x28,
                                 0x0A, 0x0E, 0x0A, 0x08] + Array("__name__".utf8) + [0x12, 0x02] + Array("up".utf8)
            + [0x0A, 0x08, 0x0A, 0x03] + Array("job".utf8) + [0x12, 0x01] + Array("a".utf8)
            + [0x12, 0x0C, 0x09, 0, 0, 0, 0, 0, 0, 0xF0, 0x3F, 0x10, 0xE8, 0x07]
        XCTAssertEqual(WriteRequestEncoder.encode([s]), expected)
    }

    func testLabelsAreSortedByNameWithTheMetricName() {
        let s = Series(name: "m", labels: [("source", "ipa"), ("agent", "a1"), ("project", "p")], samples: [])
        XCTAssertEqual(s.labels.map(\.name), ["__name__", "agent", "project", "source"])
    }

    func testSnappyRoundTrip() {
        let raw = WriteRequestEncoder.encode((0..<500).map { Series(name: "x_total", labels: [("i", "\($0 % 10)")], samples: [(Double($0), 5)]) })
        let c = Snappy.compress(raw)
        XCTAssertLessThan(c.count, raw.count / 2)
        XCTAssertEqual(Snappy.uncompress(c), raw)
        XCTAssertEqual(ProtobufReader.samples(raw), 500)
    }

    func testURLs() throws {
        let u = try RemoteWriteURL(parsing: "http://127.0.0.1:9090/api/v1/write")
        XCTAssertEqual(u.host, "127.0.0.1"); XCTAssertEqual(u.port, 9090); XCTAssertEqual(u.path, "/api/v1/write")
        XCTAssertEqual(try RemoteWriteURL(parsing: "http://[::1]/w?x=1").description, "http://[::1]:80/w?x=1")
        XCTAssertEqual(try RemoteWriteURL(parsing: "http://mimir.example").path, "/")
        let s = try RemoteWriteURL(parsing: "HTTPS://mimir.example/api/v1/push")
        XCTAssertTrue(s.tls); XCTAssertEqual(s.port, 443); XCTAssertEqual(s.hostHeader, "mimir.example")
        XCTAssertEqual(s.description, "https://mimir.example:443/api/v1/push")
        XCTAssertEqual(try RemoteWriteURL(parsing: "https://127.0.0.1:9443/w").hostHeader, "127.0.0.1:9443")
        XCTAssertFalse(u.tls)
        for (bad, says) in [("ftp://x", "expected an http:// or https:// URL"),
                            ("http://u:p@x/", "credentials"), ("http://x:0/", "bad port"), ("http://x:99999/", "bad port"),
                            ("http:///p", "bad host"), ("http://x/a b", "%-encoding")] {
            XCTAssertThrowsError(try RemoteWriteURL(parsing: bad), bad) { XCTAssertTrue("\($0)".contains(says), "\($0)") }
        }
    }

    func testBase64() {
        XCTAssertEqual(Base64.encode(Array("user:pass".utf8)), "dXNlcjpwYXNz")
        XCTAssertEqual(Base64.encode(Array("ab".utf8)), "YWI=")
        XCTAssertEqual(Base64.encode(Array("a".utf8)), "YQ==")
    }

    // MARK: the response parser

    func parse(_ text: String, pieces: Int = 1000) throws -> HTTPResponse? {
        var p = HTTPResponseParser()
        let bytes = Array(text.utf8)
        var i = 0
        while i < bytes.count {
            let end = min(bytes.count, i + pieces)
            let (used, r) = try bytes[i..<end].withUnsafeBytes { try p.feed($0) }
            if let r { return r }
            i += used
        }
        return try? p.endOfInput()
    }

    func testResponses() throws {
        for pieces in [1, 3, 1000] {
            XCTAssertEqual(try parse("HTTP/1.1 204 No Content\r\n\r\n", pieces: pieces), HTTPResponse(status: 204, body: [], keepAlive: true))
            XCTAssertEqual(try parse("HTTP/1.1 400 Bad\r\nContent-Length: 3\r\n\r\nabc", pieces: pieces)?.body, Array("abc".utf8))
            XCTAssertEqual(try parse("HTTP/1.1 500 E\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n1;x\r\nc\r\n0\r\n\r\n",
                                     pieces: pieces)?.body, Array("abc".utf8))
            XCTAssertEqual(try parse("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.0 200 OK\r\n\r\nrest", pieces: pieces),
                           HTTPResponse(status: 200, body: Array("rest".utf8), keepAlive: false))
            XCTAssertEqual(try parse("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n", pieces: pieces)?.keepAlive, false)
        }
        let long = "HTTP/1.1 400 B\r\nContent-Length: 2000\r\n\r\n" + String(repeating: "x", count: 2000)
        XCTAssertEqual(try parse(long)?.body.count, HTTPResponseParser.keptBodyBytes)
    }

    func testMalformedResponsesAreNamedErrors() {
        let cases: [(String, HTTPParseError)] = [
            ("HTTP/2 200 OK\r\n\r\n", .badStatusLine("HTTP/2 200 OK")),
            ("HTTP/1.1 20 OK\r\n\r\n", .badStatusLine("HTTP/1.1 20 OK")),
            ("HTTP/1.1 200 OK\r\nNoColon\r\n\r\n", .badHeader("NoColon")),
            ("HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", .badContentLength("-1")),
            ("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", .badContentLength("2")),
            ("HTTP/1.1 200 OK\r\nContent-Length: 99999999\r\n\r\n", .bodyTooLong),
            ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", .badChunk("zz")),
            ("HTTP/1.1 500 E\r\nTransfer-Encoding: chunked\r\n\r\n-94\r\nab", .badChunk("-94")),
            ("HTTP/1.1 500 E\r\nTransfer-Encoding: chunked\r\n\r\n+4\r\nab", .badChunk("+4")),
            ("HTTP/1.1 200 OK\r\n" + String(repeating: "X-A: b\r\n", count: 3000), .headTooLong),
        ]
        for (text, expected) in cases {
            XCTAssertThrowsError(try parse(text), text) { XCTAssertEqual($0 as? HTTPParseError, expected, text) }
        }
        var p = HTTPResponseParser()
        _ = try? Array("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab".utf8).withUnsafeBytes { try p.feed($0) }
        XCTAssertThrowsError(try p.endOfInput()) { XCTAssertEqual($0 as? HTTPParseError, .truncated) }
    }

    // MARK: the sender against a scripted receiver

    func series(_ n: Int, from: Int = 0) -> [Series] {
        (from..<(from + n)).map { Series(name: "t_total", labels: [("i", "\($0)")], samples: [(Double($0), 1_000 + Int64($0))]) }
    }

    func sender(_ loop: EventLoop, port: UInt16, perRequest: Int = 100, queue: Int = 1000) throws -> RemoteWriteSender {
        var o = RemoteWriteOptions(url: try RemoteWriteURL(parsing: "http://127.0.0.1:\(port)/api/v1/write"))
        o.maxSamplesPerRequest = perRequest
        o.maxQueuedSamples = queue
        o.flushInterval = 0.02
        o.timeout = 2
        o.backoffMin = 0.01; o.backoffMax = 0.02; o.backoffCap = 0.05
        o.authorization = "Bearer s3cret"
        return RemoteWriteSender(loop: loop, options: o)
    }

    func testBatchesWithTheSpecsHeadersOnOneKeptAliveConnection() throws {
        let loop = EventLoop()
        let rx = try FakeReceiver(loop: loop, statuses: [204])
        defer { rx.close() }
        let s = try sender(loop, port: rx.port, perRequest: 100)
        s.start()
        defer { s.close() }
        for x in series(250) { s.enqueue(x) }
        XCTAssertTrue(loop.run(until: { s.stats.samplesSent == 250 }, timeout: 10))
        XCTAssertEqual(rx.requests.map { FakeReceiver.sampleCount($0.body) }, [100, 100, 50])
        XCTAssertEqual(rx.connections, 1)
        let h = rx.requests[0].header
        XCTAssertTrue(rx.requests[0].head.hasPrefix("POST /api/v1/write HTTP/1.1\r\n"))
        XCTAssertEqual(h["content-encoding"], "snappy")
        XCTAssertEqual(h["content-type"], "application/x-protobuf")
        XCTAssertEqual(h["x-prometheus-remote-write-version"], "0.1.0")
        XCTAssertEqual(h["authorization"], "Bearer s3cret")
        XCTAssertEqual(s.stats.requestsOK, 3)
        XCTAssertEqual(s.queuedSamples, 0)
        XCTAssertEqual(s.lagSeconds, 0)
    }

    func testServerErrorIsRetriedThenSentAndClientErrorDropped() throws {
        let loop = EventLoop()
        let rx = try FakeReceiver(loop: loop, statuses: [500, 503, 204, 400, 204])
        defer { rx.close() }
        let s = try sender(loop, port: rx.port, perRequest: 10)
        s.start()
        defer { s.close() }
        for x in series(10) { s.enqueue(x) }
        XCTAssertTrue(loop.run(until: { s.stats.samplesSent == 10 }, timeout: 10))
        XCTAssertEqual(s.stats.requestsServerError, 2)
        XCTAssertEqual(s.stats.samplesRetried, 20)
        XCTAssertEqual(rx.requests.count, 3)
        XCTAssertEqual(rx.requests[0].body, rx.requests[2].body, "the same request again")
        for x in series(10, from: 10) { s.enqueue(x) }   // answered 400
        for x in series(10, from: 20) { s.enqueue(x) }   // answered 204
        XCTAssertTrue(loop.run(until: { s.stats.samplesSent == 20 }, timeout: 10))
        XCTAssertEqual(s.stats.droppedRejected, 10)
        XCTAssertEqual(s.stats.requestsRejected, 1)
        XCTAssertEqual(rx.requests.count, 5, "a 4xx is not retried")
    }

    func testAnAnswerThatNeverComesTimesOutAndIsRetriedOnANewConnection() throws {
        let loop = EventLoop()
        let rx = try FakeReceiver(loop: loop, statuses: [204])
        rx.silent = true
        defer { rx.close() }
        var o = RemoteWriteOptions(url: try RemoteWriteURL(parsing: "http://127.0.0.1:\(rx.port)/w"))
        o.flushInterval = 0.02
        o.timeout = 0.2
        o.backoffMin = 0.01; o.backoffMax = 0.02; o.backoffCap = 0.05
        let s = RemoteWriteSender(loop: loop, options: o)
        s.start()
        defer { s.close() }
        for x in series(5) { s.enqueue(x) }
        XCTAssertTrue(loop.run(until: { s.stats.requestsFailed >= 1 && rx.requests.count >= 2 }, timeout: 10))
        XCTAssertEqual(rx.connections, 2, "a timed-out connection is not reused")
        rx.silent = false
        XCTAssertTrue(loop.run(until: { s.stats.samplesSent == 5 }, timeout: 10))
        XCTAssertEqual(rx.requests.first?.body, rx.requests.last?.body)
    }

    func testReceiverDownIsRetriedAndTheQueueDropsTheOldest() throws {
        let loop = EventLoop()
        // A port with nothing listening: bind a listener, note its port, close it.
        let port: UInt16
        do {
            let probe = try FakeReceiver(loop: loop, statuses: [204])
            port = probe.port
            probe.close()
        }
        let s = try sender(loop, port: port, perRequest: 100, queue: 1000)
        s.start()
        defer { s.close() }
        for x in series(100) { s.enqueue(x) }
        XCTAssertTrue(loop.run(until: { s.stats.requestsFailed >= 2 }, timeout: 10))
        XCTAssertGreaterThanOrEqual(s.stats.samplesRetried, 100)
        for x in series(1500, from: 100) { s.enqueue(x) }
        XCTAssertEqual(s.queuedSamples, 1000, "bounded")
        XCTAssertEqual(s.stats.droppedQueueFull, 500, "the oldest queued samples")
        XCTAssertGreaterThan(s.lagSeconds, 0)
        XCTAssertEqual(s.stats.samplesSent, 0)

        // The receiver comes back on that port: everything still held is sent.
        let rx = try FakeReceiverAt(loop: loop, port: port)
        defer { rx.close() }
        XCTAssertTrue(loop.run(until: { s.isIdle }, timeout: 20))
        XCTAssertEqual(s.stats.samplesSent, 1100)
    }
}

/// A FakeReceiver bound to a given port (answers 204).
final class FakeReceiverAt {
    let listener: TCPListener
    private var live: [TCPConnection] = []
    init(loop: EventLoop, port: UInt16) throws {
        var box: ((Int32, SocketAddress) -> Void)?
        listener = try TCPListener(loop: loop, address: try SocketAddress(ip: "127.0.0.1", port: port)) { fd, peer in box?(fd, peer) }
        box = { [unowned self] fd, peer in
            let cb = TCPCallbacks(onRead: { c, buf in
                while let end = FakeReceiver.find(Array(buf.readable), [13, 10, 13, 10]) {
                    let head = String(decoding: Array(buf.readable)[..<end], as: UTF8.self).lowercased()
                    let len = head.split(separator: "\r\n").first { $0.hasPrefix("content-length:") }
                        .flatMap { Int($0.dropFirst("content-length:".count).trimmingCharacters(in: .whitespaces)) } ?? 0
                    guard buf.readableBytes >= end + 4 + len else { return }
                    buf.consume(end + 4 + len)
                    _ = c.write(Array("HTTP/1.1 204 No Content\r\n\r\n".utf8))
                }
            })
            self.live.append(TCPConnection(loop: loop, fd: fd, peer: peer, handler: cb))
        }
        listener.start()
    }
    func close() { listener.stop(); for c in live { c.abort() } }
}
