// MultipartReader: a browser's form read in pieces of every size gives the
// file part's bytes exactly, skips the other parts, and names what is wrong
// with a bad body.
import XCTest
import HTTPServer

final class MultipartReaderTests: XCTestCase {
    let type = "multipart/form-data; boundary=\"b0undary\""

    func read(_ body: [UInt8], pieces: Int) -> (content: [UInt8], error: String?, file: String?) {
        var r = MultipartReader(contentType: type)!
        var out: [UInt8] = []
        do {
            var at = 0
            while at < body.count {
                let n = min(pieces, body.count - at)
                try body[at..<at + n].withUnsafeBytes { b in try r.feed(b) { out.append(contentsOf: $0) } }
                at += n
            }
            try r.finish()
        } catch {
            return (out, (error as? MultipartError)?.description ?? "\(error)", r.fileName)
        }
        return (out, nil, r.fileName)
    }

    func testTheFilePartInEveryPieceSize() {
        // Content that holds near-boundaries: CRLF, "--b0undar", a boundary without its CRLF.
        let content = Array("line 1\r\n--b0undar\r\n-b0undary\n--b0undary-x is not one without CRLF before it\r\n\r\nend".utf8)
        let body = Array(("preamble\r\n--b0undary\r\nContent-Disposition: form-data; name=\"comment\"\r\n\r\nskip me\r\n"
                          + "--b0undary  \r\ncontent-disposition: form-data; name=\"file\"; filename=\"c.ipa\"\r\n"
                          + "Content-Type: text/plain\r\n\r\n").utf8) + content + Array("\r\n--b0undary--\r\nepilogue".utf8)
        for pieces in [1, 2, 3, 7, 11, 64, body.count] {
            let r = read(body, pieces: pieces)
            XCTAssertNil(r.error, "pieces of \(pieces)")
            XCTAssertEqual(r.content, content, "pieces of \(pieces)")
            XCTAssertEqual(r.file, "c.ipa")
        }
    }

    func testBadBodiesAreNamed() {
        let start = "--b0undary\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\nabc"
        XCTAssertEqual(read(Array(start.utf8), pieces: 5).error, "the body ended before its closing boundary")
        XCTAssertEqual(read(Array("--b0undary\r\nContent-Disposition: form-data; name=\"x\"\r\n\r\nabc\r\n--b0undary--".utf8),
                            pieces: 4).error, "no part named \"file\"")
        XCTAssertEqual(read(Array("--b0undaryXY".utf8), pieces: 3).error, "a boundary is followed by neither CRLF nor --")
        let longHeaders = "--b0undary\r\nX: " + String(repeating: "h", count: 9000) + "\r\n\r\n"
        XCTAssertEqual(read(Array(longHeaders.utf8), pieces: 1000).error, "a part's headers are longer than 8192 bytes")
        XCTAssertNil(MultipartReader(contentType: "multipart/form-data"), "no boundary")
        XCTAssertNil(MultipartReader(contentType: "text/plain; boundary=x"))
        XCTAssertNil(MultipartReader(contentType: "multipart/form-data; boundary=" + String(repeating: "b", count: 71)))
        XCTAssertEqual(MultipartReader.boundary("Multipart/Form-Data; charset=utf-8; Boundary=abc"), "abc")
    }
}
