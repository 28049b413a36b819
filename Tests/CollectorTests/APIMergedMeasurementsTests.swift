// GET /api/v1/measurements with `step`: windows of several agents merged by
// their histograms, against a real collector fed by session clients with
// generated samples — counts exact, percentiles within 1 % of the exact
// ones over the same samples, per bucket and per agent; windows without a
// histogram answered from their own percentiles and marked; paging by
// next_until; bad parameters named.
import Foundation
import XCTest
import Wire

final class APIMergedMeasurementsTests: XCTestCase {
    var c: CollectorProcess!

    override func setUpWithError() throws {
        c = try CollectorProcess()
    }

    override func tearDown() {
        c.stop()
        c.removeDirectory()
    }

    /// SplitMix64: the samples are the same at every run.
    struct Samples {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        mutating func unit() -> Double { Double(next() >> 11) / Double(1 << 53) }
        /// Latencies from ~300 µs to ~3 s, skewed like an API's.
        mutating func latency() -> UInt64 { UInt64(exp(5.7 + 9.2 * unit() * unit())) }
    }

    func exact(_ values: [UInt64], _ q: Double) -> Double {
        let sorted = values.sorted()
        return Double(sorted[max(1, Int((Double(sorted.count) * q).rounded(.up))) - 1])
    }

    func assertClose(_ ms: Any?, _ exactUs: Double, _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        guard let ms = ms as? Double ?? (ms as? Int).map(Double.init) else { return XCTFail("\(what): no value", file: file, line: line) }
        XCTAssertLessThanOrEqual(abs(ms * 1000 - exactUs) / exactUs, 0.01 + 1e-9, "\(what): \(ms * 1000) µs vs exact \(exactUs)",
                                 file: file, line: line)
    }

    func rows(_ r: HTTPResult) -> [[String: Any]] { r.object["measurements"] as? [[String: Any]] ?? [] }

