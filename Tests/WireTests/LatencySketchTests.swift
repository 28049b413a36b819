// LatencySketch: bucket accuracy, merging over many windows and agents
// against exact percentiles of the same generated samples, the canonical
// wire form, and the aggregate's histogram item (kind 4) in a DataBatch.
import XCTest
@testable import Wire

final class LatencySketchTests: XCTestCase {
    /// The exact value of rank ⌈q·n⌉ (at least 1), as the sketch defines it.
    func exact(_ sorted: [UInt64], _ q: Double) -> Double {
        let rank = max(1, Int((Double(sorted.count) * q).rounded(.up)))
        return Double(sorted[rank - 1])
    }

    func assertWithinOnePercent(_ got: Double, _ want: Double, _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        if want == 0 { return XCTAssertEqual(got, 0, what, file: file, line: line) }
        XCTAssertLessThanOrEqual(abs(got - want) / want, 0.01 + 1e-12, "\(what): \(got) vs exact \(want)", file: file, line: line)
    }

    func testEveryValueIsWithinOnePercentOfItsBucketsValue() {
        var v: UInt64 = 1
        while v < 1 << 40 {
            for x in [v, v + 1, v * 3 / 2] where x > 0 {
                var h = LatencySketch()
                h.record(x)
                assertWithinOnePercent(h.quantile(0.5), Double(x), "value \(x)")
                XCTAssertLessThanOrEqual(LatencySketch.bucket(of: x), LatencySketch.maxIndex)
            }
            v = v * 2 + 1
        }
        // Small values come back exactly: a bucket below ~50 µs holds one integer.
        for x: UInt64 in 1...60 {
            var h = LatencySketch()
            h.record(x)
            if x <= 49 { XCTAssertEqual(h.quantile(1), Double(x)) }
        }
        XCTAssertEqual(LatencySketch.maxIndex, 2218)
        var zero = LatencySketch()
        zero.record(0, times: 3)
        XCTAssertEqual(zero.quantile(0.99), 0)
        XCTAssertEqual(LatencySketch().quantile(0.5), 0)
    }

    func testMergedPercentilesOfManyWindowsAndAgentsMatchExactOnes() {
        var rng = SeededRandom(seed: 0x5EED)
        // Shapes: log-normal-ish API latencies, a bimodal cache hit/miss, a
        // uniform spread, and a heavy tail with zeros.
        let shapes: [(inout SeededRandom) -> UInt64] = [
            { r in UInt64(exp(Double.random(in: 7...11, using: &r))) },
            { r in Bool.random(using: &r) ? UInt64.random(in: 200...400, using: &r) : UInt64.random(in: 40_000...90_000, using: &r) },
            { r in UInt64.random(in: 1...2_000_000, using: &r) },
            { r in Int.random(in: 0...20, using: &r) == 0 ? 0 : UInt64(1 / Double.random(in: 0.0001...1, using: &r) * 1000) },
        ]
        for (s, shape) in shapes.enumerated() {
            var all: [UInt64] = []
            var merged = LatencySketch()
            var perAgent: [LatencySketch] = []
            for _ in 0..<7 {                          // agents
                var agent = LatencySketch()
                for _ in 0..<24 {                     // windows
                    var window = LatencySketch()
                    for _ in 0..<Int.random(in: 0...400, using: &rng) {
                        let v = shape(&rng)
                        window.record(v)
                        all.append(v)
                    }
                    // Through the wire form, as the store keeps it.
                    let back = try! LatencySketch(decoding: window.encoded)
                    XCTAssertEqual(back, window)
                    agent.merge(back)
                }
                perAgent.append(agent)
                merged.merge(agent)
            }
            all.sort()
            XCTAssertEqual(merged.count, UInt64(all.count))
            for q in [0.0, 0.01, 0.25, 0.5, 0.9, 0.95, 0.99, 0.999, 1.0] {
                assertWithinOnePercent(merged.quantile(q, min: all.first, max: all.last), exact(all, q), "shape \(s) q \(q)")
            }
            // Merging is order-free.
            var reversed = LatencySketch()
            for a in perAgent.reversed() { reversed.merge(a) }
            XCTAssertEqual(reversed, merged)
        }
    }

    func testCanonicalEncoding() throws {
        var h = LatencySketch()
        h.record(0, times: 2)
        h.record(1)          // bucket 0
        h.record(1000, times: 5)
        // zero count 2, 2 buckets: index 0 count 1, delta 346 count 5.
        XCTAssertEqual(LatencySketch.bucket(of: 1000), 346)
        XCTAssertEqual(h.encoded, [2, 2, 0, 1] + [0xDA, 0x02, 5])
        XCTAssertEqual(try LatencySketch(decoding: h.encoded), h)
        XCTAssertEqual(LatencySketch().encoded, [0, 0])
    }

