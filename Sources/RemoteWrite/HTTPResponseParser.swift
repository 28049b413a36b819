// HTTPResponseParser: an HTTP/1.1 response read incrementally from the
// bytes a remote-write receiver sends back — status line, headers, and a
// body framed by Content-Length, chunked transfer coding, or the end of the
// connection. These are outside bytes, so everything is bounded (head 16
// KiB, body 1 MiB, of which the first 512 bytes are kept for the log) and
// any malformed byte is a typed error naming what was wrong; the fuzz
// target `fuzz-http-response` drives it with arbitrary input.
//
// 1xx interim responses are skipped. A response to a POST always has a body
// framing, so "no Content-Length and not chunked" means "until close", and
// such a connection cannot be reused.
//
// Thread: any (a value; the sender uses it on the loop thread).

public struct HTTPResponse: Equatable, Sendable {
    public var status: Int
    /// The first `HTTPResponseParser.keptBodyBytes` of the body.
    public var body: [UInt8]
    /// The connection may carry the next request.
    public var keepAlive: Bool
}

public enum HTTPParseError: Error, Equatable, CustomStringConvertible {
    case headTooLong
    case badStatusLine(String)
    case badHeader(String)
    case badContentLength(String)
    case badChunk(String)
    case bodyTooLong
    /// The connection ended before the response did.
    case truncated

    public var description: String {
        switch self {
        case .headTooLong: return "response head longer than \(HTTPResponseParser.maxHeadBytes) bytes"
        case .badStatusLine(let l): return "bad status line \"\(l)\""
        case .badHeader(let h): return "bad header line \"\(h)\""
        case .badContentLength(let v): return "bad Content-Length \"\(v)\""
        case .badChunk(let c): return "bad chunk size line \"\(c)\""
        case .bodyTooLong: return "response body longer than \(HTTPResponseParser.maxBodyBytes) bytes"
        case .truncated: return "connection closed before the response ended"
        }
    }
}

public struct HTTPResponseParser {
    public static let maxHeadBytes = 16 * 1024
    public static let maxBodyBytes = 1 << 20
    public static let keptBodyBytes = 512
    static let maxLineBytes = 1024

    private enum State {
        case head
        case body(remaining: Int)
        case chunkSize
        case chunkData(remaining: Int)
        case chunkEnd          // the CRLF after a chunk's data
        case trailer
        case untilClose
    }

    private var state = State.head
    private var line: [UInt8] = []
    private var headBytes = 0
    private var status = 0
    private var keepAlive = true
    private var bodyBytes = 0
    private var body: [UInt8] = []
    private var headLines: [String] = []

    public init() {}

    /// Feeds bytes; returns how many were used and the response once it is
    /// complete (bytes after it are left for the caller: a pipelining peer's
    /// garbage, which the sender treats as an error).
    public mutating func feed(_ bytes: UnsafeRawBufferPointer) throws(HTTPParseError) -> (consumed: Int, response: HTTPResponse?) {
        var i = 0
        let n = bytes.count
        while i < n {
            switch state {
            case .head, .chunkSize, .chunkEnd, .trailer:
                let b = bytes[i]
                i += 1
                if case .head = state {
                    headBytes += 1
                    if headBytes > HTTPResponseParser.maxHeadBytes { throw .headTooLong }
                } else if line.count >= HTTPResponseParser.maxLineBytes {
                    throw .badChunk(HTTPResponseParser.text(line))
                }
                if b != 0x0A { line.append(b); continue }
                if line.last == 0x0D { line.removeLast() }
                let l = line
                line.removeAll(keepingCapacity: true)
                if let r = try endOfLine(l) { return (i, r) }
            case .body(let remaining):
                let take = min(remaining, n - i)
                keep(bytes, i, take)
                i += take
                if remaining - take == 0 { return (i, finish()) }
                state = .body(remaining: remaining - take)
            case .chunkData(let remaining):
                let take = min(remaining, n - i)
                keep(bytes, i, take)
                i += take
                state = remaining - take == 0 ? .chunkEnd : .chunkData(remaining: remaining - take)
            case .untilClose:
                keep(bytes, i, n - i)
                i = n
            }
            if bodyBytes > HTTPResponseParser.maxBodyBytes { throw .bodyTooLong }
        }
        return (n, nil)
    }

    /// The connection ended: the response, if its body ran until the close.
    public mutating func endOfInput() throws(HTTPParseError) -> HTTPResponse {
        guard case .untilClose = state else { throw .truncated }
        return finish()
    }

