// The query endpoints: measurements, raw events, the audit log, and the
// collector's own effective configuration. Lists are newest first and
// bounded by `limit` (default 100, at most SQLiteStore.maxQueryLimit).
import CollectorStore
import ConfigFile
import HTTPServer
import JSON

extension APIHandler {
    func measurements(_ req: HTTPRequest, _ r: CountingResponder) {
        let q: MeasurementQuery
        do {
            q = MeasurementQuery(project: text(req, "project"), agent: text(req, "agent"), monitor: text(req, "monitor"),
                                 check: text(req, "check"), source: text(req, "source"), since: try integer(req, "since"),
                                 limit: try limit(req))
        } catch { return r.fail(error) }
        store.measurements(q) { result in
            r.result(result) { rows in
                .object([("measurements", .array(rows.map { rec in
                    let m = rec.measurement
                    return .object([("ts", .int(m.ts)), ("project", .string(rec.project)), ("agent", .string(rec.agent)),
                                    ("monitor", .string(m.monitor)), ("check", .string(m.check)), ("source", .string(m.source)),
                                    ("count", .int(m.count)), ("sum_ms", .number(m.sumMs)), ("min_ms", .number(m.minMs)),
                                    ("max_ms", .number(m.maxMs)), ("p50_ms", .number(m.p50Ms)), ("p95_ms", .number(m.p95Ms)),
                                    ("p99_ms", .number(m.p99Ms)), ("meta", m.meta.map(JSON.raw) ?? .null)])
                }))])
            }
        }
    }

    func events(_ req: HTTPRequest, _ r: CountingResponder) {
        let q: EventQuery
        do {
            q = EventQuery(project: text(req, "project"), agent: text(req, "agent"), monitor: text(req, "monitor"),
                           check: text(req, "check"), since: try integer(req, "since"), limit: try limit(req))
        } catch { return r.fail(error) }
        store.events(q) { result in
            r.result(result) { rows in
                .object([("events", .array(rows.map { rec in
                    let e = rec.event
                    return .object([("id", .int(rec.id)), ("ts", .int(e.ts)), ("project", .string(rec.project)),
                                    ("agent", .string(rec.agent)), ("monitor", .string(e.monitor)), ("check", .string(e.check)),
                                    ("method", .string(e.method)), ("host", .string(e.host)), ("path", .string(e.path)),
                                    ("duration_ms", .number(e.durationMs)), ("meta", e.meta.map(JSON.raw) ?? .null)])
                }))])
            }
        }
    }

    func audit(_ req: HTTPRequest, _ r: CountingResponder) {
        let q: AuditQuery
        do {
            q = AuditQuery(target: text(req, "target"), action: text(req, "action"), since: try integer(req, "since"),
                           limit: try limit(req))
        } catch { return r.fail(error) }
        store.audit(q) { result in
            r.result(result) { rows in
                .object([("audit", .array(rows.map { rec in
                    let e = rec.entry
                    return .object([("id", .int(rec.id)), ("ts", .int(e.ts)), ("actor", .string(e.actor)),
                                    ("action", .string(e.action)), ("target", .string(e.target)),
                                    ("detail", .string(e.detail)), ("result", .string(e.result))])
                }))])
            }
        }
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
