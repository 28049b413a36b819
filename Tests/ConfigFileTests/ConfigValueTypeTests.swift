import XCTest
import ConfigFile

final class ConfigValueTypeTests: XCTestCase {
    private func ok(_ t: ConfigValueType, _ text: String) -> ConfigValue? { try? t.parse(text).get() }

    func testInteger() {
        let t = ConfigValueType.integer(1...65535)
        XCTAssertEqual(ok(t, "6600"), .integer(6600))
        XCTAssertEqual(ok(t, "+1"), .integer(1))
        for bad in ["0", "66000", "-1", "12a", "", " ", "0x10", "99999999999999999999999"] { XCTAssertNil(ok(t, bad), bad) }
        XCTAssertEqual(ok(.integer(-5...5), "-5"), .integer(-5))
    }

    func testMilliseconds() {
        let t = ConfigValueType.milliseconds(0...86_400_000)
        XCTAssertEqual(ok(t, "5000"), .integer(5000))
        XCTAssertEqual(ok(t, "5000ms"), .integer(5000))
        XCTAssertEqual(ok(t, "5s"), .integer(5000))
        XCTAssertEqual(ok(t, "5 S"), .integer(5000))
        XCTAssertEqual(ok(t, "2m"), .integer(120_000))
        XCTAssertEqual(ok(t, "1h"), .integer(3_600_000))
        for bad in ["5d", "ms", "-5", "1.5s", "25h", "9223372036854775807h"] { XCTAssertNil(ok(t, bad), bad) }
    }

    func testBytes() {
        let t = ConfigValueType.bytes(0...(1 << 40))
        XCTAssertEqual(ok(t, "5242880"), .integer(5_242_880))
        XCTAssertEqual(ok(t, "5M"), .integer(5_242_880))
        XCTAssertEqual(ok(t, "5MiB"), .integer(5_242_880))
        XCTAssertEqual(ok(t, "64k"), .integer(65_536))
        XCTAssertEqual(ok(t, "1G"), .integer(1 << 30))
        XCTAssertEqual(ok(t, "10b"), .integer(10))
        for bad in ["5T", "M", "1.5M", "-1"] { XCTAssertNil(ok(t, bad), bad) }
    }

    func testBool() {
        for yes in ["on", "ON", "true", "True", "yes"] { XCTAssertEqual(ok(.bool, yes), .bool(true), yes) }
        for no in ["off", "false", "NO"] { XCTAssertEqual(ok(.bool, no), .bool(false), no) }
        for bad in ["1", "0", "", "enabled"] { XCTAssertNil(ok(.bool, bad), bad) }
    }

    func testChoiceIsCaseInsensitiveAndCanonical() {
        let t = ConfigValueType.choice(["text", "json"])
        XCTAssertEqual(ok(t, "JSON"), .string("json"))
        XCTAssertNil(ok(t, "xml"))
    }

    func testString() {
        XCTAssertEqual(ok(.string(allowEmpty: true), ""), .string(""))
        XCTAssertNil(ok(.string(allowEmpty: false), ""))
    }

    func testList() {
        let t = ConfigValueType.list(.host, allowEmpty: false)
        XCTAssertEqual(ok(t, "a.example,  b.example ,10.0.0.1,[::1]"),
                       .list([.string("a.example"), .string("b.example"), .string("10.0.0.1"), .string("::1")]))
        XCTAssertNil(ok(t, ""))
        XCTAssertEqual(ok(.list(.host, allowEmpty: true), ""), .list([]))
        guard case .failure(.invalidValue(let expected, _)) = t.parse("a,,b") else { return XCTFail() }
        XCTAssertEqual(expected, "a comma-separated list of host names or IP addresses (an element is empty)")
        guard case .failure(.invalidValue(let e2, _)) = t.parse("a, bad_host!") else { return XCTFail() }
        XCTAssertEqual(e2, "a comma-separated list of host names or IP addresses ('bad_host!' is not a host name or IP address)")
    }

    func testAddress() {
        let t = ConfigValueType.address(defaultPort: 6600)
        XCTAssertEqual(ok(t, "0.0.0.0:6600"), .address(host: "0.0.0.0", port: 6600))
        XCTAssertEqual(ok(t, "[::1]:7000"), .address(host: "::1", port: 7000))
        XCTAssertEqual(ok(t, "::1"), .address(host: "::1", port: 6600))
        XCTAssertEqual(ok(t, "[::1]"), .address(host: "::1", port: 6600))
        XCTAssertEqual(ok(t, "collector.example"), .address(host: "collector.example", port: 6600))
        XCTAssertEqual(ok(t, "collector.example:1"), .address(host: "collector.example", port: 1))
        let strict = ConfigValueType.address(defaultPort: nil)
        for bad in ["127.0.0.1", "127.0.0.1:", "127.0.0.1:70000", ":80", "[::1", "[nothost]:80", "a b:80", "1.2.3.999:80", "::1"] {
            XCTAssertNil(ok(strict, bad), bad)
        }
        XCTAssertEqual(ConfigValue.address(host: "::1", port: 7).description, "[::1]:7")
        XCTAssertEqual(ConfigValue.address(host: "10.0.0.1", port: 7).description, "10.0.0.1:7")
    }

    func testHostAndIP() {
        XCTAssertEqual(ok(.host, "api-1.example.com"), .string("api-1.example.com"))
        XCTAssertEqual(ok(.host, "[fe80::1]"), .string("fe80::1"))
        for bad in ["", "-a.example", "a..b", "a_b", "1.2.3.999", String(repeating: "a", count: 64)] { XCTAssertNil(ok(.host, bad), bad) }
        XCTAssertEqual(ok(.ipAddress, "::"), .string("::"))
        XCTAssertEqual(ok(.ipAddress, "127.0.0.1"), .string("127.0.0.1"))
        XCTAssertNil(ok(.ipAddress, "localhost"))
    }

    func testCanonicalText() {
        XCTAssertEqual(ConfigValue.bool(true).description, "on")
        XCTAssertEqual(ConfigValue.list([.string("a"), .string("b")]).description, "a, b")
    }
}
