// Definitions through Wire Schedule records and back, split schedules, and
// the appended Schedule fields.
import XCTest
import JSON
import Wire
@testable import MonitorModel
@testable import MonitorRunners

final class ScheduleCodecTests: XCTestCase {
    func sample() -> [MonitorDefinition] {
        [
            MonitorDefinition(id: "api", name: "API", intervalSecs: 30, timeoutSecs: 10, groups: ["eu", "us"],
                              check: .http(HTTPCheck(method: "POST", url: "https://${env:HOST}/health",
                                                     headers: [HTTPHeader("Authorization", "Bearer ${env:TOKEN}"), HTTPHeader("X-A", "b: c")],
                                                     body: "{}", expectStatus: [.code(204), .class(3)],
                                                     followRedirects: true, tlsVerify: false))),
            .tcp("db", host: "::1", port: 5432),
            .exec("steps", steps: [("a", 5), ("b.c", 10)], config: JSONObject([("k", "v ${env:X}"), ("n", [1, 2])]),
                  command: "/opt/m.sh"),
        ]
    }

    /// Through bytes, as a session would carry it.
    func wire(_ s: Schedule) throws -> Schedule {
        let bytes = Record.schedule(s).encoded
        guard case .schedule(let back)? = try Record.decodeAll(bytes).first else { throw WireError.truncated }
        return back
    }

    func testDefinitionsRoundTripThroughTheRecord() throws {
        let defs = sample()
        let last: [UInt64: UInt64] = [defs[0].numericID: 1_700_000_000_123]
        let records = ScheduleCodec.records(version: 7, definitions: defs, lastRunMs: last)
        XCTAssertEqual(records.count, 1)
        let back = try wire(records[0])
        XCTAssertEqual(back.version, 7)
        XCTAssertEqual(back.monitors[0].lastRunMs, 1_700_000_000_123)
        XCTAssertEqual(back.monitors[0].groups, ["eu", "us"])
        XCTAssertEqual(back.monitors[0].target, "https://${env:HOST}/health", "references travel unresolved")
        XCTAssertEqual(back.monitors[1].target, "[::1]:5432")
        XCTAssertEqual(back.monitors[2].params.filter { $0.key == "step" }.map(\.value), ["a:5", "b.c:10"])
        let (out, lastRun, errors) = ScheduleCodec.definitions(from: back)
        XCTAssertEqual(errors, [])
        XCTAssertEqual(out, defs)
        XCTAssertEqual(lastRun, last)
    }

    /// Found by fuzz-json: a header value starting with a combining mark made
    /// the separator's space and the mark one Character, and the space stayed.
    func testHeaderValuesSurviveWhateverUnicodeTheyStartWith() throws {
        for value in ["\u{0617}idgr", "\u{0301}", " leading space", "", "a: b"] {
            let def = MonitorDefinition(id: "h", name: "H", intervalSecs: 30, timeoutSecs: 10, groups: ["default"],
                                        check: .http(HTTPCheck(method: "GET", url: "https://x.example/",
                                                               headers: [HTTPHeader("X-Test", value)], body: nil,
                                                               expectStatus: [.code(200)], followRedirects: false,
                                                               tlsVerify: true)))
            let back = try wire(ScheduleCodec.records(version: 1, definitions: [def])[0])
            let (out, _, errors) = ScheduleCodec.definitions(from: back)
            XCTAssertEqual(errors, [], "value \(value.unicodeScalars.map(\.value))")
            XCTAssertEqual(out, [def], "value \(value.unicodeScalars.map(\.value))")
        }
    }

    func testInvalidSpecsAreLeftOutAndNamed() {
        var bad = ScheduleCodec.spec(MonitorDefinition.tcp("t", host: "h", port: 1))
        bad.params.removeAll { $0.key == "port" }
        var unknown = ScheduleCodec.spec(MonitorDefinition.tcp("u", host: "h", port: 1))
        unknown.kind = "dns"
        var wrongID = ScheduleCodec.spec(MonitorDefinition.tcp("w", host: "h", port: 1))
        wrongID.id = 42
        var badURL = ScheduleCodec.spec(MonitorDefinition.http("x", url: "http://h/"))
        badURL.target = "gopher://h/"
        let good = ScheduleCodec.spec(MonitorDefinition.tcp("g", host: "h", port: 1))
        let (defs, _, errors) = ScheduleCodec.definitions(from: Schedule(version: 1, monitors: [bad, unknown, wrongID, badURL, good]))
        XCTAssertEqual(defs.map(\.id), ["g"])
        XCTAssertEqual(errors, [
            "monitor \(bad.id) (TCP t): parameters host and port required",
            "monitor \(unknown.id) (TCP u): unknown kind \"dns\"",
            "monitor 42 (TCP w): numeric id does not match id \"w\"",
            "monitor \(badURL.id) (HTTP x): spec.url: expected an http or https URL",
        ])
    }

