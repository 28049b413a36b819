import IPAPipeline
import XCTest
@testable import Agent

/// A parsed record copied out of the datagram, for assertions.
struct Parsed: Equatable {
    var method: String, host: String, port: UInt16, path: String, ms: Double
}

func parseAll(_ text: String) -> ([Parsed], IPADropCounters) {
    var drops = IPADropCounters()
    var out: [Parsed] = []
    var bytes = Array(text.utf8)
    bytes.withUnsafeMutableBytes { buf in
        IPAParser.parse(UnsafeRawBufferPointer(buf), drops: &drops) { r in
            out.append(Parsed(method: r.methodString, host: r.hostString, port: r.port, path: r.pathString, ms: r.durationMs))
        }
    }
    return (out, drops)
}

final class IPAParserTests: XCTestCase {
    func testVersionZeroWithTabs() {
        let (r, d) = parseAll("0\tGET\tapi.example.com\t/v1/users\t12\n")
        XCTAssertEqual(r, [Parsed(method: "GET", host: "api.example.com", port: 0, path: "/v1/users", ms: 12)])
        XCTAssertEqual(d.total, 0)
    }

    func testVersionOneWithFullURL() {
        let (r, _) = parseAll("1\tPOST\thttps://api.example.com:8443/v1/orders?token=secret\t3.25")
        XCTAssertEqual(r, [Parsed(method: "POST", host: "api.example.com", port: 8443, path: "/v1/orders", ms: 3.25)])
    }

    func testLiberalVariants() {
        let text = [
            "0  GET   api.example.com   /a   7",               // runs of spaces, no TAB
            "0\tGET\thttps://api.example.com\t/b?x=1\t8",      // scheme in host, query
            "0\tGET\tapi.example.com:8080\t/c\t.5",            // port in host, fraction
            "0\tGET\thttp://[::1]:9000\t/d\t9.",               // IPv6 host
            "1\tGET\thttp://h.example\t10",                    // URL without path
            "1 DELETE http://user@h.example/e#frag 11",        // userinfo, fragment, spaces
        ].joined(separator: "\r\n")
        let (r, d) = parseAll(text)
        XCTAssertEqual(d.total, 0)
        XCTAssertEqual(r.map(\.path), ["/a", "/b", "/c", "/d", "/", "/e"])
        XCTAssertEqual(r.map(\.host), ["api.example.com", "api.example.com", "api.example.com", "[::1]", "h.example", "h.example"])
        XCTAssertEqual(r.map(\.port), [0, 0, 8080, 9000, 0, 0])
        XCTAssertEqual(r.map(\.ms), [7, 8, 0.5, 9, 10, 11])
    }

    func testEveryDropCauseIsCounted() {
        let text = [
            "3\tGET\th\t/p\t1",              // bad version
            "x",                              // bad version
            "0\tGET\th\t/p",                  // field count
            "0\tGET\th\t/p\t1\textra",        // field count
            "0\tGET\th\t/p\t1\t",             // trailing tab: field count
            "1\tGET\thttp://h/p",             // field count
            "0\tGET\th\t/p\tfast",            // duration
            "0\tGET\th\t/p\t-1",              // duration
            "0\tGET\th\t/p\t1.2.3",           // duration
            "0\tGET\th\t/p\t999999999999",    // duration (over a day)
            "1\tGET\tnot-a-url\t1",           // bad url
            "0\tGET\th:99999\t/p\t1",         // bad url (port)
            "0\tGET\t:80\t/p\t1",             // bad url (empty host)
            "0\tGET\th\t/" + String(repeating: "a", count: 9000) + "\t1",  // oversize
        ].joined(separator: "\n")
        let (r, d) = parseAll(text)
        XCTAssertEqual(r.count, 0)
        XCTAssertEqual(d[.badVersion], 2)
        XCTAssertEqual(d[.fieldCount], 4)
        XCTAssertEqual(d[.duration], 4)
        XCTAssertEqual(d[.badURL], 3)
        XCTAssertEqual(d[.oversize], 1)
        XCTAssertEqual(d.total, 14)
    }

    func testEmptyLinesAreIgnoredAndGarbageNeverTraps() {
        let (r, d) = parseAll("\n\n\r\n0\tGET\th\t/p\t1\n\n")
        XCTAssertEqual(r.count, 1)
        XCTAssertEqual(d.total, 0)
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<2000 {
            let n = Int.random(in: 0..<200, using: &rng)
            var bytes = (0..<n).map { _ in UInt8.random(in: 0...255, using: &rng) }
            var drops = IPADropCounters()
            bytes.withUnsafeMutableBytes { IPAParser.parse(UnsafeRawBufferPointer($0), drops: &drops) { _ in } }
        }
    }
}

final class PatternSetTests: XCTestCase {
    let set = PatternSet(rules: [
        FilterRule(method: "GET", host: "api.example.com", path: "/v1/users/*", monitor: "users", check: "get-user"),
        FilterRule(method: "*", host: "*.example.com", path: "/v1/*", monitor: "api", check: "any-v1"),
        FilterRule(method: "", host: "pay?.example.net", path: "/charge", monitor: "pay", check: "charge"),
    ], version: 1)

