// Record codecs: seeded round trips for every type, exact bytes for the
// fixed ones, and every malformed-input path (each throws, none traps).
import XCTest
@testable import Wire

final class RecordCodecTests: XCTestCase {
    func decodeOne(_ bytes: [UInt8], limits: WireLimits = .default) throws -> Record {
        let all = try Record.decodeAll(bytes, limits: limits)
        XCTAssertEqual(all.count, 1)
        return all[0]
    }

    func assertThrows(_ bytes: [UInt8], _ expected: WireError, limits: WireLimits = .default,
                      file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try Record.decodeAll(bytes, limits: limits), file: file, line: line) {
            XCTAssertEqual($0 as? WireError, expected, file: file, line: line)
        }
    }

    func testEveryTypeRoundTripsUnderSeededProperty() throws {
        for type in RecordType.allCases {
            var gen = RecordGenerator(seed: 0x5EED_0000 + UInt64(type.rawValue))
            for _ in 0..<300 {
                let record = gen.record(type)
                let bytes = record.encoded
                XCTAssertEqual(bytes[0], type.rawValue)
                XCTAssertEqual(try decodeOne(bytes), record, "\(type)")
                // Every strict prefix is truncated or otherwise refused, never a crash.
                let cut = gen.int(1...bytes.count - 1)  // 0 bytes is an empty payload, which is legal
                XCTAssertThrowsError(try Record.decodeAll(Array(bytes[0..<cut]))) { error in
                    XCTAssertNotNil(error as? WireError)
                }
            }
        }
    }

    func testManyRecordsInOnePayload() throws {
        var gen = RecordGenerator(seed: 42)
        var w = WireWriter()
        var expected: [Record] = []
        for _ in 0..<200 {
            let r = gen.record(RecordType.allCases[gen.int(0...RecordType.allCases.count - 1)])
            r.encode(into: &w)
            expected.append(r)
        }
        XCTAssertEqual(try Record.decodeAll(w.bytes), expected)
    }

    func testFixedLayouts() throws {
        XCTAssertEqual(Record.ping(Ping(0x0102_0304_0506_0708)).encoded, [0x01, 0x08, 1, 2, 3, 4, 5, 6, 7, 8])
        XCTAssertEqual(Record.pong(Ping(0x0102_0304_0506_0708)).encoded, [0x02, 0x08, 1, 2, 3, 4, 5, 6, 7, 8])
        XCTAssertEqual(Record.ack(Ack(sequence: 300)).encoded, [0x21, 0x02, 0xAC, 0x02])
        XCTAssertEqual(Record.stringDef(StringDef(id: 1, text: "GET")).encoded, [0x12, 0x05, 0x01, 0x03, 0x47, 0x45, 0x54])
        XCTAssertEqual(Record.stringClear(StringClear()).encoded, [0x13, 0x00])
        XCTAssertEqual(Record.error(ErrorRecord(code: .idleTimeout, message: "")).encoded, [0x03, 0x02, 0x08, 0x00])
    }

    func testLongBodyUsesMultiByteLength() throws {
        let r = Record.error(ErrorRecord(code: .rejected, message: String(repeating: "x", count: 200)))
        let bytes = r.encoded
        // body = code(1) + len(2) + 200 = 203 = 0xCB 0x01
        XCTAssertEqual(Array(bytes[0..<3]), [0x03, 0xCB, 0x01])
        XCTAssertEqual(try decodeOne(bytes), r)
    }

    func testUnknownTypeIsSkippedWithItsBody() throws {
        let bytes: [UInt8] = [0x7F, 0x03, 0xAA, 0xBB, 0xCC] + Record.ack(Ack(sequence: 5)).encoded
        XCTAssertEqual(try Record.decodeAll(bytes), [.unknown(type: 0x7F, length: 3), .ack(Ack(sequence: 5))])
    }

    func testTrailingFieldsInBodyAreIgnored() throws {
        // A newer sender appended a field to Ack: older receivers read the first.
        XCTAssertEqual(try decodeOne([0x21, 0x03, 0x05, 0xFF, 0x01]), .ack(Ack(sequence: 5)))
    }

    func testAppendedMonitorFieldsAreOptional() throws {
        // A MonitorResult item and a Schedule as a first-version sender wrote
        // them (without the appended fields) decode with the defaults.
        var item = WireWriter()
        item.varint(UInt64(9)); item.varint(UInt64(2)); item.varint(UInt64(1000)); item.varint(UInt64(0))
        item.u8(MonitorStatus.error.rawValue); item.varint(UInt64(55)); item.varint(UInt64(0)); item.string("down")
        var batch = WireWriter()
        batch.varint(UInt64(1)); batch.varint(UInt64(1)); batch.u8(BatchItem.monitorResultKind)
        batch.varint(UInt64(item.count)); batch.raw(item.bytes)
        var lw = WireWriter(); lw.varint(UInt64(batch.count))
        let decoded = try decodeOne([0x20] + lw.bytes + batch.bytes)
        XCTAssertEqual(decoded, .dataBatch(DataBatch(sequence: 1, items: [.monitorResult(MonitorResult(
            monitorID: 9, runID: 2, timestampMs: 1000, step: 0, status: .error, durationUs: 55, message: "down"))])))

        var sched = WireWriter()
        sched.varint(UInt64(4)); sched.varint(UInt64(1))
        sched.varint(UInt64(7)); sched.string("n"); sched.string("tcp"); sched.string("h:1")
        sched.varint(UInt64(10_000)); sched.varint(UInt64(1000)); sched.keyValues([])
        var sl = WireWriter(); sl.varint(UInt64(sched.count))
        XCTAssertEqual(try decodeOne([0x32] + sl.bytes + sched.bytes), .schedule(Schedule(version: 4, monitors: [
            MonitorSpec(id: 7, name: "n", kind: "tcp", target: "h:1", intervalMs: 10_000, timeoutMs: 1000)])))
        XCTAssertEqual(MonitorStatus.overtime.description, "overtime")
    }

    func testRawEventFromAnOlderSenderHasNoRuleNames() throws {
        // The body as a sender without monitor/check writes it: decodes with 0s.
        var w = WireWriter()
        w.varint(UInt64(7)); w.varint(UInt64(1)); w.varint(UInt64(2)); w.string("/p"); w.varint(UInt64(200)); w.varint(UInt64(9))
        let decoded: RawEvent = try w.bytes.withUnsafeBytes { p in
            var r = WireReader(p)
            return try RawEvent.decode(from: &r, limits: .default)
        }
        XCTAssertEqual(decoded, RawEvent(timestampUs: 7, method: 1, host: 2, path: "/p", status: 200, durationUs: 9))
        let full = RawEvent(timestampUs: 7, method: 1, host: 2, path: "/p", status: 200, durationUs: 9, monitor: 3, check: 4)
        XCTAssertEqual(try decodeOne(Record.dataBatch(DataBatch(sequence: 1, items: [.event(full)])).encoded),
                       .dataBatch(DataBatch(sequence: 1, items: [.event(full)])))
    }

    func testUnknownBatchItemKindIsSkipped() throws {
        // sequence 1, 2 items: kind 9 (3 bytes body), then an Aggregate... use an unknown + ack-sized known
        var w = WireWriter()
        w.varint(UInt64(1)); w.varint(UInt64(2))
        w.u8(9); w.varint(UInt64(3)); w.raw([1, 2, 3])
        BatchItem.event(RawEvent(timestampUs: 1, method: 1, host: 2, path: "/", durationUs: 3)).encode(into: &w)
        var bytes: [UInt8] = [0x20]
        var lw = WireWriter(); lw.varint(UInt64(w.count)); bytes += lw.bytes + w.bytes
        XCTAssertEqual(try decodeOne(bytes), .dataBatch(DataBatch(sequence: 1, items: [
            .unknown(kind: 9), .event(RawEvent(timestampUs: 1, method: 1, host: 2, path: "/", durationUs: 3))])))
    }

    // MARK: malformed

    func testTruncatedHeaderAndBody() {
        assertThrows([0x21], .truncated)                 // no length
        assertThrows([0x21, 0x05, 0x01], .truncated)     // body shorter than length
        assertThrows([0x21, 0x00], .truncated)           // Ack body empty: field missing
        assertThrows([0x03, 0x03, 0x01, 0x05, 0x41], .truncated)  // string runs past body
    }

    func testBadVarints() {
        assertThrows([0x21, 0x80, 0x00], .badVarint)                         // non-minimal length
        assertThrows([0x21, 0x01, 0x80], .truncated)                         // continuation past end of body
        assertThrows([0x21, 0x02, 0x80, 0x00], .badVarint)                   // non-minimal field
        let eleven: [UInt8] = [0x21, 0x0B] + [UInt8](repeating: 0xFF, count: 10) + [0x01]
        assertThrows(eleven, .badVarint)                                     // > 10 bytes
        let overflow: [UInt8] = [0x21, 0x0A] + [UInt8](repeating: 0xFF, count: 9) + [0x02]
        assertThrows(overflow, .badVarint)                                   // > 2^64-1
        let max: [UInt8] = [0x21, 0x0A] + [UInt8](repeating: 0xFF, count: 9) + [0x01]
        XCTAssertEqual(try? decodeOne(max), .ack(Ack(sequence: UInt64.max)))
        // u32 fields refuse larger values
        var w = WireWriter(); w.varint(UInt64(1) << 32)
        assertThrows([0x12, UInt8(w.count + 1)] + w.bytes + [0], .badVarint)
    }

    func testLimits() {
        let limits = WireLimits(maxRecordLength: 10, maxBatchItems: 2, maxStringLength: 4, maxListCount: 2, maxStringID: 100)
        assertThrows(Record.error(ErrorRecord(code: .rejected, message: "0123456789")).encoded, .recordTooLarge(12), limits: limits)
        assertThrows(Record.error(ErrorRecord(code: .rejected, message: "01234")).encoded,
                     .limitExceeded(field: "error.message", value: 5), limits: limits)
        assertThrows(Record.hello(Hello(agentID: "a", capabilities: ["x", "y", "z"])).encoded,
                     .limitExceeded(field: "hello.capabilities", value: 3),
                     limits: WireLimits(maxListCount: 2))
        let item = BatchItem.aggregate(Aggregate(windowStartMs: 0, windowLengthMs: 0, monitor: 0, check: 0, source: 0, count: 0,
                                                 sumUs: 0, minUs: 0, maxUs: 0, p50Us: 0, p95Us: 0, p99Us: 0))
        assertThrows(Record.dataBatch(DataBatch(sequence: 1, items: [item, item, item])).encoded, .batchTooLarge(3),
                     limits: WireLimits(maxBatchItems: 2))
        assertThrows(Record.stringDef(StringDef(id: 101, text: "")).encoded,
                     .limitExceeded(field: "string_def.id", value: 101), limits: limits)
        let entry = ConfigEntry(key: "k", value: "v", origin: .commandLine)
        assertThrows(Record.effectiveConfig(EffectiveConfig([entry, entry, entry])).encoded,
                     .limitExceeded(field: "effective_config", value: 3), limits: WireLimits(maxListCount: 2))
        assertThrows(Record.effectiveConfig(EffectiveConfig([ConfigEntry(key: "k", value: "01234", origin: .file)])).encoded,
                     .limitExceeded(field: "effective_config.value", value: 5), limits: WireLimits(maxStringLength: 4))
        // A forged list count larger than the bytes left costs nothing.
        assertThrows([0x23, 0x05, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F], .truncated)
        assertThrows([0x20, 0x06, 0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F], .truncated)
    }

    func testMalformedFields() {
        assertThrows([0x01, 0x07, 1, 2, 3, 4, 5, 6, 7], .malformed(field: "ping.length"))
        assertThrows([0x01, 0x09, 1, 2, 3, 4, 5, 6, 7, 8, 9], .malformed(field: "ping.length"))
        assertThrows([0x12, 0x02, 0x00, 0x00], .malformed(field: "string_def.id"))
        assertThrows([0x03, 0x04, 0x01, 0x02, 0xC3, 0x28], .malformed(field: "error.message"))  // invalid UTF-8
        assertThrows([0x03, 0x03, 0x01, 0x01, 0xFF], .malformed(field: "error.message"))
        // bool other than 0/1
        assertThrows([0x41, 0x05, 0x01, 0x02, 0x00, 0x00, 0x00], .malformed(field: "control_response.ok"))
    }

    func testRandomBytesNeverTrap() {
        var rng = SeededRandom(seed: 7)
        for _ in 0..<20000 {
            let n = Int.random(in: 0...64, using: &rng)
            var bytes = (0..<n).map { _ in UInt8.random(in: 0...255, using: &rng) }
            if !bytes.isEmpty { bytes[0] = RecordType.allCases.randomElement(using: &rng)!.rawValue }
            _ = try? Record.decodeAll(bytes)
        }
    }

    func testEncodingOverflowIsReportedNotTrapped() {
        var w = WireWriter(limit: 8)
        Record.error(ErrorRecord(code: .rejected, message: "0123456789")).encode(into: &w)
        XCTAssertTrue(w.overflowed)
        w.truncate(to: 0)
        XCTAssertFalse(w.overflowed)
        var big = WireWriter()
        Record.error(ErrorRecord(code: .rejected, message: String(repeating: "x", count: 3 << 20))).encode(into: &big)
        XCTAssertTrue(big.overflowed, "regions above 2^21-1 bytes cannot be length-prefixed in 3 bytes")
    }
}