    private mutating func keep(_ bytes: UnsafeRawBufferPointer, _ at: Int, _ count: Int) {
        bodyBytes += count
        let room = HTTPResponseParser.keptBodyBytes - body.count
        if room > 0 { body.append(contentsOf: bytes[at..<(at + min(room, count))]) }
    }

    private mutating func finish() -> HTTPResponse {
        let r = HTTPResponse(status: status, body: body, keepAlive: keepAlive)
        self = HTTPResponseParser()
        return r
    }

    private mutating func endOfLine(_ l: [UInt8]) throws(HTTPParseError) -> HTTPResponse? {
        switch state {
        case .head:
            if !l.isEmpty {
                guard l.allSatisfy({ $0 == 0x09 || ($0 >= 0x20 && $0 != 0x7F) || $0 >= 0x80 }) else {
                    throw headLines.isEmpty ? .badStatusLine(HTTPResponseParser.text(l)) : .badHeader(HTTPResponseParser.text(l))
                }
                headLines.append(String(decoding: l, as: UTF8.self))
                return nil
            }
            if headLines.isEmpty { return nil }   // tolerated: an empty line before the status line
            return try headEnded()
        case .chunkSize:
            let text = HTTPResponseParser.text(l)
            let sizePart = l.prefix { $0 != UInt8(ascii: ";") }.filter { $0 != 0x20 && $0 != 0x09 }
            // Hex digits only: Int(_:radix:) would also take a sign ("-94").
            let isHex = sizePart.allSatisfy { ($0 >= 0x30 && $0 <= 0x39) || ($0 | 0x20 >= 0x61 && $0 | 0x20 <= 0x66) }
            guard !sizePart.isEmpty, sizePart.count <= 8, isHex,
                  let size = Int(String(decoding: sizePart, as: UTF8.self), radix: 16) else {
                throw .badChunk(text)
            }
            if bodyBytes + size > HTTPResponseParser.maxBodyBytes { throw .bodyTooLong }
            state = size == 0 ? .trailer : .chunkData(remaining: size)
            return nil
        case .chunkEnd:
            guard l.isEmpty else { throw .badChunk(HTTPResponseParser.text(l)) }
            state = .chunkSize
            return nil
        case .trailer:
            return l.isEmpty ? finish() : nil
        case .body, .chunkData, .untilClose:
            return nil
        }
    }

    private mutating func headEnded() throws(HTTPParseError) -> HTTPResponse? {
        let statusLine = headLines[0]
        let parts = statusLine.split(separator: " ", maxSplits: 2, omittingEmptySubsequences: false)
        guard parts.count >= 2, parts[0] == "HTTP/1.1" || parts[0] == "HTTP/1.0", parts[1].count == 3,
              parts[1].allSatisfy({ $0.isASCII && $0.isNumber }), let code = Int(parts[1]), code >= 100 else {
            throw .badStatusLine(statusLine)
        }
        status = code
        keepAlive = parts[0] == "HTTP/1.1"
        var length: Int?
        var chunked = false
        for h in headLines.dropFirst() {
            guard let colon = h.firstIndex(of: ":"), colon != h.startIndex,
                  !h[..<colon].contains(where: { $0 == " " || $0 == "\t" }) else { throw .badHeader(h) }
            let name = h[..<colon].lowercased()
            let value = h[h.index(after: colon)...].httpTrimmed()
            switch name {
            case "content-length":
                guard let v = Int(value), v >= 0, value.allSatisfy({ $0.isASCII && $0.isNumber }),
                      length == nil || length == v else { throw .badContentLength(value) }
                if v > HTTPResponseParser.maxBodyBytes { throw .bodyTooLong }
                length = v
            case "transfer-encoding":
                chunked = value.lowercased().hasSuffix("chunked")
            case "connection":
                let v = value.lowercased()
                if v.contains("close") { keepAlive = false } else if v.contains("keep-alive") { keepAlive = true }
            default:
                break
            }
        }
        headLines.removeAll()
        headBytes = 0
        if code < 200 && code != 101 {   // interim: the real response follows
            state = .head
            return nil
        }
        if code == 204 || code == 304 { return finish() }
        if chunked {
            state = .chunkSize
        } else if let length {
            if length == 0 { return finish() }
            state = .body(remaining: length)
        } else {
            keepAlive = false
            state = .untilClose
        }
        return nil
    }

    static func text(_ bytes: [UInt8]) -> String {
        String(decoding: bytes.prefix(80), as: UTF8.self)
    }
}

extension Substring {
    func httpTrimmed() -> String {
        var s = self[...]
        while let f = s.first, f == " " || f == "\t" { s = s.dropFirst() }
        while let l = s.last, l == " " || l == "\t" { s = s.dropLast() }
        return String(s)
    }
}
