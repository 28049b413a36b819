// The StatsD line grammar, table-driven: the formats the `statsd` (Python)
// and DogStatsD documentation show, each accepted as what it says, and every
// malformed line dropped under its own cause.
import XCTest
@testable import Agent

final class StatsDParserTests: XCTestCase {
    enum Want: Equatable {
        case metric(name: String, type: StatsDType, values: String, rate: Double, tags: String)
        case event, serviceCheck
        case drop(StatsDDropCause)
    }

    func parse(_ text: String) -> ([Want], StatsDParser.Extras) {
        var out: [Want] = []
        var drops = StatsDDropCounters()
        var extras = StatsDParser.Extras()
        var t = text
        t.withUTF8 { b in
            StatsDParser.parse(UnsafeRawBufferPointer(b), drops: &drops, extras: &extras) { m in
                out.append(.metric(name: m.nameString, type: m.type, values: String(decoding: m.values, as: UTF8.self),
                                   rate: m.sampleRate, tags: m.tagsString))
            }
        }
        for _ in 0..<extras.events { out.append(.event) }
        for _ in 0..<extras.serviceChecks { out.append(.serviceCheck) }
        for c in StatsDDropCause.allCases { for _ in 0..<drops[c] { out.append(.drop(c)) } }
        return (out, extras)
    }

    func testDocumentedLineFormats() {
        let table: [(String, Want)] = [
            // statsd (Python) documentation: incr, decr, gauge, timing, set.
            ("foo:1|c", .metric(name: "foo", type: .counter, values: "1", rate: 1, tags: "")),
            ("foo:1|c|@0.1", .metric(name: "foo", type: .counter, values: "1", rate: 0.1, tags: "")),
            ("foo:-1|c", .metric(name: "foo", type: .counter, values: "-1", rate: 1, tags: "")),
            ("foo:70|g", .metric(name: "foo", type: .gauge, values: "70", rate: 1, tags: "")),
            ("foo:+1|g", .metric(name: "foo", type: .gauge, values: "+1", rate: 1, tags: "")),
            ("foo:-10|g", .metric(name: "foo", type: .gauge, values: "-10", rate: 1, tags: "")),
            ("foo:320|ms", .metric(name: "foo", type: .timer, values: "320", rate: 1, tags: "")),
            ("foo:320.000000|ms", .metric(name: "foo", type: .timer, values: "320.000000", rate: 1, tags: "")),
            ("foo:1.5e-05|ms", .metric(name: "foo", type: .timer, values: "1.5e-05", rate: 1, tags: "")),
            ("users:bob|s", .metric(name: "users", type: .set, values: "bob", rate: 1, tags: "")),
            // DogStatsD datagram format documentation.
            ("page.views:1|c", .metric(name: "page.views", type: .counter, values: "1", rate: 1, tags: "")),
            ("fuel.level:0.5|g", .metric(name: "fuel.level", type: .gauge, values: "0.5", rate: 1, tags: "")),
            ("song.length:240|h|@0.5", .metric(name: "song.length", type: .histogram, values: "240", rate: 0.5, tags: "")),
            ("users.uniques:1234|s", .metric(name: "users.uniques", type: .set, values: "1234", rate: 1, tags: "")),
            ("users.online:1|c|#country:china",
             .metric(name: "users.online", type: .counter, values: "1", rate: 1, tags: "country:china")),
            ("users.online:1|c|@0.5|#country:china",
             .metric(name: "users.online", type: .counter, values: "1", rate: 0.5, tags: "country:china")),
            ("request.latency:12|d|#env:prod,service:web",
             .metric(name: "request.latency", type: .distribution, values: "12", rate: 1, tags: "env:prod,service:web")),
            ("page.views:1:2:32|d", .metric(name: "page.views", type: .distribution, values: "1:2:32", rate: 1, tags: "")),
            ("page.views:15|c|#env:dev|T1656581400",
             .metric(name: "page.views", type: .counter, values: "15", rate: 1, tags: "env:dev")),
            ("page.views:1|c|#env:dev|c:ci-1234567890",
             .metric(name: "page.views", type: .counter, values: "1", rate: 1, tags: "env:dev")),
            ("_e{21,36}:An exception occurred|Cannot parse CSV file from 10.0.0.17|t:warning|#err_type:bad_file", .event),
            ("_e{5,4}:Title|Text", .event),
            ("_sc|Redis connection|2|#env:dev|m:Redis connection timed out after 10s", .serviceCheck),
            ("_sc|ok|0", .serviceCheck),
            // Malformed, one cause each.
            (":1|c", .drop(.name)),
            ("bad\u{01}name:1|c", .drop(.name)),
            (String(repeating: "n", count: 201) + ":1|c", .drop(.name)),
            ("foo|c", .drop(.value)),
            ("foo", .drop(.value)),
            ("foo:|c", .drop(.value)),
            ("foo:abc|c", .drop(.value)),
            ("foo:1..2|ms", .drop(.value)),
            ("foo:nan|g", .drop(.value)),
            ("foo:1e|c", .drop(.value)),
            ("foo:1::2|d", .drop(.value)),
            ("foo:1", .drop(.type)),
            ("foo:1|x", .drop(.type)),
            ("foo:1|", .drop(.type)),
            ("foo:-5|ms", .drop(.negative)),
            ("foo:1:-2|h", .drop(.negative)),
            ("foo:1|c|@0", .drop(.sampleRate)),
            ("foo:1|c|@1.5", .drop(.sampleRate)),
            ("foo:1|c|@x", .drop(.sampleRate)),
            ("foo:1|c|#" + String(repeating: "t", count: 301), .drop(.tags)),
            ("foo:1|c|Tsoon", .drop(.timestamp)),
            ("foo:1|c|zz", .drop(.field)),
            ("foo:1|c||@0.5", .drop(.field)),
            ("_e{5,9}:Title|Text", .drop(.event)),
            ("_e{x,4}:Title|Text", .drop(.event)),
            ("_sc||2", .drop(.serviceCheck)),
            ("_sc|name|7", .drop(.serviceCheck)),
            ("foo:1|c|#" + String(repeating: "t", count: 8200), .drop(.oversize)),
        ]
        for (line, want) in table {
            XCTAssertEqual(parse(line).0, [want], "line \(line.prefix(60))")
        }
    }