    func testPercentilesOfManyWindowsAndAgentsAreMergedFromTheirHistograms() throws {
        let key = c.createKey(project: "acme")
        let base: UInt64 = 1_700_000_000_000        // a multiple of the step below
        let step: UInt64 = 100_000                  // ten 10 s windows per bucket
        var gen = Samples(state: 0xC0FFEE)
        // samples[agent][bucket]
        var samples: [String: [UInt64: [UInt64]]] = [:]
        var stored = 0
        for agent in ["ag-1", "ag-2", "ag-3"] {
            let client = try WireTestClient(port: c.sessionPort, key: key, hello: WireTestClient.hello(agent))
            XCTAssertNotNil(client.handshake())
            let m = try client.session.stringRef("shop"), ch = try client.session.stringRef("GET /cart")
            let src = try client.session.stringRef("ipa")
            for w in 0..<30 {
                let start = base + UInt64(w) * 10_000
                var h = LatencySketch()
                var values: [UInt64] = []
                for _ in 0..<(1 + Int(gen.next() % 300)) { values.append(gen.latency()) }
                for v in values { h.record(v) }
                samples[agent, default: [:]][(start / step) * step, default: []] += values
                let a = Aggregate(windowStartMs: start, windowLengthMs: 10_000, monitor: m, check: ch, source: src,
                                  count: UInt64(values.count), errors: 1, sumUs: values.reduce(0, +), minUs: values.min()!,
                                  maxUs: values.max()!, p50Us: 1, p95Us: 2, p99Us: 3, histogram: h)
                client.send([.dataBatch(DataBatch(sequence: UInt64(w + 1), items: [.aggregate(a)]))])
                stored += 1
            }
            XCTAssertNotNil(client.waitForRecord { if case .ack(let a) = $0 { return a.sequence == 30 }; return false })
        }
        XCTAssertTrue(c.eventually { self.rows(self.c.api("GET", "/measurements?project=acme&limit=1000")).count == stored })

        // Across agents: one group per bucket, newest first.
        var r = c.api("GET", "/measurements?project=acme&check=GET%20%2Fcart&step=\(step)&quantiles=0.5,0.9,0.999")
        XCTAssertEqual(r.status, 200, r.body)
        let buckets = samples.values.flatMap(\.keys).reduce(into: Set<UInt64>()) { $0.insert($1) }.sorted(by: >)
        XCTAssertEqual(rows(r).map { $0["ts"] as? Int }, buckets.map { Int($0) })
        XCTAssertTrue(r.object["next_until"] is NSNull, r.body)
        for row in rows(r) {
            let b = UInt64(row["ts"] as! Int)
            let all = samples.values.flatMap { $0[b] ?? [] }
            XCTAssertEqual(row["count"] as? Int, all.count)
            XCTAssertEqual(row["windows"] as? Int, 30)
            XCTAssertEqual(row["errors"] as? Int, 30)
            XCTAssertEqual(row["merged"] as? Bool, true)
            XCTAssertEqual(row["step_ms"] as? Int, Int(step))
            XCTAssertNil(row["agent"], "across agents")
            XCTAssertEqual(row["min_ms"] as? Double ?? -1, Double(all.min()!) / 1000, accuracy: 1e-9)
            XCTAssertEqual(row["max_ms"] as? Double ?? -1, Double(all.max()!) / 1000, accuracy: 1e-9)
            XCTAssertEqual(row["sum_ms"] as? Double ?? -1, Double(all.reduce(0, +)) / 1000, accuracy: 1e-6)
            for (name, q) in [("p50_ms", 0.5), ("p95_ms", 0.95), ("p99_ms", 0.99)] {
                assertClose(row[name], exact(all, q), "bucket \(b) \(name)")
            }
            let qs = row["quantiles_ms"] as? [String: Any] ?? [:]
            XCTAssertEqual(Set(qs.keys), ["0.5", "0.9", "0.999"])
            for (name, q) in [("0.5", 0.5), ("0.9", 0.9), ("0.999", 0.999)] { assertClose(qs[name], exact(all, q), "bucket \(b) q \(name)") }
        }

        // The whole range in one bucket: 90 windows, three agents.
        r = c.api("GET", "/measurements?project=acme&monitor=shop&step=\(step * 100)")
        let everything = samples.values.flatMap { $0.values.flatMap { $0 } }
        XCTAssertEqual(rows(r).count, 1, r.body)
        XCTAssertEqual(rows(r).first?["windows"] as? Int, 90)
        XCTAssertEqual(rows(r).first?["count"] as? Int, everything.count)
        for (name, q) in [("p50_ms", 0.5), ("p95_ms", 0.95), ("p99_ms", 0.99)] {
            assertClose(rows(r).first?[name], exact(everything, q), "all \(name)")
        }

        // By agent: one group per bucket and agent.
        r = c.api("GET", "/measurements?project=acme&step=\(step)&group_by=agent")
        XCTAssertEqual(rows(r).count, 9, r.body)
        for row in rows(r) {
            let agent = row["agent"] as! String, b = UInt64(row["ts"] as! Int)
            let values = samples[agent]![b]!
            XCTAssertEqual(row["count"] as? Int, values.count)
            XCTAssertEqual(row["windows"] as? Int, 10)
            for (name, q) in [("p50_ms", 0.5), ("p95_ms", 0.95), ("p99_ms", 0.99)] {
                assertClose(row[name], exact(values, q), "\(agent) bucket \(b) \(name)")
            }
        }

        // Paging by whole buckets: limit 1 answers the newest, next_until goes on.
        r = c.api("GET", "/measurements?project=acme&step=\(step)&limit=1")
        XCTAssertEqual(rows(r).map { $0["ts"] as? Int }, [Int(buckets[0])])
        XCTAssertEqual(r.object["next_until"] as? Int, Int(buckets[0]), r.body)
        r = c.api("GET", "/measurements?project=acme&step=\(step)&limit=1&until=\(buckets[0])")
        XCTAssertEqual(rows(r).map { $0["ts"] as? Int }, [Int(buckets[1])])
        r = c.api("GET", "/measurements?project=acme&step=\(step)&group_by=agent&limit=2")
        XCTAssertEqual(rows(r).count, 3, "whole buckets: \(r.body)")
    }

