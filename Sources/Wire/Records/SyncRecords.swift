// Schedule and pattern sync. The agent asks with the version it holds; the
// collector answers "unchanged" or with the full set. Versions are opaque
// increasing numbers chosen by the collector; 0 means "have nothing".

/// 0x30 ScheduleRequest (agent → collector).
public struct ScheduleRequest: RecordBody {
    public static let recordType = RecordType.scheduleRequest
    public var haveVersion: UInt64
    public init(haveVersion: UInt64) { self.haveVersion = haveVersion }
    public func encode(into w: inout WireWriter) { w.varint(haveVersion) }
    public static func decode(from r: inout WireReader, limits: WireLimits) throws(WireError) -> ScheduleRequest {
        ScheduleRequest(haveVersion: try r.varint())
    }
}

/// 0x31 ScheduleUnchanged (collector → agent): `version` is still current.
public struct ScheduleUnchanged: RecordBody {
    public static let recordType = RecordType.scheduleUnchanged
    public var version: UInt64
    public init(version: UInt64) { self.version = version }
    public func encode(into w: inout WireWriter) { w.varint(version) }
    public static func decode(from r: inout WireReader, limits: WireLimits) throws(WireError) -> ScheduleUnchanged {
        ScheduleUnchanged(version: try r.varint())
    }
}

/// One synthetic monitor the agent runs on a timer.
public struct MonitorSpec: Equatable, Sendable {
    public var id: UInt64
    public var name: String
    /// Monitor kind: "http", "tcp", "exec", ... (the agent skips kinds it
    /// does not implement and says so in Status).
    public var kind: String
    /// What to probe: a URL, "host:port", a command.
    public var target: String
    public var intervalMs: UInt32
    public var timeoutMs: UInt32
    /// Kind-specific settings (headers, expected status, ...).
    public var params: [KeyValue]
    /// When this agent last reported a run of this monitor (the latest
    /// `MonitorResult.timestampMs` the collector stored for it); 0 = never.
    public var lastRunMs: UInt64
    /// The groups the monitor belongs to.
    public var groups: [String]

    public init(id: UInt64, name: String, kind: String, target: String, intervalMs: UInt32, timeoutMs: UInt32,
                params: [KeyValue] = [], lastRunMs: UInt64 = 0, groups: [String] = []) {
        self.id = id
        self.name = name
        self.kind = kind
        self.target = target
        self.intervalMs = intervalMs
        self.timeoutMs = timeoutMs
        self.params = params
        self.lastRunMs = lastRunMs
        self.groups = groups
    }
}

/// 0x32 Schedule (collector → agent): the complete monitor set at `version`,
/// in one record or, when it does not fit, in `parts` consecutive records of
/// the same version (`part` 0, 1, ...), which the agent joins before use.
///
/// Layout: the original fields (version, monitors), then — appended, so an
/// older decoder still reads the first two — one state per monitor
/// (last_run_ms, groups; a parallel list, because fields cannot be appended
/// inside a list element) and the part numbers. A body that ends after the
/// monitors decodes with no last runs, no groups, part 0 of 1.
public struct Schedule: RecordBody {
    public static let recordType = RecordType.schedule
    public var version: UInt64
    public var monitors: [MonitorSpec]
    /// This record's index among the version's records, from 0.
    public var part: UInt32
    /// How many records carry this version (≥ 1).
    public var parts: UInt32

    public init(version: UInt64, monitors: [MonitorSpec], part: UInt32 = 0, parts: UInt32 = 1) {
        self.version = version
        self.monitors = monitors
        self.part = part
        self.parts = parts
    }

    public func encode(into w: inout WireWriter) {
        w.varint(version)
        w.list(monitors) { w, m in
            w.varint(m.id)
            w.string(m.name)
            w.string(m.kind)
            w.string(m.target)
            w.varint(m.intervalMs)
            w.varint(m.timeoutMs)
            w.keyValues(m.params)
        }
        w.list(monitors) { w, m in
            w.varint(m.lastRunMs)
            w.strings(m.groups)
        }
        w.varint(part)
        w.varint(parts)
    }

