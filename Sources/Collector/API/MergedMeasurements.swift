// Merged measurements: `GET /api/v1/measurements?step=…` answers one object
// per time bucket of `step` ms and series (project, monitor, check, source —
// and agent with `group_by=agent`), with counts added up and percentiles
// read from the windows' histograms merged (Wire's LatencySketch: within 1 %
// of the exact value over the raw samples). Averaging percentiles would be
// wrong. Outcome counts are added up too. A group with any window that
// came without a histogram is answered from the windows' own percentiles,
// count-weighted, and marked `"merged": false` (docs/API.md).
//
// Bounded: the store is read in pages of limits.maxQueryRows, newest first;
// the answer holds whole buckets and stops after the bucket in which the
// groups reached `limit` (`next_until` says where to go on); at most
// limits.maxQueryRows groups are held, and at most limits.maxMergedRows rows
// read, else 400 "query too broad".
//
// Thread: loop thread (store completions arrive there).
import CollectorStore
import HTTPServer
import JSON
import Wire

/// What the merged form of the endpoint was asked.
struct MergeRequest {
    var step: Int64
    var byAgent: Bool
    /// (as written in the query, value)
    var quantiles: [(String, Double)]

    static let maxQuantiles = 16

    /// nil when `step` is absent (the list form); 400 naming a bad value,
    /// or `group_by`/`quantiles` without `step`.
    static func parse(_ h: APIHandler, _ req: HTTPRequest) throws(APIError) -> MergeRequest? {
        guard let step = try h.integer(req, "step") else {
            for p in ["group_by", "quantiles"] where h.text(req, p) != nil {
                throw .badRequest("invalid query parameter", .object([(p, .string("needs step"))]))
            }
            return nil
        }
        guard step >= 1 else {
            throw .badRequest("invalid query parameter", .object([("step", .string("expected at least 1 (ms), got \(step)"))]))
        }
        if h.text(req, "cursor") != nil {
            throw .badRequest("invalid query parameter",
                              .object([("cursor", .string("does not apply with step: go on with until=next_until"))]))
        }
        var byAgent = false
        switch h.text(req, "group_by") {
        case nil, "none"?: break
        case "agent"?: byAgent = true
        case let other?:
            throw .badRequest("invalid query parameter", .object([("group_by", .string("expected agent or none, got \(other)"))]))
        }
        var quantiles: [(String, Double)] = []
        if let list = h.text(req, "quantiles") {
            for part in list.split(separator: ",", omittingEmptySubsequences: false) {
                let t = String(part)
                guard let q = Double(t), q >= 0, q <= 1 else {
                    throw .badRequest("invalid query parameter", .object([("quantiles", .string("expected numbers in 0...1, got \(t)"))]))
                }
                if !quantiles.contains(where: { $0.0 == t }) { quantiles.append((t, q)) }
            }
            guard quantiles.count <= maxQuantiles else {
                throw .badRequest("invalid query parameter",
                                  .object([("quantiles", .string("at most \(maxQuantiles), got \(quantiles.count)"))]))
            }
        }
        return MergeRequest(step: step, byAgent: byAgent, quantiles: quantiles)
    }

    /// Start of the bucket holding `ts` (aligned to the epoch).
    func bucket(_ ts: Int64) -> Int64 {
        let r = ts % step
        return ts - (r < 0 ? r + step : r)
    }
}

/// One bucket × series being merged.
struct MergeGroup {
    struct Key: Hashable {
        var bucket: Int64
        var project: String
        var agent: String
        var monitor: String
        var check: String
        var source: String
    }

    var count: Int64 = 0
    var errors: Int64 = 0
    var sumUs: Int64 = 0
    var minUs: Int64 = .max
    var maxUs: Int64 = 0
    var windows: Int64 = 0
    var outcomes = Outcomes()
    /// Windows without a usable histogram.
    var unmerged: Int64 = 0
    var sketch = LatencySketch()
    /// Σ count × stored percentile, for the unmerged answer.
    var weighted: (p50: Double, p95: Double, p99: Double) = (0, 0, 0)

    mutating func add(_ m: MeasurementRow) {
        count &+= m.count
        errors &+= m.errors
        sumUs &+= m.sumUs
        minUs = min(minUs, m.minUs)
        maxUs = max(maxUs, m.maxUs)
        windows += 1
        outcomes.s2xx &+= m.outcomes.s2xx; outcomes.s3xx &+= m.outcomes.s3xx; outcomes.s4xx &+= m.outcomes.s4xx
        outcomes.s5xx &+= m.outcomes.s5xx; outcomes.error &+= m.outcomes.error
        let c = Double(max(m.count, 0))
        weighted.p50 += c * Double(m.p50Us)
        weighted.p95 += c * Double(m.p95Us)
        weighted.p99 += c * Double(m.p99Us)
        // A histogram that does not decode or does not add up to the count
        // is treated as missing.
        if let bytes = m.histogram, let h = try? LatencySketch(decoding: bytes), m.count >= 0, h.count == UInt64(m.count) {
            sketch.merge(h)
        } else {
            unmerged += 1
        }
    }

