// The value type: accessors, building and editing objects, literals, and
// configuration text.
import XCTest
@testable import JSON

final class ValueTests: XCTestCase {
    func testAccessors() throws {
        let v = try JSON.parse(#"{"s":"x","n":10.0,"b":true,"a":[1],"o":{"k":null},"z":null}"#)
        XCTAssertEqual(v["s"]?.stringValue, "x")
        XCTAssertEqual(v["n"]?.int64Value, 10)
        XCTAssertEqual(v["n"]?.doubleValue, 10)
        XCTAssertEqual(v["n"]?.numberValue?.text, "10.0")
        XCTAssertEqual(v["b"]?.boolValue, true)
        XCTAssertEqual(v["a"]?.arrayValue, [1])
        XCTAssertEqual(v["o"]?["k"], .null)
        XCTAssertEqual(v["z"]?.isNull, true)
        XCTAssertNil(v["missing"])
        XCTAssertNil(v["s"]?["k"], "a member of a non-object is nil")
        XCTAssertNil(v["s"]?.int64Value)
        XCTAssertNil(JSON.number(10.5).int64Value)
        XCTAssertEqual(["null", "a boolean", "a number", "a string", "an array", "an object"],
                       [JSON.null, true, 1, "x", [], [:]].map(\.typeName))
        // Pairs iterate like a Dictionary's.
        var seen: [String] = []
        for (k, value) in v.objectValue! where value.isNull == false { seen.append(k) }
        XCTAssertEqual(seen, ["s", "n", "b", "a", "o"])
    }

    func testObjectEditing() {
        var o = JSONObject([("a", 1), ("b", 2), ("a", 3)])
        XCTAssertEqual(o.keys, ["a", "b"])
        XCTAssertEqual(o["a"], 3)
        XCTAssertTrue(o.contains(key: "b"))
        o["b"] = nil
        o["c"] = "x"
        XCTAssertFalse(o.contains(key: "b"))
        XCTAssertEqual(JSON.object(o).serialized, #"{"a":3,"c":"x"}"#)
        XCTAssertEqual(JSON.object(o), ["a": 3, "c": "x"])
        XCTAssertNotEqual(JSON.object(o), ["c": "x", "a": 3], "order is part of the value")
    }

    func testConfigText() {
        XCTAssertEqual(JSON.bool(false).configText, "off")
        XCTAssertEqual(JSON.bool(true).configText, "on")
        XCTAssertEqual(JSON.number(5000).configText, "5000")
        XCTAssertEqual(JSON.number(0.5).configText, "0.5")
        XCTAssertEqual(JSON.string("x").configText, "x")
        XCTAssertEqual((try? JSON.parse("1e3"))?.configText, "1000", "numbers without a needless form")
        XCTAssertEqual((try? JSON.parse("10.0"))?.configText, "10")
        XCTAssertEqual((try? JSON.parse("1e400"))?.configText, "1e400", "beyond a double: as written, for the key's check to refuse")
        XCTAssertNil(JSON.null.configText)
        XCTAssertNil(JSON.array([]).configText)
        XCTAssertNil(JSON.object([]).configText)
    }
}
