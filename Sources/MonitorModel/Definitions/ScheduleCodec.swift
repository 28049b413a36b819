// ScheduleCodec: definitions to Wire `Schedule` records and back.
//
// A monitor travels as a `MonitorSpec`: numeric id (MonitorID), name, kind,
// target, interval and timeout in ms, and the rest as string parameters:
//
//   every kind  id                 the API's string id
//   http        target = url;      method, header ("Name: value", repeated, in
//                                  order), body (only when set), expect_status
//                                  ("200,3xx"), follow_redirects, tls_verify
//                                  ("true"/"false")
//   tcp         target = host:port host, port
//   exec        target = command;  arg (repeated, in order), step ("name:secs",
//                                  repeated, in order), config (compact JSON)
//
// `${env:NAME}` references travel unresolved. A schedule too large for one
// record is split into parts of the same version (`Schedule.part/parts`);
// `ScheduleAssembler` joins them on the agent.
import JSON
import Wire

public enum ScheduleCodec {
    /// The Schedule record(s) for `definitions` at `version`, each body at
    /// most `maxRecordLength` bytes. `lastRunMs` maps a numeric id to this
    /// agent's last reported run (epoch ms). Always at least one record (an
    /// empty schedule is one record with no monitors).
    public static func records(version: UInt64, definitions: [MonitorDefinition], lastRunMs: [UInt64: UInt64] = [:],
                               maxRecordLength: Int = WireLimits.absoluteMaxRecordLength) -> [Schedule] {
        let specs = definitions.map { spec($0, lastRunMs: lastRunMs[$0.numericID] ?? 0) }
        var parts: [[MonitorSpec]] = [[]]
        // Room for the fixed fields: version, two list counts, part, parts.
        let overhead = 10 + 3 + 3 + 5 + 5
        var used = overhead
        for s in specs {
            let size = encodedSize(s)
            if used + size > maxRecordLength && !parts[parts.count - 1].isEmpty {
                parts.append([])
                used = overhead
            }
            parts[parts.count - 1].append(s)
            used += size
        }
        let n = UInt32(parts.count)
        return parts.enumerated().map { Schedule(version: version, monitors: $0.element, part: UInt32($0.offset), parts: n) }
    }

    /// The spec of one monitor.
    public static func spec(_ d: MonitorDefinition, lastRunMs: UInt64 = 0) -> MonitorSpec {
        var params = [KeyValue("id", d.id)]
        let target: String
        switch d.check {
        case .http(let h):
            target = h.url
            params.append(KeyValue("method", h.method))
            for hd in h.headers { params.append(KeyValue("header", "\(hd.name): \(hd.value)")) }
            if let b = h.body { params.append(KeyValue("body", b)) }
            params.append(KeyValue("expect_status", h.expectStatus.map(\.description).joined(separator: ",")))
            params.append(KeyValue("follow_redirects", h.followRedirects ? "true" : "false"))
            params.append(KeyValue("tls_verify", h.tlsVerify ? "true" : "false"))
        case .tcp(let t):
            target = t.host.contains(Character(":")) && !t.host.hasPrefix("[") ? "[\(t.host)]:\(t.port)" : "\(t.host):\(t.port)"
            params.append(KeyValue("host", t.host))
            params.append(KeyValue("port", String(t.port)))
        case .exec(let e):
            target = e.command
            for a in e.args { params.append(KeyValue("arg", a)) }
            for s in e.steps { params.append(KeyValue("step", "\(s.name):\(s.timeoutSecs)")) }
            params.append(KeyValue("config", JSON.object(e.config).serialized))
        }
        return MonitorSpec(id: d.numericID, name: d.name, kind: d.kind.rawValue, target: target,
                           intervalMs: d.intervalMs, timeoutMs: d.timeoutMs, params: params,
                           lastRunMs: lastRunMs, groups: d.groups)
    }

    /// The definitions of a (joined) schedule, with each monitor's last run.
    /// A spec that is not a valid definition (unknown kind, bad parameter)
    /// is left out and named in `errors` — the agent reports those in Status.
    public static func definitions(from schedule: Schedule) -> (definitions: [MonitorDefinition], lastRunMs: [UInt64: UInt64], errors: [String]) {
        var defs: [MonitorDefinition] = []
        var last: [UInt64: UInt64] = [:]
        var errors: [String] = []
        for s in schedule.monitors {
            switch definition(s) {
            case .success(let d):
                defs.append(d)
                if s.lastRunMs != 0 { last[d.numericID] = s.lastRunMs }
            case .failure(let e):
                errors.append("monitor \(s.id) (\(s.name)): \(e.message)")
            }
        }
        return (defs, last, errors)
    }

    public struct SpecError: Error, Equatable, CustomStringConvertible {
        public let message: String
        public var description: String { message }
    }

