// FakeReceiver: a remote-write receiver on the test's loop — a TCPListener
// that reads each HTTP request (head and Content-Length body) and answers
// with the next scripted status (the last one repeats). It decodes each
// body (snappy, then the WriteRequest) so tests can count samples.
import Reactor
import RemoteWrite

final class FakeReceiver {
    struct Request {
        var head: String
        var body: [UInt8]
        var header: [String: String] {
            var h: [String: String] = [:]
            for line in head.split(separator: "\r\n").dropFirst() {
                if let c = line.firstIndex(of: ":") {
                    h[line[..<c].lowercased()] = String(line[line.index(after: c)...].drop { $0 == " " })
                }
            }
            return h
        }
    }

    let listener: TCPListener
    var statuses: [Int]
    /// Reads requests and never answers (for the timeout).
    var silent = false
    private(set) var requests: [Request] = []
    private(set) var connections = 0
    private var live: [TCPConnection] = []

    init(loop: EventLoop, statuses: [Int]) throws {
        self.statuses = statuses
        var handlerBox: ((Int32, SocketAddress) -> Void)?
        listener = try TCPListener(loop: loop, address: try SocketAddress(ip: "127.0.0.1", port: 0)) { fd, peer in handlerBox?(fd, peer) }
        handlerBox = { [unowned self] fd, peer in self.accept(loop, fd, peer) }
        listener.start()
    }

    var port: UInt16 { listener.localAddress.port }

    private func accept(_ loop: EventLoop, _ fd: Int32, _ peer: SocketAddress) {
        connections += 1
        let cb = TCPCallbacks(onRead: { [unowned self] c, buf in self.read(c, buf) })
        live.append(TCPConnection(loop: loop, fd: fd, peer: peer, handler: cb))
    }

    private func read(_ c: TCPConnection, _ buf: ByteBuffer) {
        while true {
            let bytes = Array(buf.readable)
            guard let end = FakeReceiver.find(bytes, [13, 10, 13, 10]) else { return }
            let head = String(decoding: bytes[..<end], as: UTF8.self)
            var r = Request(head: head, body: [])
            let length = Int(r.header["content-length"] ?? "0") ?? 0
            guard bytes.count >= end + 4 + length else { return }
            r.body = Array(bytes[(end + 4)..<(end + 4 + length)])
            buf.consume(end + 4 + length)
            requests.append(r)
            if silent { continue }
            let status = statuses.count > 1 ? statuses.removeFirst() : statuses[0]
            let text = status == 204 ? "" : "answer \(status)\n"
            _ = c.write(Array("HTTP/1.1 \(status) X\r\nContent-Length: \(text.utf8.count)\r\n\r\n\(text)".utf8))
        }
    }

    static func find(_ hay: [UInt8], _ needle: [UInt8]) -> Int? {
        guard hay.count >= needle.count else { return nil }
        for i in 0...(hay.count - needle.count) where hay[i..<(i + needle.count)].elementsEqual(needle) { return i }
        return nil
    }

    /// Samples in a request body (snappy, then WriteRequest).
    static func sampleCount(_ body: [UInt8]) -> Int {
        guard let raw = Snappy.uncompress(body) else { return -1 }
        return ProtobufReader.samples(raw)
    }

    func close() {
        listener.stop()
        for c in live { c.abort() }
    }
}

/// A minimal protobuf reader for the tests: counts Sample messages in a
/// WriteRequest (field 1 → TimeSeries, field 2 of it → Sample) and reads
/// labels, to check the encoder against the format rather than itself.
enum ProtobufReader {
    static func fields(_ b: ArraySlice<UInt8>) -> [(field: Int, bytes: ArraySlice<UInt8>?, fixed: UInt64?)] {
        var out: [(Int, ArraySlice<UInt8>?, UInt64?)] = []
        var i = b.startIndex
        func varint() -> UInt64 {
            var v: UInt64 = 0, shift: UInt64 = 0
            while i < b.endIndex { let x = b[i]; i += 1; v |= UInt64(x & 0x7F) << shift; shift += 7; if x < 0x80 { break } }
            return v
        }
        while i < b.endIndex {
            let key = varint()
            switch key & 7 {
            case 0: out.append((Int(key >> 3), nil, varint()))
            case 1:
                var v: UInt64 = 0
                for k in 0..<8 { v |= UInt64(b[i + k]) << (8 * UInt64(k)) }
                i += 8
                out.append((Int(key >> 3), nil, v))
            case 2:
                let n = Int(varint())
                out.append((Int(key >> 3), b[i..<(i + n)], nil))
                i += n
            default: return out
            }
        }
        return out
    }

    static func samples(_ raw: [UInt8]) -> Int {
        fields(raw[...]).reduce(0) { n, ts in n + fields(ts.bytes ?? []).filter { $0.field == 2 }.count }
    }
}