    func testWindowsWithoutAHistogramAreAnsweredFromTheirPercentilesAndMarked() throws {
        let key = c.createKey(project: "acme")
        let client = try WireTestClient(port: c.sessionPort, key: key, hello: WireTestClient.hello("old-agent"))
        XCTAssertNotNil(client.handshake())
        let m = try client.session.stringRef("shop"), ch = try client.session.stringRef("legacy")
        let src = try client.session.stringRef("ipa")
        var h = LatencySketch()
        h.record(50_000)
        let windows = [
            Aggregate(windowStartMs: 1_000_000, windowLengthMs: 10_000, monitor: m, check: ch, source: src, count: 10,
                      sumUs: 1_000_000, minUs: 50_000, maxUs: 150_000, p50Us: 100_000, p95Us: 140_000, p99Us: 150_000,
                      outcome2xx: 9, outcomeError: 1),
            Aggregate(windowStartMs: 1_010_000, windowLengthMs: 10_000, monitor: m, check: ch, source: src, count: 30,
                      sumUs: 6_000_000, minUs: 20_000, maxUs: 400_000, p50Us: 200_000, p95Us: 300_000, p99Us: 390_000,
                      outcome2xx: 25, outcome5xx: 5),
            Aggregate(windowStartMs: 2_000_000, windowLengthMs: 10_000, monitor: m, check: ch, source: src, count: 1,
                      sumUs: 50_000, minUs: 50_000, maxUs: 50_000, p50Us: 50_000, p95Us: 50_000, p99Us: 50_000, histogram: h),
        ]
        client.send([.dataBatch(DataBatch(sequence: 1, items: windows.map { .aggregate($0) }))])
        XCTAssertTrue(c.eventually { self.rows(self.c.api("GET", "/measurements?project=acme")).count == 3 })
        let r = c.api("GET", "/measurements?project=acme&step=1000000&quantiles=0.9")
        XCTAssertEqual(r.status, 200, r.body)
        let list = rows(r)
        XCTAssertEqual(list.map { $0["ts"] as? Int }, [2_000_000, 1_000_000])
        XCTAssertEqual(list[0]["merged"] as? Bool, true)
        XCTAssertEqual(list[0]["p99_ms"] as? Double, 50)
        XCTAssertEqual((list[0]["quantiles_ms"] as? [String: Any])?["0.9"] as? Double, 50)
        let old = list[1]
        XCTAssertEqual(old["merged"] as? Bool, false)
        XCTAssertEqual(old["windows_without_histogram"] as? Int, 2)
        XCTAssertEqual(old["count"] as? Int, 40)
        XCTAssertEqual(old["p50_ms"] as? Double ?? -1, (10 * 100 + 30 * 200) / 40, accuracy: 1e-9, "count-weighted")
        XCTAssertEqual(old["p99_ms"] as? Double ?? -1, (10 * 150 + 30 * 390) / 40, accuracy: 1e-9)
        XCTAssertEqual(old["min_ms"] as? Double, 20)
        let outcomes = old["outcomes"] as? [String: Int]
        XCTAssertEqual(outcomes, ["2xx": 34, "3xx": 0, "4xx": 0, "5xx": 5, "error": 1], "added up: \(r.body)")
        XCTAssertEqual(old["max_ms"] as? Double, 400)
        XCTAssertTrue(old["quantiles_ms"] is NSNull, r.body)
        // The list form is unchanged.
        XCTAssertNil(rows(c.api("GET", "/measurements?project=acme")).first?["merged"])
    }

    func testBadMergeParametersAreNamed() {
        _ = c.createKey(project: "acme")
        for (query, name) in [("step=0", "step"), ("step=x", "step"), ("step=1000&group_by=host", "group_by"),
                              ("step=1000&quantiles=0.5,2", "quantiles"), ("step=1000&quantiles=a", "quantiles"),
                              ("quantiles=0.5", "quantiles"), ("group_by=agent", "group_by"),
                              ("step=1000&cursor=1.1", "cursor"),
                              ("step=1000&quantiles=" + (1...17).map { "0.\($0)" }.joined(separator: ","), "quantiles")] {
            let r = c.api("GET", "/measurements?" + query)
            XCTAssertEqual(r.status, 400, "\(query): \(r.body)")
            XCTAssertNotNil((r.object["detail"] as? [String: Any])?[name], "\(query): \(r.body)")
        }
        XCTAssertEqual(c.api("GET", "/measurements?project=nope&step=1000").status, 404)
    }
}
