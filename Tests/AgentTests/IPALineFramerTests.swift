// IPALineFramer: a stream of IPA lines cut anywhere gives the parser the
// same lines as the whole file at once; a line longer than the parser
// takes is still counted once as `oversize`, with bounded memory.
import XCTest
@testable import IPAPipeline

final class IPALineFramerTests: XCTestCase {
    private func parse(_ bytes: [UInt8], pieces: Int) -> (records: [String], drops: IPADropCounters, held: Int) {
        var framer = IPALineFramer()
        var drops = IPADropCounters()
        var records: [String] = []
        var held = 0
        func lines(_ b: UnsafeRawBufferPointer) {
            IPAParser.parse(b, drops: &drops) { records.append($0.pathString + " " + String($0.durationMs)) }
        }
        var at = 0
        while at < bytes.count {
            let n = min(pieces, bytes.count - at)
            bytes[at..<at + n].withUnsafeBytes { framer.feed($0, lines) }
            held = max(held, framer.pendingBytes)
            at += n
        }
        framer.finish(lines)
        return (records, drops, held)
    }

    func testPiecesOfEverySizeGiveTheSameLines() {
        let long = "1\tGET\thttps://h.example/" + String(repeating: "p", count: IPAParser.maxLineBytes) + "\t1"
        let text = "1\tGET\thttps://h.example/a\t1.5\r\n\n" + long + "\n1\tPOST\thttps://h.example/b\t2\nbad\n" + long
            + "\n1\tGET\thttps://h.example/c\t3"
        let bytes = Array(text.utf8)
        let whole = parse(bytes, pieces: bytes.count)
        XCTAssertEqual(whole.records, ["/a 1.5", "/b 2.0", "/c 3.0"])
        XCTAssertEqual(whole.drops[.oversize], 2)
        XCTAssertEqual(whole.drops[.badVersion], 1)
        for pieces in [1, 2, 5, 100, 4096, 9000] {
            let r = parse(bytes, pieces: pieces)
            XCTAssertEqual(r.records, whole.records, "pieces of \(pieces)")
            XCTAssertEqual(r.drops, whole.drops, "pieces of \(pieces)")
            XCTAssertLessThanOrEqual(r.held, IPAParser.maxLineBytes + 2, "a long line is not held whole")
        }
    }
}
