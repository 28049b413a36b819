// One latency unit: a DataBatch's microseconds reach the store's rows as
// integers, typed fields replace the old `meta` JSON, and the API turns
// them into the milliseconds and `meta` objects docs/API.md shows.
// No process; the loop thread is the test's.
import XCTest
import Wire
import CollectorStore
@testable import Collector

final class BatchTranslatorTests: XCTestCase {
    func testMicrosecondsAndTypedFieldsReachTheRowsUnchanged() throws {
        var strings = StringTable(maxID: 100, maxBytes: 1_000)
        for (id, text) in ["shop", "GET /cart", "ipa", "GET", "shop.example", "connect"].enumerated() {
            try strings.define(StringRef(id + 1), text)
        }
        let batch = DataBatch(sequence: 4, items: [
            .aggregate(Aggregate(windowStartMs: 1_700_000_000_000, windowLengthMs: 10_000, monitor: 1, check: 2, source: 3,
                                 count: 9, errors: 3, sumUs: 9_007_199_254_740_993, minUs: 1, maxUs: 123_457,
                                 p50Us: 12_345, p95Us: 67_891, p99Us: 99_999)),
            .event(RawEvent(timestampUs: 1_700_000_000_123_456, method: 4, host: 5, path: "/cart/42", status: 404, durationUs: 12_501)),
            .event(RawEvent(timestampUs: 1_700_000_000_200_000, method: 4, host: 5, path: "/", durationUs: 7)),
            .monitorResult(MonitorResult(monitorID: 7, runID: 1, timestampMs: 1_700_000_001_000, step: 0, status: .ok,
                                         durationUs: 4_321, phases: [.init(name: 6, durationUs: 1_100)])),
        ])
        guard case .success(let t) = BatchTranslator.translate(batch, projectId: 1, agentID: "a1", dedupBoot: "boot",
                                                               strings: strings, receivedAt: 5) else {
            return XCTFail("refused")
        }
        XCTAssertEqual(t.batch.sequence, 4)
        XCTAssertEqual(t.batch.measurements, [MeasurementRow(
            ts: 1_700_000_000_000, windowMs: 10_000, monitor: "shop", check: "GET /cart", source: "ipa", count: 9, errors: 3,
            sumUs: 9_007_199_254_740_993, minUs: 1, maxUs: 123_457, p50Us: 12_345, p95Us: 67_891, p99Us: 99_999)])
        XCTAssertEqual(t.batch.events, [
            CollectorStore.RawEvent(ts: 1_700_000_000_123, monitor: "", check: "", method: "GET", host: "shop.example",
                                    path: "/cart/42", status: 404, durationUs: 12_501),
            CollectorStore.RawEvent(ts: 1_700_000_000_200, monitor: "", check: "", method: "GET", host: "shop.example",
                                    path: "/", status: 0, durationUs: 7),
        ])
        XCTAssertEqual(t.batch.monitorRuns.map(\.durationUs), [4_321])
        XCTAssertEqual(t.batch.monitorRuns.first?.detail, #"{"run_id":1,"status":"ok","phases_ms":{"connect":1.1}}"#)

        // The API's edge: milliseconds, and `meta` as documented.
        let m = t.batch.measurements[0]
        XCTAssertEqual(APIHandler.millis(m.p50Us).serialized, "12.345")
        XCTAssertEqual(APIHandler.millis(1_500_000).serialized, "1500")
        XCTAssertEqual(APIHandler.meta(m).serialized, #"{"window_ms":10000,"errors":3}"#)
        var quiet = m
        quiet.errors = 0
        XCTAssertEqual(APIHandler.meta(quiet).serialized, #"{"window_ms":10000}"#)
    }

    func testOutcomesAndErrorClassReachTheRowsAndTheAPI() throws {
        var strings = StringTable(maxID: 100, maxBytes: 1_000)
        for (id, text) in ["shop", "cart", "ipa", "GET", "h"].enumerated() { try strings.define(StringRef(id + 1), text) }
        let batch = DataBatch(sequence: 1, items: [
            .aggregate(Aggregate(windowStartMs: 10_000, windowLengthMs: 10_000, monitor: 1, check: 2, source: 3, count: 12,
                                 errors: 5, sumUs: 12, minUs: 1, maxUs: 1, p50Us: 1, p95Us: 1, p99Us: 1,
                                 outcome2xx: 5, outcome3xx: 0, outcome4xx: 1, outcome5xx: 2, outcomeError: 3)),
            .event(RawEvent(timestampUs: 10_000_000, method: 4, host: 5, path: "/", status: 0, durationUs: 3, errorClass: "timeout")),
        ])
        guard case .success(let t) = BatchTranslator.translate(batch, projectId: 1, agentID: "a1", dedupBoot: "boot",
                                                               strings: strings, receivedAt: 5) else {
            return XCTFail("refused")
        }
        XCTAssertEqual(t.batch.measurements.map(\.outcomes), [Outcomes(s2xx: 5, s3xx: 0, s4xx: 1, s5xx: 2, error: 3)])
        XCTAssertEqual(t.batch.events.map(\.errorClass), ["timeout"])
        XCTAssertEqual(APIHandler.outcomes(t.batch.measurements[0].outcomes).serialized,
                       #"{"2xx":5,"3xx":0,"4xx":1,"5xx":2,"error":3}"#)
    }
}
