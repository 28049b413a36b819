// The parser: RFC 8259 strictly — every value kind, the number grammar,
// escapes and surrogates, whitespace, UTF-8, trailing data — with every
// refusal naming its problem and place, duplicate keys named, and the size
// and depth limits.
import XCTest
@testable import JSON

final class ParserTests: XCTestCase {
    /// The refusal for `text`, or a failure when it parses.
    private func refusal(_ text: String, limits: JSONLimits = .default, file: StaticString = #filePath, line: UInt = #line) -> JSONError? {
        refusal(Array(text.utf8), limits: limits, file: file, line: line)
    }

    private func refusal(_ bytes: [UInt8], limits: JSONLimits = .default, file: StaticString = #filePath, line: UInt = #line) -> JSONError? {
        do {
            let v = try JSON.parse(bytes, limits: limits)
            XCTFail("parsed \(bytes) as \(v)", file: file, line: line)
            return nil
        } catch {
            return error
        }
    }

    func testParsesEveryValueKind() throws {
        let v = try JSON.parse(#" { "a": [1, -2.5e3, 0, true, false, null], "b": {"c": "d\n\u00e9\ud83d\ude00"}, "e": [] , "f": {} } "#)
        XCTAssertEqual(v["a"], [1, .number(JSONNumber(validatedText: "-2.5e3")), 0, true, false, nil])
        XCTAssertEqual(v["b"]?["c"]?.stringValue, "d\né😀")
        XCTAssertEqual(v["e"], [])
        XCTAssertEqual(v["f"], .object(JSONObject()))
        XCTAssertEqual(v.objectValue?.keys, ["a", "b", "e", "f"])
        XCTAssertEqual(v["a"]?.arrayValue?[1].doubleValue, -2500)
        // Any value may be the whole document (RFC 8259, not only objects and arrays).
        XCTAssertEqual(try JSON.parse("\"x\""), "x")
        XCTAssertEqual(try JSON.parse("null"), .null)
        XCTAssertEqual(try JSON.parse(" 7 "), 7)
    }

    func testNumberGrammar() throws {
        for good in ["0", "-0", "0.0", "-0.0", "7", "-12", "1e5", "1E5", "1e+5", "1e-5", "1.5E-10", "-1.5e+10", "0e0",
                     "123456789012345678901234567890", "1e400", "-1e-400", "0.000001"] {
            let v = try JSON.parse(good)
            XCTAssertEqual(v.numberValue?.text, good, "numbers keep their text")
            XCTAssertEqual(v.serialized, good)
        }
        let bad: [(String, String)] = [
            ("+1", "unexpected '+'"), (".5", "unexpected '.'"), ("1.", "expected a digit after the decimal point"),
            ("01", "leading zeros"), ("-01", "leading zeros"), ("00", "leading zeros"), ("1e", "expected a digit in the exponent"),
            ("1e+", "expected a digit in the exponent"), ("1.e5", "expected a digit after the decimal point"),
            ("-", "expected a digit"), ("--1", "expected a digit"), ("- 1", "expected a digit"),
            ("0x10", "unexpected data after the JSON value"), ("1..2", "expected a digit after the decimal point"),
            ("Infinity", "unexpected 'I'"), ("-Infinity", "expected a digit"), ("NaN", "unexpected 'N'"),
            ("1_000", "unexpected data after the JSON value"),
        ]
        for (text, fragment) in bad {
            guard let e = refusal(text) else { continue }
            XCTAssertTrue(e.message.contains(fragment), "\(text): \(e.message)")
        }
    }

    func testNumbersReadAsTheCallerNeeds() throws {
        let a = try JSON.parse("[123456789012345678901234567890, 1e400, 0.1, 10.0, 1E+2, 9007199254740993, -9223372036854775808, 1e309]").arrayValue!
        XCTAssertNil(a[0].numberValue?.exactInteger, "beyond 2^53 is not an exact integer")
        XCTAssertNil(a[0].int64Value, "beyond Int64")
        XCTAssertEqual(a[1].doubleValue, .infinity)
        XCTAssertNil(a[1].int64Value)
        XCTAssertNil(a[2].numberValue?.exactInteger)
        XCTAssertNil(a[2].int64Value)
        XCTAssertEqual(a[3].numberValue?.exactInteger, 10)
        XCTAssertEqual(a[3].int64Value, 10)
        XCTAssertEqual(a[4].numberValue?.exactInteger, 100)
        XCTAssertEqual(a[5].int64Value, 9007199254740993, "an integer literal reads exactly, not through a double")
        XCTAssertNil(a[5].numberValue?.exactInteger)
        XCTAssertEqual(a[6].int64Value, Int64.min)
        // Out of a double's range: kept as written, so the round trip is exact
        // (the reader that needs a value refuses it, naming the field).
        XCTAssertEqual(JSON.array(a).serialized,
                       "[123456789012345678901234567890,1e400,0.1,10.0,1E+2,9007199254740993,-9223372036854775808,1e309]")
    }

    func testStringEscapesAndSurrogates() throws {
        XCTAssertEqual(try JSON.parse(#""\"\\\/\b\f\n\r\t""#), "\"\\/\u{8}\u{C}\n\r\t")
        XCTAssertEqual(try JSON.parse(#""\u0000\u001f\u0041\u00e9\u00E9\u20AC\uFFFF""#), "\u{0}\u{1F}Aéé€\u{FFFF}")
        XCTAssertEqual(try JSON.parse(#""\ud83d\ude00\uD83D\uDE00""#), "😀😀", "a pair, either case")
        XCTAssertEqual(try JSON.parse(#""\udbff\udfff""#), "\u{10FFFF}")
        XCTAssertEqual(try JSON.parse(#""""#), "")
        let bad: [(String, String, Int)] = [
            (#""\ud800""#, "lone surrogate", 2),
            (#""\udc00""#, "lone surrogate", 2),
            (#""\ud800\u0041""#, "lone surrogate", 2),
            (#""\ud800\ud800""#, "lone surrogate", 2),
            (#""\ud800x""#, "lone surrogate", 2),
            (#""x\ud83d""#, "lone surrogate", 3),
            (#""\x""#, "invalid escape \\x", 2),
            (#""\a""#, "invalid escape \\a", 2),
            (#""\U0041""#, "invalid escape \\U", 2),
            (#""\'""#, "invalid escape \\'", 2),
            (#""\u12""#, "expected four hex digits", 4),
            (#""\u12G4""#, "expected four hex digits", 6),
            ("\"\\", "unterminated string", 1),
            ("\"abc", "unterminated string", 1),
        ]
        for (text, fragment, column) in bad {
            guard let e = refusal(text) else { continue }
            XCTAssertTrue(e.message.contains(fragment), "\(text): \(e.message)")
            XCTAssertEqual(e.column, column, "\(text): \(e)")
        }
        // Every raw control character must be escaped; DEL need not be.
        for c in UInt8(0)..<0x20 {
            guard let e = refusal([0x22, c, 0x22]) else { continue }
            XCTAssertTrue(e.message.hasPrefix("control character"), e.message)
            XCTAssertEqual(e.offset, 1)
        }
        XCTAssertEqual(try JSON.parse([0x22, 0x7F, 0x22]), "\u{7F}")
    }

    func testUTF8IsCheckedWhereItIsWrong() throws {
        XCTAssertEqual(try JSON.parse(Array("\"é€😀\u{10FFFF}\"".utf8)), "é€😀\u{10FFFF}")
        let bad: [([UInt8], Int)] = [
            ([0x22, 0xC3, 0x28, 0x22], 1),              // a lead byte without its continuation
            ([0x22, 0xC0, 0x80, 0x22], 1),              // overlong NUL
            ([0x22, 0xC1, 0xBF, 0x22], 1),              // overlong ASCII
            ([0x22, 0x61, 0xE0, 0x80, 0x80, 0x22], 2),  // overlong three-byte form
            ([0x22, 0xF0, 0x80, 0x80, 0x80, 0x22], 1),  // overlong four-byte form
            ([0x22, 0xED, 0xA0, 0x80, 0x22], 1),        // an encoded surrogate
            ([0x22, 0xF4, 0x90, 0x80, 0x80, 0x22], 1),  // beyond U+10FFFF
            ([0x22, 0xF5, 0x80, 0x80, 0x80, 0x22], 1),
            ([0x22, 0x80, 0x22], 1),                    // a lone continuation byte
            ([0x22, 0xE2, 0x82, 0x22], 1),              // truncated before the quote
            ([0x22, 0xE2, 0x82], 1),                    // truncated at the end
            ([0x22, 0xFF, 0x22], 1),
        ]
        for (bytes, offset) in bad {
            guard let e = refusal(bytes) else { continue }
            XCTAssertEqual(e.message, "string is not valid UTF-8", "\(bytes)")
            XCTAssertEqual(e.offset, offset, "\(bytes)")
        }
        // Outside strings a non-ASCII byte is just unexpected.
        XCTAssertEqual(refusal([0xFF])?.message, "unexpected byte 0xFF, expected a value")
        XCTAssertEqual(refusal([0xEF, 0xBB, 0xBF, 0x31])?.message, "unexpected byte 0xEF, expected a value", "a byte-order mark is not JSON")
    }

    func testWhitespaceIsTheFourRFCCharactersOnly() throws {
        XCTAssertEqual(try JSON.parse(" \t\r\n[ \t\r\n1 \t\r\n, \t\r\n{ \t\r\n\"a\" \t\r\n: \t\r\n2 \t\r\n} \t\r\n] \t\r\n"), [1, ["a": 2]])
        for (bytes, what) in [([0x0C, 0x31], "form feed"), ([0x0B, 0x31], "vertical tab"), ([0xC2, 0xA0, 0x31], "no-break space"),
                              ([0x31, 0x00], "NUL after the value"), ([0x5B, 0x31, 0x0C, 0x5D], "form feed inside")] as [([UInt8], String)] {
            XCTAssertNotNil(refusal(bytes), what)
        }
        XCTAssertEqual(refusal("")?.message, "unexpected end of input, expected a value")
        XCTAssertEqual(refusal("  \n ")?.line, 2)
    }

    func testTrailingDataIsRefused() {
        for text in ["1 2", "{}x", "[]]", "nullnull", "\"a\"\"b\"", "{} {}", "[1] ,", "true false", "1 // comment"] {
            guard let e = refusal(text) else { continue }
            XCTAssertEqual(e.message, "unexpected data after the JSON value", text)
        }
    }

    func testMalformedDocuments() {
        for bad in ["", "{", "[1,]", "{\"a\" 1}", "01", "1.", "\"\\x\"", "\"\u{1}\"", "tru", "[1] 2", "\"\\ud800\"",
                    String(repeating: "[", count: 100) + String(repeating: "]", count: 100)] {
            XCTAssertThrowsError(try JSON.parse(bad), bad)
        }
    }

    func testRefusalsNameTheProblemAndItsPlace() {
        let cases: [(String, String, Int, Int)] = [
            ("", "unexpected end of input", 1, 1),
            ("[1,]", "unexpected ']', expected a value", 1, 4),
            ("[,1]", "unexpected ',', expected a value", 1, 2),
            ("{\"a\":1,}", "expected an object key in double quotes", 1, 8),
            ("{a:1}", "expected an object key in double quotes", 1, 2),
            ("{1:1}", "expected an object key in double quotes", 1, 2),
            ("{\"a\" 1}", "expected ':' after an object key", 1, 6),
            ("{\"a\":1 \"b\":2}", "expected ',' or '}'", 1, 8),
            ("[1 2]", "expected ',' or ']'", 1, 4),
            ("[1", "unexpected end of input, expected ',' or ']'", 1, 3),
            ("{\"a\":1", "unexpected end of input, expected ',' or '}'", 1, 7),
            ("{", "unexpected end of input, expected an object key", 1, 2),
            ("{\"a\":1,\"a\":2}", "duplicate key \"a\"", 1, 8),
            ("01", "leading zeros", 1, 1),
            ("-", "expected a digit", 1, 2),
            ("1.", "expected a digit after the decimal point", 1, 3),
            ("1e", "expected a digit in the exponent", 1, 3),
            ("NaN", "unexpected 'N', expected a value", 1, 1),
            ("tru", "invalid literal, expected true", 1, 1),
            ("nul", "invalid literal, expected null", 1, 1),
            ("True", "unexpected 'T'", 1, 1),
            ("\"abc", "unterminated string", 1, 1),
            ("\"a\tb\"", "control character byte 0x09", 1, 3),
            ("\"\\x\"", "invalid escape \\x", 1, 2),
            ("\"\\u12\"", "expected four hex digits", 1, 4),
            ("\"\\ud800\"", "lone surrogate", 1, 2),
            ("[1]\n x", "unexpected data after the JSON value", 2, 2),
            ("// c\n1", "unexpected '/'", 1, 1),
            ("/* c */ 1", "unexpected '/'", 1, 1),
            ("'a'", "unexpected '''", 1, 1),
            ("{\n  \"a\": [\n    1,\n  ]\n}", "unexpected ']'", 4, 3),
        ]
        for (text, fragment, line, column) in cases {
            guard let e = refusal(text) else { continue }
            XCTAssertTrue(e.message.contains(fragment), "\(text): \(e.message)")
            XCTAssertEqual(e.line, line, "\(text): \(e)")
            XCTAssertEqual(e.column, column, "\(text): \(e)")
            XCTAssertTrue(e.description.hasPrefix("invalid JSON at line \(line), column \(column): "), e.description)
        }
    }

    func testDuplicateKeysAreRefusedNamingTheKey() throws {
        XCTAssertEqual(refusal(#"{"a":1,"a":2}"#)?.description, #"invalid JSON at line 1, column 8: duplicate key "a""#)
        XCTAssertEqual(refusal(#"{"a":1,"b":{"c":1,"c":[]}}"#)?.message, #"duplicate key "c""#)
        XCTAssertEqual(refusal(#"[{"x":1},{"y":1,"y":1}]"#)?.message, #"duplicate key "y""#, "equal values count too")
        XCTAssertEqual(refusal(#"{"a":1,"\u0061":2}"#)?.message, #"duplicate key "a""#, "keys compare after unescaping")
        XCTAssertEqual(refusal(#"{"é":1,"\u00e9":2}"#)?.message, #"duplicate key "é""#)
        XCTAssertEqual(refusal("{\"\\n\":1,\"\\n\":2}")?.message, #"duplicate key "\n""#, "the key is shown escaped")
        // Past the linear scan, the set of seen keys finds it.
        let many = (0..<40).map { "\"k\($0)\":\($0)" }.joined(separator: ",")
        XCTAssertNoThrow(try JSON.parse("{\(many)}"))
        let e = refusal("{\(many),\"k17\":0}")
        XCTAssertEqual(e?.message, #"duplicate key "k17""#)
        XCTAssertEqual(e?.offset, many.utf8.count + 2)
        // The same key in sibling objects, or differing in case, is no duplicate.
        XCTAssertNoThrow(try JSON.parse(#"[{"a":1},{"a":2},{"A":1,"a":2}]"#))
        XCTAssertNoThrow(try JSON.parse(#"{"a":{"a":{"a":1}}}"#))
    }

    func testDepthLimit() {
        let deep = String(repeating: "[", count: 65) + String(repeating: "]", count: 65)
        XCTAssertEqual(refusal(deep)?.message, "nesting deeper than 64")
        XCTAssertEqual(refusal(deep)?.offset, 64)
        XCTAssertNoThrow(try JSON.parse(String(repeating: "[", count: 64) + String(repeating: "]", count: 64)))
        // Objects and arrays count alike.
        let mixed = String(repeating: "{\"a\":[", count: 33) + String(repeating: "]}", count: 33)
        XCTAssertEqual(refusal(mixed)?.message, "nesting deeper than 64")
        XCTAssertNoThrow(try JSON.parse(String(repeating: "{\"a\":[", count: 32) + String(repeating: "]}", count: 32)))
        // A hostile depth is refused, not a stack overflow.
        XCTAssertNotNil(refusal(String(repeating: "[", count: 1_000_000)))
        XCTAssertEqual(refusal("[[1]]", limits: JSONLimits(maxDepth: 1))?.message, "nesting deeper than 1")
        XCTAssertNoThrow(try JSON.parse("[1]", limits: JSONLimits(maxDepth: 1)))
        XCTAssertNoThrow(try JSON.parse("1", limits: JSONLimits(maxDepth: 0)), "a scalar has no depth")
    }

    func testSizeLimit() {
        XCTAssertEqual(refusal("[1,2,3]", limits: JSONLimits(maxBytes: 6))?.message, "document is 7 bytes; the limit is 6")
        XCTAssertNoThrow(try JSON.parse("[1,2,3]", limits: JSONLimits(maxBytes: 7)))
        XCTAssertEqual(JSONLimits.default, JSONLimits(maxBytes: 1 << 20, maxDepth: 64))
        XCTAssertNotNil(refusal([UInt8](repeating: 0x20, count: (1 << 20) + 1)), "even whitespace counts")
    }

    func testParsesFromEveryInputForm() throws {
        let text = #"{"a":[1,"b"]}"#
        let bytes = Array(text.utf8)
        let v = try JSON.parse(text)
        XCTAssertEqual(try JSON.parse(bytes), v)
        XCTAssertEqual(try bytes.withUnsafeBytes { try JSON.parse($0) }, v)
        XCTAssertThrowsError(try JSON.parse(UnsafeRawBufferPointer(start: nil, count: 0)))
    }
}
