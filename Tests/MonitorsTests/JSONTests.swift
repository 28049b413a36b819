// JSON: strict parsing (every refusal names its place), exact round trips,
// and the serializer's one-line output.
import XCTest
@testable import Monitors

final class JSONTests: XCTestCase {
    func testParsesEveryValueKind() throws {
        let v = try JSONValue.parse(#" { "a": [1, -2.5e3, 0, true, false, null], "b": {"c": "d\n\u00e9\ud83d\ude00"}, "e": [] , "f": {} } "#)
        XCTAssertEqual(v["a"], [1, .number(JSONNumber(validatedText: "-2.5e3")), 0, true, false, nil])
        XCTAssertEqual(v["b"]?["c"]?.stringValue, "d\né😀")
        XCTAssertEqual(v["e"], [])
        XCTAssertEqual(v["f"], .object(JSONObject()))
        XCTAssertEqual(v.objectValue?.keys, ["a", "b", "e", "f"])
        XCTAssertEqual(v["a"]?.arrayValue?[1].numberValue?.double, -2500)
    }

    func testNumbersKeepTheirText() throws {
        let big = "123456789012345678901234567890"
        let v = try JSONValue.parse("[\(big), 1e400, 0.1, 10.0, 1E+2]")
        XCTAssertEqual(v.serialized, "[\(big),1e400,0.1,10.0,1E+2]")
        let a = v.arrayValue!
        XCTAssertNil(a[0].numberValue?.exactInteger, "beyond 2^53 is not an exact integer")
        XCTAssertEqual(a[1].numberValue?.double, .infinity)
        XCTAssertEqual(a[3].numberValue?.exactInteger, 10)
        XCTAssertEqual(a[4].numberValue?.exactInteger, 100)
        XCTAssertNil(a[2].numberValue?.exactInteger)
        XCTAssertEqual(JSONNumber(Double.nan).text, "0")
        XCTAssertEqual(JSONNumber(2.0).text, "2")
        XCTAssertEqual(JSONNumber(0.25).text, "0.25")
    }

    func testRoundTripIsExactAndOneLine() throws {
        let doc: JSONValue = ["k\"ey": "line1\nline2\t\u{1}\u{7F}\\/é", "n": [1, 2.5, nil, true], "o": ["x": [:]]]
        let text = doc.serialized
        XCTAssertFalse(text.contains("\n"))
        XCTAssertEqual(text, #"{"k\"ey":"line1\nline2\t\u0001\u007f\\/é","n":[1,2.5,null,true],"o":{"x":{}}}"#)
        XCTAssertEqual(try JSONValue.parse(text), doc)
        XCTAssertEqual(try JSONValue.parse(text).serialized, text)
    }

    func testRefusalsNameTheProblemAndItsPlace() {
        let cases: [(String, String, Int, Int)] = [
            ("", "unexpected end of input", 1, 1),
            ("[1,]", "unexpected ']', expected a value", 1, 4),
            ("{\"a\":1,}", "expected an object key in double quotes", 1, 8),
            ("{\"a\" 1}", "expected ':' after an object key", 1, 6),
            ("{\"a\":1 \"b\":2}", "expected ',' or '}'", 1, 8),
            ("[1 2]", "expected ',' or ']'", 1, 4),
            ("{\"a\":1,\"a\":2}", "duplicate key \"a\"", 1, 8),
            ("01", "leading zeros", 1, 1),
            ("-", "expected a digit", 1, 2),
            ("1.", "expected a digit after the decimal point", 1, 3),
            ("1e", "expected a digit in the exponent", 1, 3),
            ("NaN", "unexpected 'N', expected a value", 1, 1),
            ("tru", "invalid literal, expected true", 1, 1),
            ("\"abc", "unterminated string", 1, 1),
            ("\"a\tb\"", "control character byte 0x09", 1, 3),
            ("\"\\x\"", "invalid escape \\x", 1, 2),
            ("\"\\u12\"", "expected four hex digits", 1, 4),
            ("\"\\ud800\"", "lone surrogate", 1, 2),
            ("\"\\udc00\"", "lone surrogate", 1, 2),
            ("\"\\ud800\\u0041\"", "lone surrogate", 1, 2),
            ("[1]\n x", "unexpected data after the JSON value", 2, 2),
            ("// c\n1", "unexpected '/'", 1, 1),
            ("'a'", "unexpected '''", 1, 1),
            ("{\n  \"a\": [\n    1,\n  ]\n}", "unexpected ']'", 4, 3),
        ]
        for (text, fragment, line, column) in cases {
            XCTAssertThrowsError(try JSONValue.parse(text), text) { e in
                guard let e = e as? JSONError else { return XCTFail("not a JSONError: \(e)") }
                XCTAssertTrue(e.message.contains(fragment), "\(text): \(e.message)")
                XCTAssertEqual(e.line, line, "\(text): \(e)")
                XCTAssertEqual(e.column, column, "\(text): \(e)")
                XCTAssertTrue(e.description.hasPrefix("invalid JSON at line \(line), column \(column): "))
            }
        }
    }

    func testInvalidUTF8IsRefused() {
        XCTAssertThrowsError(try JSONValue.parse([0x22, 0xC3, 0x28, 0x22])) { e in
            XCTAssertEqual((e as? JSONError)?.message, "string is not valid UTF-8")
        }
        // An encoded surrogate (ED A0 80) is not UTF-8 either.
        XCTAssertThrowsError(try JSONValue.parse([0x22, 0xED, 0xA0, 0x80, 0x22]))
        XCTAssertThrowsError(try JSONValue.parse([0xEF, 0xBB, 0xBF, 0x31]), "a byte-order mark is not JSON")
    }

    func testLimits() {
        let deep = String(repeating: "[", count: 65) + String(repeating: "]", count: 65)
        XCTAssertThrowsError(try JSONValue.parse(deep)) { e in
            XCTAssertEqual((e as? JSONError)?.message, "nesting deeper than 64")
        }
        XCTAssertNoThrow(try JSONValue.parse(String(repeating: "[", count: 64) + String(repeating: "]", count: 64)))
        XCTAssertThrowsError(try JSONValue.parse("[1,2,3]", limits: JSONLimits(maxBytes: 6))) { e in
            XCTAssertEqual((e as? JSONError)?.message, "document is 7 bytes; the limit is 6")
        }
    }

    func testObjectEditing() {
        var o = JSONObject([("a", 1), ("b", 2), ("a", 3)])
        XCTAssertEqual(o.keys, ["a", "b"])
        XCTAssertEqual(o["a"], 3)
        o["b"] = nil
        o["c"] = "x"
        XCTAssertEqual(JSONValue.object(o).serialized, #"{"a":3,"c":"x"}"#)
    }

    func testSeededRandomInputsNeverTrap() {
        var rng = SeededRNG(seed: 0x15_0000)
        let alphabet = Array("{}[],:\"\\ u0123456789eE.-+truefalsnl\n\té".utf8)
        for _ in 0..<5000 {
            let n = Int.random(in: 0...40, using: &rng)
            let bytes = (0..<n).map { _ in alphabet.randomElement(using: &rng)! }
            if let v = try? JSONValue.parse(bytes) {
                XCTAssertEqual(try JSONValue.parse(v.serialized), v)
            }
        }
    }
}
