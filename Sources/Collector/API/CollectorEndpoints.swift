// The collector's own health history: `GET /api/v1/collector/history`,
// the samples HealthSampler stored, in buckets of `step` over `from`..`to`
// (docs/API.md). The store forms the buckets, so an answer holds at most
// (to − from) / step rows whatever the sampling interval. Latencies become
// milliseconds here, at the edge; counts stay per bucket, with the rates
// (per second) beside them for charts.
//
// Thread: loop thread.
import CollectorStore
import HTTPServer
import JSON
import Reactor

extension APIHandler {
    /// The range when `from` is not given: the last six hours.
    static let defaultHistoryRangeMs: Int64 = 6 * 3_600_000
    /// Buckets when `step` is not given: about this many.
    static let defaultHistoryBuckets: Int64 = 720
    /// The smallest step taken (ms).
    static let minHistoryStepMs: Int64 = 100

    func collectorHistory(_ req: HTTPRequest, _ r: CountingResponder) {
        let q: CollectorHistoryQuery
        do { q = try historyQuery(req, now: Clock.wallMillis()) } catch { return r.fail(error) }
        store.collectorHistory(q) { result in
            r.result(result) { samples in
                .object([("from", .int(q.since)), ("to", .int(q.until)), ("step", .int(q.stepMs)),
                         ("samples", .array(samples.map(APIHandler.sampleJSON)))])
            }
        }
    }

    /// `from`, `to` (ms; defaults: the last six hours up to now) and `step`
    /// (ms; default: about 720 buckets, whole seconds); 400 naming the
    /// parameter for an empty range, a step below 100 ms, or more buckets
    /// than the store answers rows.
    func historyQuery(_ req: HTTPRequest, now: Int64) throws(APIError) -> CollectorHistoryQuery {
        let to = try integer(req, "to") ?? now
        let from = try integer(req, "from") ?? to - APIHandler.defaultHistoryRangeMs
        guard to > from else {
            throw .badRequest("invalid query parameter", .object([("to", .string("expected more than from (\(from)), got \(to)"))]))
        }
        let range = to - from
        let step: Int64
        if let given = try integer(req, "step") {
            step = given
        } else {
            let even = (range / APIHandler.defaultHistoryBuckets + 999) / 1000 * 1000
            step = max(APIHandler.minHistoryStepMs, even)
        }
        let maxRows = Int64(store.limits.maxQueryRows)
        guard step >= APIHandler.minHistoryStepMs else {
            throw .badRequest("invalid query parameter",
                              .object([("step", .string("expected at least \(APIHandler.minHistoryStepMs) (ms), got \(step)"))]))
        }
        let buckets = range / step + (range % step == 0 ? 0 : 1)
        guard buckets <= maxRows else {
            throw .badRequest("invalid query parameter",
                              .object([("step", .string("\(step) ms cuts \(range) ms into \(buckets) buckets; at most \(maxRows): "
                                                          + "expected at least \((range + maxRows - 1) / maxRows)"))]))
        }
        return CollectorHistoryQuery(since: from, until: to, stepMs: step, limit: Int(buckets))
    }

    static func sampleJSON(_ s: CollectorSample) -> JSON {
        let seconds = Double(s.intervalMs) / 1000
        func rate(_ n: Int64) -> JSON { seconds > 0 ? .number(Double(n) / seconds) : .int(0) }
        return .object([
            ("ts", .int(s.ts)), ("interval_ms", .int(s.intervalMs)),
            ("sessions", .object([("handshake", .int(s.sessionsHandshake)), ("established", .int(s.sessionsEstablished)),
                                  ("closing", .int(s.sessionsClosing))])),
            ("agents", .object([("connecting", .int(s.agentsConnecting)), ("stopped", .int(s.agentsStopped)),
                                ("capturing", .int(s.agentsCapturing)),
                                ("wrong_configuration", .int(s.agentsWrongConfiguration))])),
            ("handshakes", .int(s.handshakes)), ("handshake_failures", .int(s.handshakeFailures)),
            ("records_in", .int(s.recordsIn)), ("records_per_s", rate(s.recordsIn)),
            ("rows_stored", .int(s.rowsStored)), ("rows_per_s", rate(s.rowsStored)),
            ("commit_p99_ms", millis(s.commitP99Us)), ("commit_max_ms", millis(s.commitMaxUs)),
            ("lag_p99_ms", millis(s.lagP99Us)), ("lag_max_ms", millis(s.lagMaxUs)),
            ("dropped", .int(s.dropped)), ("store_failures", .int(s.storeFailures)), ("pending_rows", .int(s.pendingRows)),
        ])
    }
}
