// The agent's aggregates carry their window's histogram: the aggregator's
// percentiles are read from it, the batch encoder passes it on, and a
// synthetic run's aggregate carries a one-value histogram.
import XCTest
@testable import Agent
import IPAPipeline
import MonitorModel
import MonitorRunners
import Wire

final class AggregateHistogramTests: XCTestCase {
    func testFlushCarriesTheHistogramItsPercentilesCameFrom() throws {
        let agg = Aggregator(intervalMs: 10_000)
        agg.install(PatternSet(rules: [FilterRule(method: "*", host: "*", path: "/a", monitor: "m", check: "a")], version: 1))
        var samples: [UInt64] = []
        for v in 1...1000 {
            let ms = Double(v * v % 997) + 0.5
            agg.record(rule: 0, durationMs: ms)
            samples.append(UInt64(ms * 1000))
        }
        let out = agg.flush(windowStartMs: 0)
        let a = try XCTUnwrap(out.first)
        let h = try LatencySketch(decoding: XCTUnwrap(a.histogram))
        XCTAssertEqual(h.count, 1000)
        XCTAssertEqual(a.p99Us, UInt64(h.quantile(0.99, min: a.minUs, max: a.maxUs).rounded()))
        samples.sort()
        for (q, got) in [(0.5, a.p50Us), (0.95, a.p95Us), (0.99, a.p99Us)] {
            let want = Double(samples[Int((Double(samples.count) * q).rounded(.up)) - 1])
            XCTAssertLessThanOrEqual(abs(Double(got) - want) / want, 0.0101, "q \(q)")
        }
        // The next window starts empty.
        agg.record(rule: 0, durationMs: 2)
        XCTAssertEqual(try LatencySketch(decoding: XCTUnwrap(agg.flush(windowStartMs: 10_000).first?.histogram)).count, 1)

        let items = try BatchEncoder.wireItems([.aggregate(a)]) { _ in 1 }
        guard case .aggregate(let w)? = items.first else { return XCTFail() }
        XCTAssertEqual(w.histogram, h)
        XCTAssertGreaterThanOrEqual(OutboundItem.aggregate(a).encodedSizeBound,
                                    Record.dataBatch(DataBatch(sequence: 1, items: items)).encoded.count - 8)
    }

    func testTheSpoolKeepsAnAggregatesHistogram() throws {
        var h = LatencySketch()
        for v: UInt64 in [900, 1_100, 250_000] { h.record(v) }
        let a = LatencyAggregate(windowStartMs: 1_700_000_000_000, windowMs: 10_000, monitor: "m", check: "c", source: "ipa",
                                 count: 3, sumUs: 252_000, minUs: 900, maxUs: 250_000, p50Us: 1_100, p95Us: 250_000,
                                 p99Us: 250_000, histogram: h.encoded)
        var without = a
        without.histogram = nil
        var w = WireWriter()
        SpoolBatch(sequence: 4, writtenMs: 5, items: [.aggregate(a), .aggregate(without)]).encode(into: &w)
        let back = try w.bytes.withUnsafeBytes { raw in try SpoolBatch.decode(raw) }
        guard case .aggregate(let a1) = back.items[0], case .aggregate(let a2) = back.items[1] else { return XCTFail("kinds") }
        XCTAssertEqual(a1, a)
        XCTAssertEqual(a2, without)
        XCTAssertEqual(BatchEncoder.histogram(of: a1), h)
        // Bytes that do not add up to the count are not sent.
        var wrong = a
        wrong.count = 4
        XCTAssertNil(BatchEncoder.histogram(of: wrong))
    }

    func testASyntheticRunCarriesAOneValueHistogram() throws {
        let run = MonitorRunResult(monitorID: 3, monitorKey: "web", name: "Web", kind: .http, runID: 1,
                                   startedMs: 1_700_000_000_000, intervalMs: 1000, status: .ok, durationUs: 48_123)
        let items = try BatchEncoder.wireItems([.monitorRun(run)]) { _ in 1 }
        guard case .aggregate(let w)? = items.first else { return XCTFail() }
        let h = try XCTUnwrap(w.histogram)
        XCTAssertEqual(h.count, 1)
        XCTAssertEqual(h.quantile(0.5, min: 48_123, max: 48_123), 48_123)
        XCTAssertLessThanOrEqual(abs(h.quantile(0.5) - 48_123) / 48_123, 0.01)
    }
}
