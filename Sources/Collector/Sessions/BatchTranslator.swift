// BatchTranslator: a Wire DataBatch (string refs) as the rows the store
// keeps (names). Latencies stay integer microseconds, as the agent sent
// them; the HTTP API turns them into milliseconds. Pure; runs on the loop
// thread while the session's string table is current.
import CollectorStore
import JSON
import Wire

enum BatchTranslator {
    /// Why a batch cannot be stored as sent.
    struct Refusal: Error, Equatable, CustomStringConvertible {
        let description: String
    }

    struct Translated {
        var batch: Batch
        /// Items of kinds this version does not store (dropped, counted).
        var unknownItems: Int
    }

    /// `dedupBoot` identifies the agent process (see `SessionIdentity`).
    static func translate(_ b: DataBatch, projectId: Int64, agentID: String, dedupBoot: String,
                          strings: StringTable, receivedAt: Int64) -> Result<Translated, Refusal> {
        guard b.sequence <= UInt64(Int64.max) else {
            return .failure(Refusal(description: "batch sequence \(b.sequence) out of range"))
        }
        var batch = Batch(projectId: projectId, agentId: agentID, bootId: dedupBoot, sequence: Int64(b.sequence),
                          receivedAt: receivedAt)
        var unknown = 0
        func name(_ ref: StringRef, _ field: String) -> Result<String, Refusal> {
            guard let s = strings[ref] else { return .failure(Refusal(description: "\(field) refers to undefined string id \(ref)")) }
            return .success(s)
        }
        // One allocation for the rows rather than one per doubling.
        var aggregates = 0
        for item in b.items { if case .aggregate = item { aggregates += 1 } }
        batch.measurements.reserveCapacity(aggregates)
        for item in b.items {
            switch item {
            case .aggregate(let a):
                let monitor: String, check: String, source: String
                switch name(a.monitor, "aggregate.monitor") { case .success(let s): monitor = s; case .failure(let e): return .failure(e) }
                switch name(a.check, "aggregate.check") { case .success(let s): check = s; case .failure(let e): return .failure(e) }
                switch name(a.source, "aggregate.source") { case .success(let s): source = s; case .failure(let e): return .failure(e) }
                batch.measurements.append(MeasurementRow(
                    ts: clamp(a.windowStartMs), windowMs: Int64(a.windowLengthMs), monitor: monitor, check: check,
                    source: source, count: clamp(a.count), errors: clamp(a.errors), sumUs: clamp(a.sumUs),
                    minUs: clamp(a.minUs), maxUs: clamp(a.maxUs), p50Us: clamp(a.p50Us), p95Us: clamp(a.p95Us),
                    p99Us: clamp(a.p99Us),
                    outcomes: Outcomes(s2xx: clamp(a.outcome2xx), s3xx: clamp(a.outcome3xx), s4xx: clamp(a.outcome4xx),
                                       s5xx: clamp(a.outcome5xx), error: clamp(a.outcomeError)),
                    histogram: a.histogram?.encoded))
            case .event(let e):
                let method: String, host: String, monitor: String, check: String
                switch name(e.method, "event.method") { case .success(let s): method = s; case .failure(let f): return .failure(f) }
                switch name(e.host, "event.host") { case .success(let s): host = s; case .failure(let f): return .failure(f) }
                // The rule that matched (0, i.e. "", from agents that predate the fields).
                switch name(e.monitor, "event.monitor") { case .success(let s): monitor = s; case .failure(let f): return .failure(f) }
                switch name(e.check, "event.check") { case .success(let s): check = s; case .failure(let f): return .failure(f) }
                batch.events.append(CollectorStore.RawEvent(ts: clamp(e.timestampUs / 1000), monitor: monitor, check: check,
                                                            method: method, host: host, path: e.path,
                                                            status: Int64(e.status), durationUs: clamp(e.durationUs),
                                                            errorClass: e.errorClass))
            case .monitorResult(let r):
                let step: String
                switch name(r.step, "result.step") { case .success(let s): step = s; case .failure(let f): return .failure(f) }
                var phases: [(String, JSON)] = []
                for p in r.phases {
                    switch name(p.name, "result.phase") {
                    case .success(let s): phases.append((s, .number(ms(p.durationUs))))
                    case .failure(let f): return .failure(f)
                    }
                }
                var detail: [(String, JSON)] = [("run_id", .number(JSONNumber(r.runID))), ("status", .string(r.status.description))]
                if !r.message.isEmpty { detail.append(("message", .string(r.message))) }
                // An HTTP run's response (0 = no response or another kind).
                if r.protocolStatus != 0 {
                    detail.append(("http_status", .int(Int(r.protocolStatus))))
                    detail.append(("body_bytes", .number(Double(r.bytes))))
                }
                if !phases.isEmpty { detail.append(("phases_ms", .object(phases))) }
                batch.monitorRuns.append(MonitorRun(ts: clamp(r.timestampMs), monitor: String(r.monitorID), check: step,
                                                    ok: r.status == .ok, durationUs: clamp(r.durationUs),
                                                    detail: JSON.object(detail).serialized))
            case .unknown:
                unknown += 1
            }
        }
        return .success(Translated(batch: batch, unknownItems: unknown))
    }

    /// The run's detail document keeps its phases in milliseconds, the form
    /// the API shows it in (the store keeps it as JSON text, unread).
    @inline(__always) static func ms(_ us: UInt64) -> Double { Double(us) / 1000 }
    @inline(__always) static func clamp(_ v: UInt64) -> Int64 { v > UInt64(Int64.max) ? Int64.max : Int64(v) }
}
