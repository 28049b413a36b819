// Preamble parsing and frame reassembly, including every refusal and
// delivery in arbitrary pieces.
import XCTest
@testable import Wire

final class PreambleTests: XCTestCase {
    func testEncodeAndParse() {
        let p = Preamble(projectID: "acme-prod.eu_1")!
        XCTAssertEqual(p.bytes, [0x56, 0x47, 0x4C, 0x02, 14] + Array("acme-prod.eu_1".utf8))
        XCTAssertEqual(Preamble.parse(p.bytes), .complete(p, length: 19))
        XCTAssertEqual(Preamble.parse(p.bytes + [9, 9]), .complete(p, length: 19), "bytes after it are not its business")
        for n in 0..<p.bytes.count {
            XCTAssertEqual(Preamble.parse(Array(p.bytes[0..<n])), .needMore, "prefix \(n)")
        }
    }

    func testLengthBounds() {
        let max = String(repeating: "a", count: 64)
        XCTAssertNotNil(Preamble(projectID: max))
        XCTAssertNil(Preamble(projectID: max + "a"))
        XCTAssertNil(Preamble(projectID: ""))
        XCTAssertNil(Preamble(projectID: "a b"))
        XCTAssertEqual(Preamble.parse([0x56, 0x47, 0x4C, 0x02, 0]), .invalid(.badLength(0)))
        XCTAssertEqual(Preamble.parse([0x56, 0x47, 0x4C, 0x02, 65]), .invalid(.badLength(65)))
        XCTAssertEqual(Preamble.parse([0x56, 0x47, 0x4C, 0x02, 64] + Array(max.utf8)), .complete(Preamble(projectID: max)!, length: 69))
        // Version 1 still parses, so an old agent can be told to upgrade.
        XCTAssertEqual(Preamble.parse([0x56, 0x47, 0x4C, 0x01, 1, 0x61]),
                       .complete(Preamble(projectID: "a", version: Preamble.legacyVersion)!, length: 6))
    }

    func testRejectsAtFirstBadByte() {
        XCTAssertEqual(Preamble.parse(Array("GET / HTTP/1.1\r\n".utf8)), .invalid(.badMagic(offset: 0, byte: 0x47)))
        XCTAssertEqual(Preamble.parse([0x56, 0x48]), .invalid(.badMagic(offset: 1, byte: 0x48)))
        XCTAssertEqual(Preamble.parse([0x56, 0x47, 0x4C, 0x03]), .invalid(.unsupportedVersion(3)))
        XCTAssertEqual(Preamble.parse([0x56, 0x47, 0x4C, 0x00]), .invalid(.unsupportedVersion(0)))
        XCTAssertEqual(Preamble.parse([0x56, 0x47, 0x4C, 0x01, 3, 0x61, 0x2F]), .invalid(.badProjectID))
        XCTAssertEqual(Preamble.parse([0x56, 0x47, 0x4C, 0x01, 3, 0x61, 0xC3, 0xA9]), .invalid(.badProjectID))
    }
}

final class FrameDecoderTests: XCTestCase {
    func frame(_ body: [UInt8]) -> [UInt8] { [UInt8(body.count >> 8), UInt8(body.count & 0xFF)] + body }

    /// Feeds `stream` in the given chunk sizes and returns the frames.
    func decode(_ stream: [UInt8], chunks: [Int], decoder: FrameDecoder) -> ([[UInt8]], FrameError?) {
        var out: [[UInt8]] = []
        var offset = 0
        var ci = 0
        while offset < stream.count {
            let size = min(chunks[ci % chunks.count], stream.count - offset)
            ci += 1
            let chunk = Array(stream[offset..<offset + size])
            offset += size
            var used = 0
            while used < chunk.count {
                let (n, step) = chunk.withUnsafeBytes { decoder.consume(UnsafeRawBufferPointer(rebasing: $0[used...])) }
                used += n
                switch step {
                case .needMore: XCTAssertEqual(used, chunk.count)
                case .frame: out.append(Array(decoder.frame))
                case .invalid(let e): return (out, e)
                }
            }
        }
        return (out, nil)
    }

    func testReassemblyUnderAnyChunking() {
        var rng = SeededRandom(seed: 99)
        let bodies: [[UInt8]] = (0..<50).map { i in (0..<Int.random(in: 0...3000, using: &rng)).map { UInt8(truncatingIfNeeded: $0 &+ i) } }
        let stream = bodies.flatMap(frame)
        for chunks in [[1], [2], [3], [7, 1, 4096], [65536], [1, 2, 3, 5, 8, 13, 21]] {
            let (frames, error) = decode(stream, chunks: chunks, decoder: FrameDecoder())
            XCTAssertNil(error)
            XCTAssertEqual(frames, bodies, "chunks \(chunks)")
        }
        for _ in 0..<20 {
            let chunks = (0..<5).map { _ in Int.random(in: 1...5000, using: &rng) }
            XCTAssertEqual(decode(stream, chunks: chunks, decoder: FrameDecoder()).0, bodies)
        }
    }

