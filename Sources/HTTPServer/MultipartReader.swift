// MultipartReader: a `multipart/form-data` body (RFC 7578) read as a
// stream — what a browser's file upload sends. Bytes go in as they arrive,
// in pieces of any size; the content of one named part (the file) comes
// out as it is found, never collected. Memory: the piece being read plus
// the few bytes that might begin a boundary (kept for the next piece), and
// a part's headers (at most `maxHeaderBytes`). Other parts are skipped.
//
//   --BOUNDARY CRLF headers CRLF CRLF content CRLF --BOUNDARY ... CRLF --BOUNDARY-- epilogue
//
// Errors name what was wrong; the reader never traps on any input
// (fuzz-multipart feeds it every split of random bodies and checks the
// content comes out the same whatever the pieces).
//
// Thread: any; a value owned by one reader.

public struct MultipartError: Error, Equatable, CustomStringConvertible {
    public let description: String
    init(_ d: String) { description = d }
}

public struct MultipartReader {
    /// Longest headers block of one part.
    public static let maxHeaderBytes = 8192
    /// Longest boundary (RFC 2046: 70 characters).
    public static let maxBoundaryBytes = 70

    private enum State { case preamble, afterDelimiter, headers, content, epilogue }

    /// The part whose content is delivered (`name="file"`).
    public let field: String
    /// CRLF "--" boundary.
    private let delimiter: [UInt8]
    private var state = State.preamble
    /// Bytes kept from earlier pieces (a possible boundary start, headers).
    private var pending: [UInt8]
    private var inField = false
    /// Whether the named part was seen, and ended.
    public private(set) var sawField = false
    public private(set) var fieldEnded = false
    /// The named part's file name, when its headers gave one.
    public private(set) var fileName: String?

    /// A reader for a body of `contentType`; nil when it is not
    /// `multipart/form-data` with a usable boundary.
    public init?(contentType: String, field: String = "file") {
        guard let boundary = MultipartReader.boundary(contentType) else { return nil }
        self.field = field
        delimiter = Array("\r\n--".utf8) + Array(boundary.utf8)
        // The body's first boundary has no CRLF before it: pretend it had.
        pending = [0x0D, 0x0A]
    }