final class VarintTests: XCTestCase {
    func testBoundaries() throws {
        let values: [UInt64] = [0, 1, 127, 128, 255, 300, 16383, 16384, (1 << 21) - 1, 1 << 21, UInt64(UInt32.max),
                                1 << 56, (1 << 63) - 1, 1 << 63, UInt64.max]
        for v in values {
            var w = WireWriter()
            w.varint(v)
            XCTAssertEqual(w.count, WireWriter.varintLength(v))
            try w.bytes.withUnsafeBytes { p in
                var r = WireReader(p)
                XCTAssertEqual(try r.varint(), v)
                XCTAssertTrue(r.isAtEnd)
            }
        }
        var w = WireWriter(); w.varint(UInt64(300))
        XCTAssertEqual(w.bytes, [0xAC, 0x02])
        w = WireWriter(); w.varint(UInt64.max)
        XCTAssertEqual(w.bytes, [UInt8](repeating: 0xFF, count: 9) + [0x01])
    }

    func testLengthPrefixShrinksToMinimal() {
        for n in [0, 1, 127, 128, 16383, 16384, 70000] {
            var w = WireWriter()
            w.u8(0xEE)
            let s = w.beginLengthPrefixed()
            w.raw([UInt8](repeating: 0x5A, count: n))
            XCTAssertEqual(w.endLengthPrefixed(s), n)
            XCTAssertEqual(w.count, 1 + WireWriter.varintLength(UInt64(n)) + n)
            XCTAssertEqual(w.bytes.last, n > 0 ? 0x5A : w.bytes.last)
        }
    }
}