    var merged: Bool { unmerged == 0 }

    /// A percentile in µs: from the merged histogram, or (unmerged) the
    /// count-weighted mean of the windows' own.
    func percentile(_ q: Double, stored: Double) -> Double {
        if merged { return sketch.quantile(q, min: UInt64(max(minUs, 0)), max: UInt64(max(maxUs, 0))) }
        return count > 0 ? stored / Double(count) : 0
    }
}

extension APIHandler {
    /// The merged answer (see the file header).
    func mergedMeasurements(_ base: MeasurementQuery, _ m: MergeRequest, limit n: Int, _ r: CountingResponder) {
        var groups: [MergeGroup.Key: MergeGroup] = [:]
        var oldestBucket: Int64?
        var rowsRead = 0
        let page = store.limits.maxQueryRows
        let maxRows = store.limits.maxMergedRows

        func finish(nextUntil: Int64?) {
            let keys = groups.keys.sorted { a, b in
                if a.bucket != b.bucket { return a.bucket > b.bucket }
                return (a.project, a.agent, a.monitor, a.check, a.source) < (b.project, b.agent, b.monitor, b.check, b.source)
            }
            r.json(.object([("measurements", .array(keys.map { k in render(k, groups[k]!, m) })),
                            ("next_until", nextUntil.map { .int($0) } ?? .null)]))
        }

        func read(after: ListPosition?) {
            var q = base
            q.limit = page
            q.after = after
            store.measurements(q) { [self] result in
                let rows: [MeasurementRecord]
                switch result {
                case .failure(let e): return r.fail(.store(e))
                case .success(let all): rows = all
                }
                for rec in rows {
                    let b = m.bucket(rec.measurement.ts)
                    if let oldest = oldestBucket, b < oldest, groups.count >= n {
                        let (next, overflow) = b.addingReportingOverflow(m.step)
                        return finish(nextUntil: overflow ? .max : next)
                    }
                    oldestBucket = b
                    let row = rec.measurement
                    let key = MergeGroup.Key(bucket: b, project: rec.project, agent: m.byAgent ? rec.agent : "",
                                             monitor: row.monitor, check: row.check, source: row.source)
                    if groups[key] == nil && groups.count >= store.limits.maxQueryRows {
                        return r.fail(.badRequest("query too broad", .string(
                            "more than \(store.limits.maxQueryRows) groups in one step: narrow it (step, agent, monitor, check)")))
                    }
                    groups[key, default: MergeGroup()].add(row)
                }
                rowsRead += rows.count
                guard rows.count == page, let last = rows.last else { return finish(nextUntil: nil) }
                guard rowsRead < maxRows else {
                    return r.fail(.badRequest("query too broad", .string(
                        "more than \(maxRows) measurements to merge: narrow it (since, until, agent, monitor, check)")))
                }
                read(after: ListPosition(ts: last.measurement.ts, id: last.id))
            }
        }
        read(after: nil)
    }

    private func render(_ k: MergeGroup.Key, _ g: MergeGroup, _ m: MergeRequest) -> JSON {
        var fields: [(String, JSON)] = [("ts", .int(k.bucket)), ("step_ms", .int(m.step)), ("project", .string(k.project))]
        if m.byAgent { fields.append(("agent", .string(k.agent))) }
        fields += [("monitor", .string(k.monitor)), ("check", .string(k.check)), ("source", .string(k.source)),
                   ("count", .int(g.count)), ("errors", .int(g.errors)), ("windows", .int(g.windows)),
                   ("sum_ms", APIHandler.millis(g.sumUs)), ("min_ms", APIHandler.millis(g.minUs)),
                   ("max_ms", APIHandler.millis(g.maxUs)),
                   ("p50_ms", APIHandler.fractionalMillis(g.percentile(0.50, stored: g.weighted.p50))),
                   ("p95_ms", APIHandler.fractionalMillis(g.percentile(0.95, stored: g.weighted.p95))),
                   ("p99_ms", APIHandler.fractionalMillis(g.percentile(0.99, stored: g.weighted.p99))),
                   ("outcomes", APIHandler.outcomes(g.outcomes))]
        if !m.quantiles.isEmpty {
            fields.append(("quantiles_ms", g.merged
                ? .object(m.quantiles.map { ($0.0, APIHandler.fractionalMillis(g.sketch.quantile($0.1, min: UInt64(max(g.minUs, 0)),
                                                                                         max: UInt64(max(g.maxUs, 0))))) })
                : .null))
        }
        fields.append(("merged", .bool(g.merged)))
        if !g.merged { fields.append(("windows_without_histogram", .int(g.unmerged))) }
        return .object(fields)
    }

    /// Microseconds (fractional: a merged percentile) as milliseconds.
    static func fractionalMillis(_ us: Double) -> JSON { .number((us * 1000).rounded() / 1_000_000) }
}
