// Session setup and housekeeping records: Ping/Pong, Error, Hello,
// Welcome, StringDef, StringClear. Byte layouts are in docs/PROTOCOL.md.

/// 0x01 Ping / 0x02 Pong: exactly 8 opaque bytes (read big-endian into
/// `value`, so they round-trip unchanged). A Pong echoes its Ping's bytes.
public struct Ping: RecordBody {
    public static let recordType = RecordType.ping
    public var value: UInt64
    public init(_ value: UInt64) { self.value = value }

    public func encode(into w: inout WireWriter) { w.fixed64(value) }

    public static func decode(from r: inout WireReader, limits: WireLimits) throws(WireError) -> Ping {
        // Fixed size: exactly 8 bytes, no appended fields.
        guard r.remaining == 8 else { throw .malformed(field: "ping.length") }
        return Ping(try r.fixed64())
    }
}

/// Why a session is being closed or a request refused. Unknown codes are
/// kept as their number (a newer peer may send codes this one lacks).
public struct ErrorCode: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt64
    public init(rawValue: UInt64) { self.rawValue = rawValue }

    public static let protocolViolation = ErrorCode(rawValue: 1)
    public static let rejected = ErrorCode(rawValue: 2)
    public static let duplicateAgent = ErrorCode(rawValue: 3)
    public static let limitExceeded = ErrorCode(rawValue: 4)
    public static let unsupported = ErrorCode(rawValue: 5)
    public static let shuttingDown = ErrorCode(rawValue: 6)
    public static let internalError = ErrorCode(rawValue: 7)
    public static let idleTimeout = ErrorCode(rawValue: 8)
    public static let probeOnly = ErrorCode(rawValue: 9)
    /// The agent id is enrolled with another static key, or in another
    /// project (docs/API.md, "Agent identity").
    public static let identityMismatch = ErrorCode(rawValue: 10)

    public var description: String {
        switch self {
        case .protocolViolation: return "protocol_violation"
        case .rejected: return "rejected"
        case .duplicateAgent: return "duplicate_agent"
        case .limitExceeded: return "limit_exceeded"
        case .unsupported: return "unsupported"
        case .shuttingDown: return "shutting_down"
        case .internalError: return "internal_error"
        case .idleTimeout: return "idle_timeout"
        case .probeOnly: return "probe_only"
        case .identityMismatch: return "identity_mismatch"
        default: return "error_\(rawValue)"
        }
    }
}

/// 0x03 Error: the sender is closing the session, and why. Sent as the
/// last record before the connection closes (or as message 2's payload to
/// refuse a Hello).
public struct ErrorRecord: RecordBody, Error {
    public static let recordType = RecordType.error
    public var code: ErrorCode
    public var message: String

    public init(code: ErrorCode, message: String = "") {
        self.code = code
        self.message = message
    }

    public func encode(into w: inout WireWriter) {
        w.varint(code.rawValue)
        w.string(message)
    }

    public static func decode(from r: inout WireReader, limits: WireLimits) throws(WireError) -> ErrorRecord {
        ErrorRecord(code: ErrorCode(rawValue: try r.varint()),
                    message: try r.string("error.message", maxLength: limits.maxStringLength))
    }
}

/// 0x10 Hello: the agent's identity, the payload of handshake message 1.
/// An empty message-1 payload instead opens a probe session.
public struct Hello: RecordBody {
    public static let recordType = RecordType.hello
    /// Stable agent identity (survives restarts), e.g. a UUID.
    public var agentID: String
    public var name: String
    public var host: String
    /// Agent software version.
    public var version: String
    /// The host's boot id (/proc/sys/kernel/random/boot_id).
    public var bootID: String
    /// Random per agent process start. DataBatch sequence numbers count
    /// per (agentID, instance), so a collector can tell a restarted agent
    /// from a reconnect of the same process.
    public var instance: UInt64
    /// Features the agent implements (e.g. "aggregates", "events",
    /// "monitors", "capture").
    public var capabilities: [String]
    /// Groups the agent is configured into (for schedules and patterns).
    public var groups: [String]

    public init(agentID: String, name: String = "", host: String = "", version: String = "", bootID: String = "",
                instance: UInt64 = 0, capabilities: [String] = [], groups: [String] = []) {
        self.agentID = agentID
        self.name = name
        self.host = host
        self.version = version
        self.bootID = bootID
        self.instance = instance
        self.capabilities = capabilities
        self.groups = groups
    }

    public func encode(into w: inout WireWriter) {
        w.string(agentID)
        w.string(name)
        w.string(host)
        w.string(version)
        w.string(bootID)
        w.varint(instance)
        w.strings(capabilities)
        w.strings(groups)
    }

    public static func decode(from r: inout WireReader, limits: WireLimits) throws(WireError) -> Hello {
        let max = limits.maxStringLength
        return Hello(agentID: try r.string("hello.agent_id", maxLength: max),
                     name: try r.string("hello.name", maxLength: max),
                     host: try r.string("hello.host", maxLength: max),
                     version: try r.string("hello.version", maxLength: max),
                     bootID: try r.string("hello.boot_id", maxLength: max),
                     instance: try r.varint(),
                     capabilities: try r.strings("hello.capabilities", limits: limits),
                     groups: try r.strings("hello.groups", limits: limits))
    }
}