    func testLargeScheduleIsSplitIntoRecordsThatFit() throws {
        let defs = (0..<1000).map { MonitorDefinition.http("mon-\($0)", url: "http://127.0.0.1:8080/health/\($0)") }
        let records = ScheduleCodec.records(version: 3, definitions: defs)
        XCTAssertGreaterThan(records.count, 1)
        var assembler = ScheduleAssembler()
        var whole: Schedule?
        for (i, r) in records.enumerated() {
            XCTAssertEqual(r.part, UInt32(i))
            XCTAssertEqual(r.parts, UInt32(records.count))
            let bytes = Record.schedule(r).encoded
            XCTAssertLessThanOrEqual(bytes.count - 4, WireLimits.absoluteMaxRecordLength, "part \(i) fits a record")
            let back = try wire(r)
            let got = assembler.add(back)
            if i < records.count - 1 { XCTAssertNil(got) } else { whole = got }
        }
        XCTAssertEqual(whole?.version, 3)
        XCTAssertEqual(ScheduleCodec.definitions(from: whole!).definitions, defs)
        XCTAssertEqual(assembler.discarded, 0)
    }

    func testAssemblerDiscardsBrokenSequences() {
        let a = Schedule(version: 5, monitors: [], part: 0, parts: 3)
        let b = Schedule(version: 5, monitors: [], part: 1, parts: 3)
        let c = Schedule(version: 5, monitors: [], part: 2, parts: 3)
        var asm = ScheduleAssembler()
        XCTAssertNil(asm.add(a))
        XCTAssertNil(asm.add(c), "a gap")
        XCTAssertEqual(asm.discarded, 1)
        XCTAssertNil(asm.add(b), "nothing pending: dropped")
        XCTAssertEqual(asm.discarded, 2)
        XCTAssertNil(asm.add(a))
        XCTAssertNotNil(asm.add(Schedule(version: 6, monitors: [])), "a whole schedule replaces a partial one")
        XCTAssertEqual(asm.discarded, 3)
        XCTAssertNil(asm.add(a)); XCTAssertNil(asm.add(b))
        XCTAssertEqual(asm.add(c)?.version, 5)
    }

    func testEmptyScheduleIsOneRecord() {
        let r = ScheduleCodec.records(version: 9, definitions: [])
        XCTAssertEqual(r, [Schedule(version: 9, monitors: [], part: 0, parts: 1)])
    }

    func testOlderScheduleBodyDecodesWithDefaults() throws {
        // version 2, one monitor, no appended fields: what a first-version collector sent.
        var w = WireWriter()
        w.varint(2)
        w.varint(1)
        w.varint(77); w.string("n"); w.string("tcp"); w.string("h:1"); w.varint(10_000); w.varint(1000)
        w.keyValues([KeyValue("id", "x")])
        let s = try w.bytes.withUnsafeBytes { raw -> Schedule in
            var r = WireReader(raw)
            return try Schedule.decode(from: &r, limits: .default)
        }
        XCTAssertEqual(s.monitors[0].lastRunMs, 0)
        XCTAssertEqual(s.monitors[0].groups, [])
        XCTAssertEqual(s.part, 0)
        XCTAssertEqual(s.parts, 1)
    }

    func testMalformedAppendedFields() {
        func decode(_ bytes: [UInt8]) throws -> Schedule {
            try bytes.withUnsafeBytes { raw in
                var r = WireReader(raw)
                return try Schedule.decode(from: &r, limits: .default)
            }
        }
        var w = WireWriter()
        w.varint(1); w.varint(0)   // version 1, no monitors
        w.varint(1); w.varint(5); w.varint(0)  // one state for zero monitors
        XCTAssertThrowsError(try decode(w.bytes)) { XCTAssertEqual($0 as? WireError, .malformed(field: "schedule.monitor_states")) }
        var p = WireWriter()
        p.varint(1); p.varint(0); p.varint(0); p.varint(3); p.varint(3)  // part 3 of 3
        XCTAssertThrowsError(try decode(p.bytes)) { XCTAssertEqual($0 as? WireError, .malformed(field: "schedule.part")) }
    }
}