    func testSeveralLinesPerDatagramAndTheSkippedFieldsAreCounted() {
        let (got, extras) = parse("a:1|c\nb:2|g\r\n\nc:3|ms|c:abc\nd:4|h|T1700000000\nbroken\ne:x|s")
        XCTAssertEqual(got, [
            .metric(name: "a", type: .counter, values: "1", rate: 1, tags: ""),
            .metric(name: "b", type: .gauge, values: "2", rate: 1, tags: ""),
            .metric(name: "c", type: .timer, values: "3", rate: 1, tags: ""),
            .metric(name: "d", type: .histogram, values: "4", rate: 1, tags: ""),
            .metric(name: "e", type: .set, values: "x", rate: 1, tags: ""),
            .drop(.value),
        ])
        XCTAssertEqual(extras.containerFields, 1)
        XCTAssertEqual(extras.timestamps, 1)
    }

    func testNumbers() {
        func n(_ s: String) -> Double? { var t = s; return t.withUTF8 { StatsDParser.parseNumber(UnsafeRawBufferPointer($0)) } }
        XCTAssertEqual(n("12"), 12)
        XCTAssertEqual(n("-0.25"), -0.25)
        XCTAssertEqual(n("+3"), 3)
        XCTAssertEqual(n(".5"), 0.5)
        XCTAssertEqual(n("1.5e-05")!, 1.5e-05, accuracy: 1e-18)
        XCTAssertEqual(n("2E3"), 2000)
        XCTAssertEqual(n("12345678901234567890")!, 12345678901234567890, accuracy: 1e5)
        XCTAssertNil(n("1e999"))
        XCTAssertNil(n("inf"))
        XCTAssertNil(n("-"))
        XCTAssertNil(n("0x10"))
    }
}
