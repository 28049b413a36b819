// The writer: compact one-line output, the one string escaper (controls,
// quotes, backslash, DEL; non-ASCII as UTF-8), numbers as their text,
// objects in order, raw text verbatim — and exact round trips.
import XCTest
@testable import JSON

struct SeededRNG: RandomNumberGenerator {
    private var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

final class WriterTests: XCTestCase {
    func testEscaper() {
        XCTAssertEqual(JSON.quoted(""), #""""#)
        XCTAssertEqual(JSON.quoted("plain text"), #""plain text""#)
        XCTAssertEqual(JSON.quoted("a\"b\\c/d"), #""a\"b\\c/d""#, "the slash is not escaped")
        XCTAssertEqual(JSON.quoted("\u{8}\u{C}\n\r\t"), #""\b\f\n\r\t""#)
        XCTAssertEqual(JSON.quoted("\u{0}\u{1}\u{1F}\u{7F}"), #""\u0000\u0001\u001f\u007f""#)
        XCTAssertEqual(JSON.quoted("é€😀\u{2028}\u{80}"), "\"é€😀\u{2028}\u{80}\"", "non-ASCII is UTF-8, unescaped")
        XCTAssertEqual(JSON.quoted("a\"b\\c\n\u{1}"), "\"a\\\"b\\\\c\\n\\u0001\"", "what Log writes")
        // Every control character, one by one, and none left raw.
        for c in 0..<0x20 {
            let q = JSON.quoted(String(UnicodeScalar(UInt8(c))))
            XCTAssertFalse(q.utf8.dropFirst().dropLast().contains { $0 < 0x20 }, q)
            XCTAssertEqual(try JSON.parse(q).stringValue, String(UnicodeScalar(UInt8(c))))
        }
        var bytes: [UInt8] = Array("x=".utf8)
        JSON.writeString("\"", into: &bytes)
        XCTAssertEqual(bytes, Array(#"x="\"""#.utf8), "appends to what is there")
    }

    func testCompactOneLineOutput() throws {
        let doc: JSON = ["k\"ey": "line1\nline2\t\u{1}\u{7F}\\/é", "n": [1, 2.5, nil, true], "o": ["x": [:]]]
        let text = doc.serialized
        XCTAssertFalse(text.contains("\n"))
        XCTAssertEqual(text, #"{"k\"ey":"line1\nline2\t\u0001\u007f\\/é","n":[1,2.5,null,true],"o":{"x":{}}}"#)
        XCTAssertEqual(doc.serializedBytes, Array(text.utf8))
        XCTAssertEqual(try JSON.parse(text), doc)
        XCTAssertEqual(try JSON.parse(text).serialized, text)
        XCTAssertEqual(JSON.array([]).serialized, "[]")
        XCTAssertEqual(JSON.object(JSONObject()).serialized, "{}")
        var out: [UInt8] = [0x5B]
        JSON.bool(false).write(into: &out)
        XCTAssertEqual(out, Array("[false".utf8))
    }

    func testNumbers() {
        XCTAssertEqual(JSON.number(5000).serialized, "5000")
        XCTAssertEqual(JSON.number(2.0).serialized, "2")
        XCTAssertEqual(JSON.number(-0.0).serialized, "0")
        XCTAssertEqual(JSON.number(0.25).serialized, "0.25")
        XCTAssertEqual(JSON.number(0.1).serialized, "0.1")
        XCTAssertEqual(JSON.number(1.5e300).serialized, "1.5e+300")
        XCTAssertEqual(JSON.number(1e15).serialized, "1000000000000000.0")
        XCTAssertEqual(JSON.number(.nan).serialized, "null", "JSON has no NaN")
        XCTAssertEqual(JSON.number(.infinity).serialized, "null")
        XCTAssertNil(JSONNumber(Double.nan))
        XCTAssertNil(JSONNumber(-Double.infinity))
        XCTAssertEqual(JSONNumber(2.0)?.text, "2")
        XCTAssertEqual(JSONNumber(0.25)?.text, "0.25")
        XCTAssertEqual(JSON.int(Int64.max).serialized, "9223372036854775807", "integers are exact")
        XCTAssertEqual(JSON.int(-7).serialized, "-7")
        XCTAssertEqual(JSON.number(JSONNumber(UInt64.max)).serialized, "18446744073709551615")
        XCTAssertEqual(JSON.optional(nil as Int64?).serialized, "null")
        XCTAssertEqual(JSON.optional("x").serialized, #""x""#)
        // Every double the writer makes parses back to the same double.
        var rng = SeededRNG(seed: 7)
        for _ in 0..<2000 {
            let d = Double(bitPattern: rng.next())
            guard let n = JSONNumber(d) else { XCTAssertFalse(d.isFinite); continue }
            XCTAssertNoThrow(try JSON.parse(n.text), n.text)
            XCTAssertEqual(n.double, d == 0 ? 0 : d, n.text)
        }
    }

    func testObjectsKeepOrderAndOneValuePerKey() {
        XCTAssertEqual(JSON.object([("b", 1), ("a", 2)]).serialized, #"{"b":1,"a":2}"#)
        XCTAssertEqual(JSON.object([("a", 1), ("b", 2), ("a", 3)]).serialized, #"{"a":3,"b":2}"#,
                       "a later duplicate replaces the value in its first place: the writer never repeats a key")
        // The same with many members (the index path).
        let pairs = (0..<40).map { ("k\($0 % 30)", JSON.int($0)) }
        let o = JSONObject(pairs)
        XCTAssertEqual(o.count, 30)
        XCTAssertEqual(o.keys, (0..<30).map { "k\($0)" })
        XCTAssertEqual(o["k5"], 35)
        XCTAssertEqual(o["k29"], 29)
    }

    func testRawIsWrittenVerbatim() {
        XCTAssertEqual(JSON.object([("k", .raw(#"{"x":1}"#))]).serialized, #"{"k":{"x":1}}"#)
        XCTAssertEqual(JSON.array([.raw("[1, 2]"), .raw("null")]).serialized, "[[1, 2],null]")
    }

    func testRoundTripIsExact() throws {
        let answer = #"{"b":1,"a":[true,false,null,-2.5,1e3,"x\"\\\n\u00e9\ud83d\ude00"],"c":{}}"#
        let a = try JSON.parse(answer)
        XCTAssertEqual(a["b"]?.int64Value, 1)
        XCTAssertEqual(a["a"]?.arrayValue?[5].stringValue, "x\"\\\né😀")
        XCTAssertEqual(a["a"]?.arrayValue?[4].doubleValue, 1000)
        XCTAssertEqual(a.serialized, #"{"b":1,"a":[true,false,null,-2.5,1e3,"x\"\\\né😀"],"c":{}}"#)
        XCTAssertEqual(try JSON.parse(a.serialized), a)
        XCTAssertEqual(try JSON.parse("-1.7976931348623157e308").doubleValue, -1.7976931348623157e308)
        let text = #"{"b":1,"a":[true,false,null,-2.5,1e3,"x\"\\\né😀"],"c":{},"d":[[]],"e":0.10}"#
        let v = try JSON.parse(text)
        XCTAssertEqual(v.serialized, text)
        let escaped = #"{"s":"\u00e9\ud83d\ude00\/\u0041"}"#
        XCTAssertEqual(try JSON.parse(escaped).serialized, #"{"s":"é😀/A"}"#, "escapes come out in the one canonical form")
        XCTAssertEqual(try JSON.parse(try JSON.parse(escaped).serialized), try JSON.parse(escaped))
        let spaced = "{ \"a\" : [ 1 , 2 ] }"
        XCTAssertEqual(try JSON.parse(spaced).serialized, #"{"a":[1,2]}"#)
    }

    func testSeededRandomInputsNeverTrapAndRoundTrip() {
        var rng = SeededRNG(seed: 0x15_0000)
        let alphabet = Array("{}[],:\"\\ u0123456789abcdefABCDEFeE.-+truefalsnl\n\té\u{7F}".utf8) + [0x01, 0xC3, 0xED, 0xA0, 0xF4]
        var parsed = 0
        for _ in 0..<20000 {
            let n = Int.random(in: 0...40, using: &rng)
            let bytes = (0..<n).map { _ in alphabet.randomElement(using: &rng)! }
            do {
                let v = try JSON.parse(bytes)
                parsed += 1
                XCTAssertEqual(try JSON.parse(v.serialized), v)
                XCTAssertEqual(try JSON.parse(v.serialized).serialized, v.serialized)
            } catch {
                XCTAssertLessThanOrEqual(error.offset, bytes.count)
            }
        }
        XCTAssertGreaterThan(parsed, 100)
    }
}