    public static func decode(from r: inout WireReader, limits: WireLimits) throws(WireError) -> Schedule {
        let max = limits.maxStringLength
        var s = Schedule(version: try r.varint(),
                         monitors: try r.list("schedule.monitors", max: limits.maxListCount) { (r) throws(WireError) -> MonitorSpec in
                             MonitorSpec(id: try r.varint(), name: try r.string("monitor.name", maxLength: max),
                                         kind: try r.string("monitor.kind", maxLength: max),
                                         target: try r.string("monitor.target", maxLength: max),
                                         intervalMs: try r.varint32(), timeoutMs: try r.varint32(),
                                         params: try r.keyValues("monitor.params", limits: limits))
                         })
        if r.isAtEnd { return s }
        let states = try r.list("schedule.monitor_states", max: limits.maxListCount) { (r) throws(WireError) -> (UInt64, [String]) in
            (try r.varint(), try r.strings("monitor.groups", limits: limits))
        }
        guard states.count == s.monitors.count else { throw .malformed(field: "schedule.monitor_states") }
        for (i, st) in states.enumerated() {
            s.monitors[i].lastRunMs = st.0
            s.monitors[i].groups = st.1
        }
        if r.isAtEnd { return s }
        s.part = try r.varint32()
        s.parts = try r.varint32()
        guard s.parts >= 1, s.part < s.parts else { throw .malformed(field: "schedule.part") }
        return s
    }
}

/// 0x33 PatternsRequest (agent → collector).
public struct PatternsRequest: RecordBody {
    public static let recordType = RecordType.patternsRequest
    public var haveVersion: UInt64
    public init(haveVersion: UInt64) { self.haveVersion = haveVersion }
    public func encode(into w: inout WireWriter) { w.varint(haveVersion) }
    public static func decode(from r: inout WireReader, limits: WireLimits) throws(WireError) -> PatternsRequest {
        PatternsRequest(haveVersion: try r.varint())
    }
}

/// 0x34 PatternsUnchanged (collector → agent).
public struct PatternsUnchanged: RecordBody {
    public static let recordType = RecordType.patternsUnchanged
    public var version: UInt64
    public init(version: UInt64) { self.version = version }
    public func encode(into w: inout WireWriter) { w.varint(version) }
    public static func decode(from r: inout WireReader, limits: WireLimits) throws(WireError) -> PatternsUnchanged {
        PatternsUnchanged(version: try r.varint())
    }
}

/// One traffic filter rule. Rules are tried in order; the first match
/// decides. Empty strings match anything; globs use `*` (any run of
/// characters) and `?` (one character).
public struct PatternRule: Equatable, Sendable {
    /// Exact method ("GET"), or empty for any.
    public var method: String
    public var hostGlob: String
    public var pathGlob: String
    /// Where matching traffic is counted (names of the aggregate).
    public var monitor: String
    public var check: String
    /// Drop matching traffic instead of counting it.
    public var exclude: Bool

    public init(method: String = "", hostGlob: String = "", pathGlob: String = "", monitor: String = "",
                check: String = "", exclude: Bool = false) {
        self.method = method
        self.hostGlob = hostGlob
        self.pathGlob = pathGlob
        self.monitor = monitor
        self.check = check
        self.exclude = exclude
    }
}

/// 0x35 Patterns (collector → agent): the complete rule list at `version`.
public struct Patterns: RecordBody {
    public static let recordType = RecordType.patterns
    public var version: UInt64
    public var rules: [PatternRule]

    public init(version: UInt64, rules: [PatternRule]) {
        self.version = version
        self.rules = rules
    }

    public func encode(into w: inout WireWriter) {
        w.varint(version)
        w.list(rules) { w, p in
            w.string(p.method)
            w.string(p.hostGlob)
            w.string(p.pathGlob)
            w.string(p.monitor)
            w.string(p.check)
            w.bool(p.exclude)
        }
    }

    public static func decode(from r: inout WireReader, limits: WireLimits) throws(WireError) -> Patterns {
        let max = limits.maxStringLength
        return Patterns(version: try r.varint(),
                        rules: try r.list("patterns.rules", max: limits.maxListCount) { (r) throws(WireError) -> PatternRule in
                            PatternRule(method: try r.string("rule.method", maxLength: max),
                                        hostGlob: try r.string("rule.host", maxLength: max),
                                        pathGlob: try r.string("rule.path", maxLength: max),
                                        monitor: try r.string("rule.monitor", maxLength: max),
                                        check: try r.string("rule.check", maxLength: max),
                                        exclude: try r.bool("rule.exclude"))
                        })
    }
}