final class AppendedDataFieldTests: XCTestCase {
    private func decodeAggregate(_ bytes: [UInt8]) throws -> (Aggregate, Bool) {
        var result: Result<(Aggregate, Bool), WireError> = .failure(.truncated)
        bytes.withUnsafeBytes { p in
            var r = WireReader(p)
            do throws(WireError) {
                let a = try Aggregate.decode(from: &r)
                result = .success((a, r.isAtEnd))
            } catch { result = .failure(error) }
        }
        return try result.get()
    }

    func testAggregateOutcomesRoundTripAndOlderBodiesReadAsZero() throws {
        let a = Aggregate(windowStartMs: 1_700_000_000_000, windowLengthMs: 10_000, monitor: 1, check: 2, source: 3, count: 9,
                          errors: 3, sumUs: 90, minUs: 1, maxUs: 20, p50Us: 10, p95Us: 19, p99Us: 20,
                          outcome2xx: 5, outcome3xx: 1, outcome4xx: 0, outcome5xx: 2, outcomeError: 1)
        var w = WireWriter()
        a.encode(into: &w)
        var withOutcomes = w.bytes
        let (back, atEnd) = try decodeAggregate(withOutcomes)
        XCTAssertEqual(back, a)
        XCTAssertTrue(atEnd)
        // An older sender's body: the 13 fields without the outcomes.
        var old = a
        (old.outcome2xx, old.outcome3xx, old.outcome4xx, old.outcome5xx, old.outcomeError) = (0, 0, 0, 0, 0)
        var w2 = WireWriter()
        old.encode(into: &w2)
        XCTAssertEqual(w2.bytes.count, withOutcomes.count - 5, "no outcomes, no appended bytes")
        XCTAssertEqual(try decodeAggregate(w2.bytes).0, old)
        withOutcomes.removeLast()
        XCTAssertThrowsError(try decodeAggregate(withOutcomes), "a cut appended field is malformed, not zero")
        // Inside a batch, through the item's length prefix.
        let batch = Record.dataBatch(DataBatch(sequence: 3, items: [.aggregate(a), .aggregate(old)]))
        XCTAssertEqual(try Record.decodeAll(batch.encoded), [batch])
    }

    func testRawEventErrorClassRoundTrips() throws {
        let e = RawEvent(timestampUs: 1, method: 2, host: 3, path: "/p", status: 0, durationUs: 4, monitor: 5, check: 6,
                         errorClass: "timeout")
        let batch = Record.dataBatch(DataBatch(sequence: 1, items: [.event(e), .event(RawEvent(timestampUs: 1, method: 2, host: 3,
                                                                                              path: "/", durationUs: 1))]))
        XCTAssertEqual(try Record.decodeAll(batch.encoded), [batch])
    }
}