    func testMalformedEncodingsAreRefused() {
        func refused(_ b: [UInt8], _ e: WireError) {
            XCTAssertThrowsError(try LatencySketch(decoding: b)) { XCTAssertEqual($0 as? WireError, e, "\(b)") }
        }
        refused([0, 2, 5, 1, 0, 1], .malformed(field: "histogram.index"))      // zero delta
        refused([0, 1, 5, 0], .malformed(field: "histogram.count"))            // zero count
        refused([0, 1, 0xAB, 0x11, 1], .malformed(field: "histogram.index"))   // index 2219
        refused([0, 1, 5], .truncated)
        refused([0, 0, 9], .malformed(field: "histogram"))                     // trailing byte
        refused([0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01, 1, 0, 1], .malformed(field: "histogram.count"))
        refused([0, 0x7F] + [UInt8](repeating: 1, count: 2), .truncated)
    }

    func testAggregateCarriesItsHistogramAsAnItemOfItsOwn() throws {
        var h = LatencySketch()
        for v: UInt64 in [900, 1_100, 250_000] { h.record(v) }
        let a = Aggregate(windowStartMs: 1, windowLengthMs: 10_000, monitor: 1, check: 2, source: 3, count: 3, sumUs: 252_000,
                          minUs: 900, maxUs: 250_000, p50Us: 1_100, p95Us: 250_000, p99Us: 250_000, histogram: h)
        let batch = DataBatch(sequence: 9, items: [.aggregate(a), .event(RawEvent(timestampUs: 1, method: 1, host: 1, path: "/",
                                                                                   durationUs: 5))])
        XCTAssertEqual(batch.wireItemCount, 3)
        let bytes = Record.dataBatch(batch).encoded
        XCTAssertEqual(try Record.decodeAll(bytes), [.dataBatch(batch)])

        // A receiver that does not know kind 4 skips it and keeps the aggregate.
        var w = WireWriter()
        w.varint(UInt64(9)); w.varint(UInt64(2))
        BatchItem.aggregate(a).encode(into: &w)
        w.u8(BatchItem.histogramKind)
        let start = w.beginLengthPrefixed()
        h.encode(into: &w)
        w.endLengthPrefixed(start)
        let manual = w.bytes
        var withoutHistogram = a
        withoutHistogram.histogram = nil
        // Kind 4 read as unknown, as an older BatchItem.decode does.
        manual.withUnsafeBytes { raw in
            var r = WireReader(raw)
            _ = try! r.varint(); _ = try! r.varint()
            XCTAssertEqual(try! BatchItem.decode(from: &r, limits: .default), .aggregate(withoutHistogram))
            XCTAssertEqual(try! BatchItem.decode(from: &r, limits: .default), .unknown(kind: BatchItem.histogramKind))
        }

        // A histogram with no aggregate before it, or whose total is not the count, is malformed.
        for items in [[BatchItem.event(RawEvent(timestampUs: 1, method: 1, host: 1, path: "/", durationUs: 5))],
                      [BatchItem.aggregate(Aggregate(windowStartMs: 1, windowLengthMs: 1, monitor: 1, check: 1, source: 1, count: 4,
                                                     sumUs: 0, minUs: 0, maxUs: 0, p50Us: 0, p95Us: 0, p99Us: 0))]] {
            var w = WireWriter()
            w.varint(UInt64(1)); w.varint(UInt64(2))
            for i in items { i.encode(into: &w) }
            w.u8(BatchItem.histogramKind)
            let start = w.beginLengthPrefixed()
            h.encode(into: &w)
            w.endLengthPrefixed(start)
            XCTAssertThrowsError(try DataBatch.decode(w.bytes)) {
                XCTAssertEqual($0 as? WireError, .malformed(field: "aggregate.histogram"))
            }
        }
    }

    func testBatchesWithHistogramsRoundTripUnderSeededProperty() throws {
        var gen = RecordGenerator(seed: 0x4157)
        for _ in 0..<300 {
            let r = gen.batchWithHistograms()
            XCTAssertEqual(try Record.decodeAll(r.encoded), [r])
        }
    }
}

extension DataBatch {
    static func decode(_ bytes: [UInt8]) throws -> DataBatch {
        try bytes.withUnsafeBytes { raw in
            var r = WireReader(raw)
            return try DataBatch.decode(from: &r, limits: .default)
        }
    }
}
