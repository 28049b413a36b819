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
    /// Monitor kind: "http", "tcp", "dns", ... (the agent skips kinds it
    /// does not implement and says so in Status).
    public var kind: String
    /// What to probe: a URL, "host:port", a name.
    public var target: String
    public var intervalMs: UInt32
    public var timeoutMs: UInt32
    /// Kind-specific settings (headers, expected status, ...).
    public var params: [KeyValue]

    public init(id: UInt64, name: String, kind: String, target: String, intervalMs: UInt32, timeoutMs: UInt32,
                params: [KeyValue] = []) {
        self.id = id
        self.name = name
        self.kind = kind
        self.target = target
        self.intervalMs = intervalMs
        self.timeoutMs = timeoutMs
        self.params = params
    }
}

/// 0x32 Schedule (collector → agent): the complete monitor set at `version`.
public struct Schedule: RecordBody {
    public static let recordType = RecordType.schedule
    public var version: UInt64
    public var monitors: [MonitorSpec]

    public init(version: UInt64, monitors: [MonitorSpec]) {
        self.version = version
        self.monitors = monitors
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
    }

    public static func decode(from r: inout WireReader, limits: WireLimits) throws(WireError) -> Schedule {
        let max = limits.maxStringLength
        return Schedule(version: try r.varint(),
                        monitors: try r.list("schedule.monitors", max: limits.maxListCount) { (r) throws(WireError) -> MonitorSpec in
                            MonitorSpec(id: try r.varint(), name: try r.string("monitor.name", maxLength: max),
                                        kind: try r.string("monitor.kind", maxLength: max),
                                        target: try r.string("monitor.target", maxLength: max),
                                        intervalMs: try r.varint32(), timeoutMs: try r.varint32(),
                                        params: try r.keyValues("monitor.params", limits: limits))
                        })
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