    /// The `boundary` parameter of a `multipart/form-data` content type.
    public static func boundary(_ contentType: String) -> String? {
        let parts = contentType.split(separator: ";").map { $0.trimmingCharacters() }
        guard let type = parts.first, type.lowercased() == "multipart/form-data" else { return nil }
        for p in parts.dropFirst() {
            guard let eq = p.firstIndex(of: "=") else { continue }
            guard p[..<eq].trimmingCharacters().lowercased() == "boundary" else { continue }
            var v = p[p.index(after: eq)...].trimmingCharacters()
            if v.count >= 2 && v.hasPrefix("\"") && v.hasSuffix("\"") { v = String(v.dropFirst().dropLast()) }
            guard !v.isEmpty, v.utf8.count <= maxBoundaryBytes, v.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F || $0 == 0x20 }) else {
                return nil
            }
            return v
        }
        return nil
    }

    /// Reads a piece of the body; `content` gets the named part's bytes
    /// (views valid during the call only).
    public mutating func feed(_ bytes: UnsafeRawBufferPointer, _ content: (UnsafeRawBufferPointer) -> Void) throws(MultipartError) {
        if state == .epilogue { return }
        pending.append(contentsOf: bytes)
        var start = 0
        defer { pending.removeFirst(start) }
        while start < pending.count {
            switch state {
            case .preamble, .content:
                if let i = find(delimiter, in: pending, from: start) {
                    if state == .content && inField { deliver(start..<i, content) }
                    if inField { fieldEnded = true; inField = false }
                    start = i + delimiter.count
                    state = .afterDelimiter
                } else {
                    // Keep what could be the start of a delimiter.
                    let keep = min(pending.count - start, delimiter.count - 1)
                    let end = pending.count - keep
                    if state == .content && inField && end > start { deliver(start..<end, content) }
                    start = end
                    return
                }
            case .afterDelimiter:
                guard pending.count - start >= 2 else { return }
                let a = pending[start], b = pending[start + 1]
                if a == 0x2D && b == 0x2D {            // "--": the last boundary
                    state = .epilogue
                    start = pending.count
                    return
                }
                // Transport padding (spaces, tabs) may follow a boundary.
                if a == 0x20 || a == 0x09 { start += 1; continue }
                guard a == 0x0D && b == 0x0A else { throw MultipartError("a boundary is followed by neither CRLF nor --") }
                start += 2
                state = .headers
            case .headers:
                guard let end = find([0x0D, 0x0A, 0x0D, 0x0A], in: pending, from: start) else {
                    // +3: the block's end may have begun (CR, CRLF, CRLF CR).
                    if pending.count - start > MultipartReader.maxHeaderBytes + 3 {
                        throw MultipartError("a part's headers are longer than \(MultipartReader.maxHeaderBytes) bytes")
                    }
                    return
                }
                guard end - start <= MultipartReader.maxHeaderBytes else {
                    throw MultipartError("a part's headers are longer than \(MultipartReader.maxHeaderBytes) bytes")
                }
                let (name, file) = MultipartReader.disposition(pending[start..<end])
                inField = name == field && !sawField
                if inField { sawField = true; fileName = file }
                start = end + 4
                state = .content
            case .epilogue:
                start = pending.count
                return
            }
        }
    }

    /// The body is over: an error unless it ended with its last boundary
    /// and held the named part.
    public func finish() throws(MultipartError) {
        guard state == .epilogue else { throw MultipartError("the body ended before its closing boundary") }
        guard sawField else { throw MultipartError("no part named \"\(field)\"") }
    }

    private func deliver(_ range: Range<Int>, _ content: (UnsafeRawBufferPointer) -> Void) {
        guard !range.isEmpty else { return }
        pending.withUnsafeBytes { content(UnsafeRawBufferPointer(rebasing: $0[range])) }
    }

    private func find(_ needle: [UInt8], in hay: [UInt8], from: Int) -> Int? {
        guard let first = needle.first, hay.count - from >= needle.count else { return nil }
        var i = from
        let last = hay.count - needle.count
        while i <= last {
            if hay[i] == first {
                var j = 1
                while j < needle.count && hay[i + j] == needle[j] { j += 1 }
                if j == needle.count { return i }
            }
            i += 1
        }
        return nil
    }

    /// The `name` and `filename` of a part's Content-Disposition header.
    static func disposition(_ block: ArraySlice<UInt8>) -> (name: String?, file: String?) {
        let text = String(decoding: block, as: UTF8.self)
        for line in text.split(separator: "\r\n") {
            guard let colon = line.firstIndex(of: ":"),
                  line[..<colon].trimmingCharacters().lowercased() == "content-disposition" else { continue }
            var name: String?, file: String?
            for p in line[line.index(after: colon)...].split(separator: ";").dropFirst() {
                guard let eq = p.firstIndex(of: "=") else { continue }
                let key = p[..<eq].trimmingCharacters().lowercased()
                var v = p[p.index(after: eq)...].trimmingCharacters()
                if v.count >= 2 && v.hasPrefix("\"") && v.hasSuffix("\"") { v = String(v.dropFirst().dropLast()) }
                if key == "name" { name = v } else if key == "filename" { file = v }
            }
            return (name, file)
        }
        return (nil, nil)
    }
}

extension StringProtocol {
    /// Without leading and trailing spaces and tabs (no Foundation here).
    func trimmingCharacters() -> String {
        var s = Substring(self)
        while let f = s.first, f == " " || f == "\t" { s.removeFirst() }
        while let l = s.last, l == " " || l == "\t" { s.removeLast() }
        return String(s)
    }
}