    /// One spec back to a definition, re-validated through the same rules as
    /// the API (so a collector of another version cannot slip past them).
    public static func definition(_ s: MonitorSpec) -> Result<MonitorDefinition, SpecError> {
        func all(_ key: String) -> [String] { s.params.filter { $0.key == key }.map(\.value) }
        func one(_ key: String) -> String? { s.params.first { $0.key == key }?.value }
        guard let id = one("id") else { return .failure(SpecError(message: "parameter id missing")) }
        guard s.intervalMs % 1000 == 0, s.timeoutMs % 1000 == 0 else {
            return .failure(SpecError(message: "interval and timeout must be whole seconds"))
        }
        var spec = JSONObject()
        switch s.kind {
        case "http":
            spec["url"] = .string(s.target)
            if let m = one("method") { spec["method"] = .string(m) }
            var headers = JSONObject()
            for h in all("header") {
                // Bytes, not Characters: a value that starts with a combining
                // mark would make the separator's space and the mark one
                // Character, and the space would stay in the value.
                let bytes = Array(h.utf8)
                guard let colon = bytes.firstIndex(of: UInt8(ascii: ":")) else {
                    return .failure(SpecError(message: "malformed header parameter"))
                }
                var start = colon + 1
                if start < bytes.count && bytes[start] == UInt8(ascii: " ") { start += 1 }
                headers[String(decoding: bytes[..<colon], as: UTF8.self)] = .string(String(decoding: bytes[start...], as: UTF8.self))
            }
            spec["headers"] = .object(headers)
            if let b = one("body") { spec["body"] = .string(b) }
            if let e = one("expect_status") {
                spec["expect_status"] = .array(e.split(separator: ",").map { part in
                    if let n = Int(part) { return .number(JSONNumber(n)) }
                    return .string(String(part))
                })
            }
            for key in ["follow_redirects", "tls_verify"] {
                guard let v = one(key) else { continue }
                guard v == "true" || v == "false" else { return .failure(SpecError(message: "\(key) must be true or false")) }
                spec[key] = .bool(v == "true")
            }
        case "tcp":
            guard let h = one("host"), let p = one("port").flatMap({ Int($0) }) else {
                return .failure(SpecError(message: "parameters host and port required"))
            }
            spec["host"] = .string(h)
            spec["port"] = .number(JSONNumber(p))
        case "exec":
            spec["command"] = .string(s.target)
            spec["args"] = .array(all("arg").map { .string($0) })
            var steps: [JSON] = []
            for st in all("step") {
                guard let colon = st.lastIndex(of: ":"), let t = Int(st[st.index(after: colon)...]) else {
                    return .failure(SpecError(message: "malformed step parameter"))
                }
                steps.append(.object(JSONObject([("name", .string(String(st[..<colon]))), ("timeout_secs", .number(JSONNumber(t)))])))
            }
            spec["steps"] = .array(steps)
            if let c = one("config") {
                guard let cfg = try? JSON.parse(c) else { return .failure(SpecError(message: "config is not valid JSON")) }
                spec["config"] = cfg
            }
        default:
            return .failure(SpecError(message: "unknown kind \"\(s.kind)\""))
        }
        var m = JSONObject()
        m["id"] = .string(id)
        m["name"] = .string(s.name)
        m["kind"] = .string(s.kind)
        m["interval_secs"] = .number(JSONNumber(Int(s.intervalMs / 1000)))
        m["timeout_secs"] = .number(JSONNumber(Int(s.timeoutMs / 1000)))
        m["groups"] = .array((s.groups.isEmpty ? ["default"] : s.groups).map { .string($0) })
        m["spec"] = .object(spec)
        switch MonitorDocument.validate(.object(JSONObject([("monitors", .array([.object(m)]))]))) {
        case .success(let d):
            guard d[0].numericID == s.id else { return .failure(SpecError(message: "numeric id does not match id \"\(id)\"")) }
            return .success(d[0])
        case .failure(let e):
            return .failure(SpecError(message: e.errors.map { "\($0.field.replacingAll("monitors[0].", with: "")): \($0.message)" }.joined(separator: "; ")))
        }
    }

    static func encodedSize(_ s: MonitorSpec) -> Int {
        var w = WireWriter()
        w.varint(s.id)
        w.string(s.name)
        w.string(s.kind)
        w.string(s.target)
        w.varint(s.intervalMs)
        w.varint(s.timeoutMs)
        w.keyValues(s.params)
        w.varint(s.lastRunMs)
        w.strings(s.groups)
        return w.count
    }
}

/// Joins the parts of a Schedule version on the agent. Parts arrive in
/// order on the session; a part that does not continue the version being
/// joined (another version, or a gap) discards what was collected and is
/// counted in `discarded` — the next sync request fetches the version whole.
/// Value type, used on the loop thread.
public struct ScheduleAssembler {
    private var pending: Schedule?
    /// Partial schedules thrown away.
    public private(set) var discarded: UInt64 = 0

    public init() {}

    /// Adds one record; returns the whole schedule once its last part arrived.
    public mutating func add(_ s: Schedule) -> Schedule? {
        if s.parts <= 1 {
            if pending != nil { discarded &+= 1; pending = nil }
            return s
        }
        if s.part == 0 {
            if pending != nil { discarded &+= 1 }
            pending = Schedule(version: s.version, monitors: s.monitors, part: 0, parts: s.parts)
        } else if var p = pending, p.version == s.version, p.parts == s.parts, p.part + 1 == s.part {
            p.monitors += s.monitors
            p.part = s.part
            pending = p
        } else {
            discarded &+= 1
            pending = nil
            return nil
        }
        guard let p = pending, p.part + 1 == p.parts else { return nil }
        pending = nil
        return Schedule(version: p.version, monitors: p.monitors)
    }

    /// Forgets a partial schedule (e.g. when the session ends).
    public mutating func reset() { pending = nil }
}
