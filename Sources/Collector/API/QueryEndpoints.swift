// The query endpoints: measurements, raw events, the audit log, and the
// collector's own effective configuration. Lists are newest first and
// bounded by `limit` (default 100, at most the store's limits.maxQueryRows).
// The store keeps latencies in integer microseconds; here, at the edge, they
// become the milliseconds docs/API.md shows.
import CollectorStore
import ConfigFile
import HTTPServer
import JSON

extension APIHandler {
    func measurements(_ req: HTTPRequest, _ r: CountingResponder) {
        let q: MeasurementQuery, n: Int, merge: MergeRequest?
        do {
            let range = try timeRange(req)
            n = try limit(req)
            merge = try MergeRequest.parse(self, req)
            q = MeasurementQuery(project: text(req, "project"), agent: text(req, "agent"), monitor: text(req, "monitor"),
                                 check: text(req, "check"), source: text(req, "source"), since: range.since,
                                 until: range.until, limit: n + 1, after: try cursor(req))
        } catch { return r.fail(error) }
        // With `step`: buckets and merged histograms (MergedMeasurements.swift).
        if let merge { return withKnownProject(q.project, r) { [self] in mergedMeasurements(q, merge, limit: n, r) } }
        withKnownProject(q.project, r) { [self] in store.measurements(q) { [self] result in
            r.result(result) { all in
                let (rows, next) = page(all, limit: n) { ListPosition(ts: $0.measurement.ts, id: $0.id) }
                return .object([("measurements", .array(rows.map { rec in
                    let m = rec.measurement
                    return .object([("ts", .int(m.ts)), ("project", .string(rec.project)), ("agent", .string(rec.agent)),
                                    ("monitor", .string(m.monitor)), ("check", .string(m.check)), ("source", .string(m.source)),
                                    ("count", .int(m.count)), ("sum_ms", APIHandler.millis(m.sumUs)),
                                    ("min_ms", APIHandler.millis(m.minUs)), ("max_ms", APIHandler.millis(m.maxUs)),
                                    ("p50_ms", APIHandler.millis(m.p50Us)), ("p95_ms", APIHandler.millis(m.p95Us)),
                                    ("p99_ms", APIHandler.millis(m.p99Us)), ("outcomes", APIHandler.outcomes(m.outcomes)),
                                    ("meta", APIHandler.meta(m))])
                })), ("next_cursor", next)])
            }
        } }
    }

    func events(_ req: HTTPRequest, _ r: CountingResponder) {
        let q: EventQuery, n: Int
        do {
            let range = try timeRange(req)
            n = try limit(req)
            q = EventQuery(project: text(req, "project"), agent: text(req, "agent"), monitor: text(req, "monitor"),
                           check: text(req, "check"), since: range.since, until: range.until, limit: n + 1,
                           after: try cursor(req))
        } catch { return r.fail(error) }
        withKnownProject(q.project, r) { [self] in store.events(q) { [self] result in
            r.result(result) { all in
                let (rows, next) = page(all, limit: n) { ListPosition(ts: $0.event.ts, id: $0.id) }
                return .object([("events", .array(rows.map { rec in
                    let e = rec.event
                    return .object([("id", .int(rec.id)), ("ts", .int(e.ts)), ("project", .string(rec.project)),
                                    ("agent", .string(rec.agent)), ("monitor", .string(e.monitor)), ("check", .string(e.check)),
                                    ("method", .string(e.method)), ("host", .string(e.host)), ("path", .string(e.path)),
                                    ("duration_ms", APIHandler.millis(e.durationUs)),
                                    ("status", e.status != 0 || !e.errorClass.isEmpty ? .int(e.status) : .null),
                                    ("error_class", e.errorClass.isEmpty ? .null : .string(e.errorClass)),
                                    ("meta", e.status != 0 ? .object([("status", .int(e.status))]) : .null)])
                })), ("next_cursor", next)])
            }
        } }
    }

    func audit(_ req: HTTPRequest, _ r: CountingResponder) {
        let q: AuditQuery, n: Int
        do {
            let range = try timeRange(req)
            n = try limit(req)
            q = AuditQuery(target: text(req, "target"), action: text(req, "action"), since: range.since, until: range.until,
                           limit: n + 1, after: try cursor(req))
        } catch { return r.fail(error) }
        store.audit(q) { [self] result in
            r.result(result) { all in
                let (rows, next) = page(all, limit: n) { ListPosition(ts: $0.entry.ts, id: $0.id) }
                return .object([("audit", .array(rows.map { rec in
                    let e = rec.entry
                    return .object([("id", .int(rec.id)), ("ts", .int(e.ts)), ("actor", .string(e.actor)),
                                    ("action", .string(e.action)), ("target", .string(e.target)),
                                    ("detail", .string(e.detail)), ("result", .string(e.result))])
                })), ("next_cursor", next)])
            }
        }
    }

    /// A stored duration (µs) as the API shows it: milliseconds.
    static func millis(_ us: Int64) -> JSON { .number(Double(us) / 1000) }

    /// Calls by outcome class. Samples without a status (older IPA
    /// versions, tcp and exec runs) are in none of them.
    static func outcomes(_ o: Outcomes) -> JSON {
        .object([("2xx", .int(o.s2xx)), ("3xx", .int(o.s3xx)), ("4xx", .int(o.s4xx)), ("5xx", .int(o.s5xx)),
                 ("error", .int(o.error))])
    }

    /// A measurement's `meta`: the window length, and the errors when there were any.
    static func meta(_ m: MeasurementRow) -> JSON {
        var fields: [(String, JSON)] = [("window_ms", .int(m.windowMs))]
        if m.errors > 0 { fields.append(("errors", .int(m.errors))) }
        return .object(fields)
    }

    /// The collector's effective configuration with origins; secrets redacted.
    func ownConfig(_ r: CountingResponder) {
        guard let config = collectorConfig() else { return r.fail(APIError(503, "configuration not loaded")) }
        r.json(.object([("config", .array(config.entries(redactingSecrets: true).map { e in
            .object([("key", .string(e.key)), ("value", .optional(e.value)),
                     ("origin", .string(e.origin?.name ?? "default")),
                     ("source", .optional(e.origin?.description)), ("live", .bool(e.live))])
        }))]))
    }
}