    func testMaximumFrame() {
        let body = [UInt8](repeating: 0xAB, count: 65535)
        let (frames, error) = decode(frame(body), chunks: [1000], decoder: FrameDecoder())
        XCTAssertNil(error)
        XCTAssertEqual(frames, [body])
    }

    func testLengthOutsideLimitsRefusedAtHeader() {
        let d = FrameDecoder(minLength: 16, maxLength: 100)
        XCTAssertEqual(decode([0x00, 101], chunks: [1], decoder: d).1, .tooLong(101))
        XCTAssertEqual(d.bufferedBytes, 2, "nothing of the body was buffered")
        XCTAssertEqual(decode([0x00, 15], chunks: [2], decoder: FrameDecoder(minLength: 16, maxLength: 100)).1, .tooShort(15))
        XCTAssertEqual(decode([0xFF, 0xFF], chunks: [2], decoder: FrameDecoder(minLength: 0, maxLength: 4096)).1, .tooLong(65535))
    }

    func testFrameIsWritableAndResetDropsPartial() {
        let d = FrameDecoder()
        let (n, step) = frame([1, 2, 3]).withUnsafeBytes { d.consume($0) }
        XCTAssertEqual(n, 5)
        XCTAssertEqual(step, .frame)
        d.frame[0] = 9   // in-place decryption writes here
        XCTAssertEqual(Array(d.frame), [9, 2, 3])
        _ = ([0x00, 0x05, 1] as [UInt8]).withUnsafeBytes { d.consume($0) }
        XCTAssertEqual(d.bufferedBytes, 3)
        d.reset()
        XCTAssertEqual(d.bufferedBytes, 0)
    }
}

final class AccessKeyTests: XCTestCase {
    let collector = Key32(bytes: [UInt8](32..<64))!

    func testFormatParseRoundTrip() throws {
        let key = try AccessKey.generate(projectID: "acme.prod", collectorKey: collector)
        let text = key.text
        XCTAssertTrue(text.hasPrefix("acme.prod."))
        XCTAssertEqual(text.utf8.count, "acme.prod.".utf8.count + 43 + 1 + 43)
        XCTAssertEqual(try AccessKey(parsing: text), key)
        let secretText = String(text.dropFirst("acme.prod.".count).prefix(43))
        XCTAssertFalse(key.description.contains(secretText), "description must not reveal the secret")
        XCTAssertNotEqual(try AccessKey.generate(projectID: "a", collectorKey: collector).secret,
                          try AccessKey.generate(projectID: "a", collectorKey: collector).secret)
    }

    func testKnownEncoding() throws {
        let key = try AccessKey(projectID: "p", secret: Key32(bytes: [UInt8](0..<32))!, collectorKey: collector)
        XCTAssertEqual(key.text, "p.AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8.ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8")
        let parsed = try AccessKey(parsing: key.text)
        XCTAssertEqual(parsed.secret.bytes, [UInt8](0..<32))
        XCTAssertEqual(parsed.collectorKey.bytes, [UInt8](32..<64))
    }

    func testRejects() {
        func check(_ text: String, _ expected: AccessKeyError) {
            XCTAssertThrowsError(try AccessKey(parsing: text), text) { XCTAssertEqual($0 as? AccessKeyError, expected, text) }
        }
        let secret = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8"
        let ck = "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8"
        check("nodot", .missingSeparator)
        check("." + secret + "." + ck, .badProjectID)
        check("a b." + secret + "." + ck, .badProjectID)
        check("p." + secret.dropLast() + "." + ck, .badSecret)
        check("p." + secret.dropLast() + "=." + ck, .badSecret)
        check("p." + secret.dropLast() + "9." + ck, .badSecret)  // non-zero unused bits: not canonical
        check("p." + secret + "." + ck.dropLast(), .badCollectorKey)
        check("p." + secret + "." + ck + "A", .badCollectorKey)
        check("p." + secret + "." + ck.dropLast() + "+", .badCollectorKey)
        // Two-part keys from before collector keys: told what is missing.
        check("p." + secret, .missingCollectorKey)
        check("acme.prod." + secret, .missingCollectorKey)
        XCTAssertTrue(AccessKeyError.missingCollectorKey.description.contains("keys create"))
        XCTAssertThrowsError(try AccessKey.generate(projectID: String(repeating: "x", count: 65), collectorKey: collector))
    }

    func testBase64URL() {
        XCTAssertEqual(Base64URL.encode([]), "")
        XCTAssertEqual(Base64URL.encode([0xFB, 0xFF]), "-_8")
        XCTAssertEqual(Base64URL.decode("-_8"), [0xFB, 0xFF])
        XCTAssertNil(Base64URL.decode("A"))
        var rng = SeededRandom(seed: 3)
        for n in 0..<70 {
            let bytes = (0..<n).map { _ in UInt8.random(in: 0...255, using: &rng) }
            XCTAssertEqual(Base64URL.decode(Base64URL.encode(bytes)), bytes)
        }
    }
}