    func testFirstMatchWinsAndMatchingIsAnchored() {
        XCTAssertEqual(set.match(method: "GET", host: "api.example.com", path: "/v1/users/42"), 0)
        XCTAssertEqual(set.match(method: "get", host: "API.Example.COM", path: "/v1/users/42"), 0)
        XCTAssertEqual(set.match(method: "POST", host: "api.example.com", path: "/v1/users/42"), 1)
        XCTAssertEqual(set.match(method: "GET", host: "x.example.com", path: "/v1/a/b/c"), 1)
        XCTAssertNil(set.match(method: "GET", host: "example.com", path: "/v1/a"), "*.example.com needs a subdomain")
        XCTAssertNil(set.match(method: "GET", host: "api.example.com", path: "/v2/x"))
        XCTAssertNil(set.match(method: "GET", host: "api.example.com.evil", path: "/v1/x"), "anchored at the end")
        XCTAssertEqual(set.match(method: "PUT", host: "pay1.example.net", path: "/charge"), 2)
        XCTAssertNil(set.match(method: "PUT", host: "pay12.example.net", path: "/charge"))
        XCTAssertNil(set.match(method: "PUT", host: "pay1.example.net", path: "/charge/2"))
        XCTAssertNil(set.match(method: "PUT", host: "pay1.example.net", path: "/Charge"), "paths are case-sensitive")
    }

    func testGlobBacktracking() {
        let s = PatternSet(rules: [FilterRule(method: "*", host: "*", path: "/a*b*c", monitor: "m", check: "c")], version: 1)
        XCTAssertEqual(s.match(method: "GET", host: "h", path: "/aXbYbZc"), 0)
        XCTAssertNil(s.match(method: "GET", host: "h", path: "/aXbYbZ"))
        XCTAssertEqual(s.match(method: "GET", host: "h", path: "/abc"), 0)
    }

    func testRuleProblems() {
        XCTAssertNil(set.rules[0].problem)
        XCTAssertNotNil(FilterRule(method: "", host: "", path: "/", monitor: "m", check: "c").problem)
        XCTAssertNotNil(FilterRule(method: "", host: "*", path: "/", monitor: "", check: "c").problem)
    }
}

final class RedactorTests: XCTestCase {
    func testIdentifiersBecomeId() {
        XCTAssertEqual(Redactor.redactPath("/v1/users/12345/orders"), "/v1/users/:id/orders")
        XCTAssertEqual(Redactor.redactPath("/s/3f2504e0-4f89-11d3-9a0c-0305e82c3301"), "/s/:id")
        XCTAssertEqual(Redactor.redactPath("/blob/a1b2c3d4e5f60718293a"), "/blob/:id")
        XCTAssertEqual(Redactor.redactPath("/v1/deadbeef"), "/v1/deadbeef", "short hex words stay")
        XCTAssertEqual(Redactor.redactPath("/v1/abcdefabcdefabcdef"), "/v1/abcdefabcdefabcdef", "hex letters alone are a word")
        XCTAssertEqual(Redactor.redactPath("/"), "/")
        XCTAssertEqual(Redactor.redactPath("/a//7/"), "/a//:id/")
    }
}

final class AggregatorTests: XCTestCase {
    func testOneAggregatePerKeyPerWindow() {
        let rules = [
            FilterRule(method: "*", host: "*", path: "/a", monitor: "m", check: "a"),
            FilterRule(method: "*", host: "*", path: "/a2", monitor: "m", check: "a"),   // same key
            FilterRule(method: "*", host: "*", path: "/b", monitor: "m", check: "b"),
        ]
        let agg = Aggregator(intervalMs: 10_000)
        agg.install(PatternSet(rules: rules, version: 1))
        for v in 1...100 { agg.record(rule: v % 2, durationMs: Double(v)) }
        agg.record(rule: 2, durationMs: 0.25)
        agg.record(rule: 7, durationMs: 1)   // unknown rule: ignored
        XCTAssertEqual(agg.windowStart(containing: 1_700_000_012_345), 1_700_000_010_000)
        let out = agg.flush(windowStartMs: 1_700_000_010_000)
        XCTAssertEqual(out.count, 2)
        let a = out.first { $0.check == "a" }!
        XCTAssertEqual(a.count, 100)
        XCTAssertEqual(a.sumUs, 5_050_000)
        XCTAssertEqual(a.minUs, 1000)
        XCTAssertEqual(a.maxUs, 100_000)
        XCTAssertEqual(Double(a.p50Us), 50_000, accuracy: 500)
        XCTAssertEqual(Double(a.p95Us), 95_000, accuracy: 950)
        XCTAssertEqual(Double(a.p99Us), 99_000, accuracy: 990)
        XCTAssertEqual(a.windowMs, 10_000)
        XCTAssertEqual(a.source, "ipa")
        let b = out.first { $0.check == "b" }!
        XCTAssertEqual(b.count, 1)
        XCTAssertEqual(Double(b.p99Us), 250, accuracy: 2.5)
        XCTAssertEqual(agg.flush(windowStartMs: 1_700_000_020_000), [], "an empty window sends nothing")
    }

    func testReinstallKeepsOpenWindowDataOfSurvivingKeys() {
        let agg = Aggregator(intervalMs: 1000)
        agg.install(PatternSet(rules: [FilterRule(method: "*", host: "*", path: "/a", monitor: "m", check: "a")], version: 1))
        agg.record(rule: 0, durationMs: 5)
        agg.install(PatternSet(rules: [
            FilterRule(method: "*", host: "*", path: "/z", monitor: "m", check: "z"),
            FilterRule(method: "*", host: "*", path: "/a", monitor: "m", check: "a"),
        ], version: 2))
        agg.record(rule: 1, durationMs: 7)
        let out = agg.flush(windowStartMs: 0)
        XCTAssertEqual(out.count, 1)
        XCTAssertEqual(out[0].count, 2)
        XCTAssertEqual(out[0].sumUs, 12_000)
    }
}
