// Control: the collector asks the agent to act; the agent answers once per
// request id.

/// What a ControlRequest asks for. Unknown values are kept (the agent
/// answers them with ok = false).
public struct ControlKind: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt64
    public init(rawValue: UInt64) { self.rawValue = rawValue }
    public static let captureStart = ControlKind(rawValue: 1)
    public static let captureStop = ControlKind(rawValue: 2)
    public static let configUpdate = ControlKind(rawValue: 3)

    public var description: String {
        switch self {
        case .captureStart: return "capture_start"
        case .captureStop: return "capture_stop"
        case .configUpdate: return "config_update"
        default: return "kind_\(rawValue)"
        }
    }
}

/// 0x40 ControlRequest (collector → agent).
public struct ControlRequest: RecordBody {
    public static let recordType = RecordType.controlRequest
    /// Chosen by the collector, echoed in the response.
    public var requestID: UInt64
    public var kind: ControlKind
    /// Arguments: for config_update the keys to set; for capture_start
    /// e.g. "interface".
    public var values: [KeyValue]

    public init(requestID: UInt64, kind: ControlKind, values: [KeyValue] = []) {
        self.requestID = requestID
        self.kind = kind
        self.values = values
    }

    public func encode(into w: inout WireWriter) {
        w.varint(requestID)
        w.varint(kind.rawValue)
        w.keyValues(values)
    }

    public static func decode(from r: inout WireReader, limits: WireLimits) throws(WireError) -> ControlRequest {
        ControlRequest(requestID: try r.varint(), kind: ControlKind(rawValue: try r.varint()),
                       values: try r.keyValues("control.values", limits: limits))
    }
}

/// 0x41 ControlResponse (agent → collector).
public struct ControlResponse: RecordBody {
    public static let recordType = RecordType.controlResponse
    public var requestID: UInt64
    public var ok: Bool
    /// Per-key failures (key → reason), e.g. a config value out of range.
    public var errors: [KeyValue]
    public var message: String

    public init(requestID: UInt64, ok: Bool, errors: [KeyValue] = [], message: String = "") {
        self.requestID = requestID
        self.ok = ok
        self.errors = errors
        self.message = message
    }

    public func encode(into w: inout WireWriter) {
        w.varint(requestID)
        w.bool(ok)
        w.keyValues(errors)
        w.string(message)
    }

    public static func decode(from r: inout WireReader, limits: WireLimits) throws(WireError) -> ControlResponse {
        ControlResponse(requestID: try r.varint(), ok: try r.bool("control_response.ok"),
                        errors: try r.keyValues("control_response.errors", limits: limits),
                        message: try r.string("control_response.message", maxLength: limits.maxStringLength))
    }
}