/// 0x11 Welcome: the collector's answer to Hello (or to a probe), the
/// payload of handshake message 2.
public struct Welcome: RecordBody {
    public static let recordType = RecordType.welcome

    /// Limits the collector enforces on this session; the agent must stay
    /// within them. 0 means "no announcement" for each field.
    public struct Limits: Equatable, Sendable {
        public var maxRecordLength: UInt32
        public var maxBatchItems: UInt32
        public var maxStringID: UInt32
        /// DataBatches the agent may have unacknowledged at once.
        public var maxInFlightBatches: UInt32
        /// How often the agent should Ping when otherwise idle.
        public var pingIntervalMs: UInt32
        /// Silence after which the collector closes the session.
        public var idleTimeoutMs: UInt32
        /// Total text bytes the collector's string table holds for this session.
        public var maxStringTableBytes: UInt32

        public init(maxRecordLength: UInt32 = 0, maxBatchItems: UInt32 = 0, maxStringID: UInt32 = 0,
                    maxInFlightBatches: UInt32 = 0, pingIntervalMs: UInt32 = 0, idleTimeoutMs: UInt32 = 0,
                    maxStringTableBytes: UInt32 = 0) {
            self.maxRecordLength = maxRecordLength
            self.maxBatchItems = maxBatchItems
            self.maxStringID = maxStringID
            self.maxInFlightBatches = maxInFlightBatches
            self.pingIntervalMs = pingIntervalMs
            self.idleTimeoutMs = idleTimeoutMs
            self.maxStringTableBytes = maxStringTableBytes
        }
    }

    public var sessionID: UInt64
    /// Collector wall clock (Unix ms) when message 2 was written; with the
    /// handshake round trip it gives the agent its clock offset.
    public var collectorTimeMs: UInt64
    public var configVersion: UInt64
    public var scheduleVersion: UInt64
    public var patternsVersion: UInt64
    /// Highest DataBatch sequence the collector holds durably for this
    /// (agentID, instance); the agent resends anything after it. 0 = none.
    public var ackedSequence: UInt64
    public var limits: Limits

    public init(sessionID: UInt64, collectorTimeMs: UInt64, configVersion: UInt64 = 0, scheduleVersion: UInt64 = 0,
                patternsVersion: UInt64 = 0, ackedSequence: UInt64 = 0, limits: Limits = Limits()) {
        self.sessionID = sessionID
        self.collectorTimeMs = collectorTimeMs
        self.configVersion = configVersion
        self.scheduleVersion = scheduleVersion
        self.patternsVersion = patternsVersion
        self.ackedSequence = ackedSequence
        self.limits = limits
    }

    public func encode(into w: inout WireWriter) {
        w.varint(sessionID)
        w.varint(collectorTimeMs)
        w.varint(configVersion)
        w.varint(scheduleVersion)
        w.varint(patternsVersion)
        w.varint(ackedSequence)
        w.varint(limits.maxRecordLength)
        w.varint(limits.maxBatchItems)
        w.varint(limits.maxStringID)
        w.varint(limits.maxInFlightBatches)
        w.varint(limits.pingIntervalMs)
        w.varint(limits.idleTimeoutMs)
        w.varint(limits.maxStringTableBytes)
    }

    public static func decode(from r: inout WireReader, limits: WireLimits) throws(WireError) -> Welcome {
        Welcome(sessionID: try r.varint(), collectorTimeMs: try r.varint(), configVersion: try r.varint(),
                scheduleVersion: try r.varint(), patternsVersion: try r.varint(), ackedSequence: try r.varint(),
                limits: Limits(maxRecordLength: try r.varint32(), maxBatchItems: try r.varint32(),
                               maxStringID: try r.varint32(), maxInFlightBatches: try r.varint32(),
                               pingIntervalMs: try r.varint32(), idleTimeoutMs: try r.varint32(),
                               maxStringTableBytes: try r.varint32()))
    }
}

/// 0x12 StringDef: defines (or redefines) string id `id` (≥ 1) for the
/// rest of the session in this direction. Records that follow refer to the
/// text by id (`StringRef`), so repeated names cross the wire once.
public struct StringDef: RecordBody {
    public static let recordType = RecordType.stringDef
    public var id: UInt32
    public var text: String

    public init(id: UInt32, text: String) {
        self.id = id
        self.text = text
    }

    public func encode(into w: inout WireWriter) {
        w.varint(id)
        w.string(text)
    }

    public static func decode(from r: inout WireReader, limits: WireLimits) throws(WireError) -> StringDef {
        let id = try r.varint32()
        guard id >= 1 else { throw .malformed(field: "string_def.id") }
        guard id <= limits.maxStringID else { throw .limitExceeded(field: "string_def.id", value: Int(id)) }
        return StringDef(id: id, text: try r.string("string_def.text", maxLength: limits.maxStringLength))
    }
}

/// 0x13 StringClear: forget every string id of this direction (empty
/// body). Lets a long-lived sender bound its table by starting over.
public struct StringClear: RecordBody {
    public static let recordType = RecordType.stringClear
    public init() {}
    public func encode(into w: inout WireWriter) {}
    public static func decode(from r: inout WireReader, limits: WireLimits) throws(WireError) -> StringClear { StringClear() }
}

/// A reference to a StringDef'd text; 0 means "none / empty".
public typealias StringRef = UInt32
