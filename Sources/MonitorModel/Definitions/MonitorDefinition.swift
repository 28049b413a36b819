// MonitorDefinition: one synthetic monitor as the API defines it and the
// agent runs it. Built only by `MonitorDocument.validate` (from the API's
// JSON) or `ScheduleCodec` (from a Wire Schedule), so every instance has
// passed validation.
import JSON

/// One monitor: identity, cadence, groups and what to check.
/// Immutable value type; no thread affinity.
public struct MonitorDefinition: Equatable, Hashable, Sendable {
    /// The API's identifier (`[A-Za-z0-9_.-]`, 1–64 characters), unique in a project.
    public var id: String
    public var name: String
    public var intervalSecs: UInt32
    /// Whole-run cap: an HTTP request, a TCP connect, or an exec monitor's
    /// whole run (handshake and every step) must end within it.
    public var timeoutSecs: UInt32
    /// Agents whose `groups` share one of these run the monitor.
    public var groups: [String]
    public var check: MonitorCheck

    public init(id: String, name: String, intervalSecs: UInt32, timeoutSecs: UInt32, groups: [String] = ["default"],
                check: MonitorCheck) {
        self.id = id
        self.name = name
        self.intervalSecs = intervalSecs
        self.timeoutSecs = timeoutSecs
        self.groups = groups
        self.check = check
    }

    /// The id on the wire (`MonitorSpec.id`, `MonitorResult.monitorID`); see `MonitorID`.
    public var numericID: UInt64 { MonitorID.numeric(id) }
    public var kind: MonitorKind { check.kind }
    public var intervalMs: UInt32 { intervalSecs &* 1000 }
    public var timeoutMs: UInt32 { timeoutSecs &* 1000 }
}

public enum MonitorKind: String, Equatable, Hashable, Sendable, CaseIterable {
    case http, tcp, exec
}

/// What a monitor checks, per kind.
public enum MonitorCheck: Equatable, Hashable, Sendable {
    case http(HTTPCheck)
    case tcp(TCPCheck)
    case exec(ExecCheck)

    public var kind: MonitorKind {
        switch self {
        case .http: return .http
        case .tcp: return .tcp
        case .exec: return .exec
        }
    }
}

/// An HTTP(S) request and the statuses that count as success. String values
/// (url, header values, body) may hold `${env:NAME}` references.
public struct HTTPCheck: Equatable, Hashable, Sendable {
    public var method: String
    public var url: String
    public var headers: [HTTPHeader]
    public var body: String?
    public var expectStatus: [StatusMatch]
    public var followRedirects: Bool
    public var tlsVerify: Bool

    public init(method: String = "GET", url: String, headers: [HTTPHeader] = [], body: String? = nil,
                expectStatus: [StatusMatch] = [.class(2)], followRedirects: Bool = false, tlsVerify: Bool = true) {
        self.method = method
        self.url = url
        self.headers = headers
        self.body = body
        self.expectStatus = expectStatus
        self.followRedirects = followRedirects
        self.tlsVerify = tlsVerify
    }

    /// Whether `status` is one of the expected ones.
    public func accepts(status: Int) -> Bool {
        expectStatus.contains { $0.matches(status) }
    }
}

public struct HTTPHeader: Equatable, Hashable, Sendable {
    public var name: String
    public var value: String
    public init(_ name: String, _ value: String) {
        self.name = name
        self.value = value
    }
}

/// An expected HTTP status: an exact code (200) or a class ("2xx").
public enum StatusMatch: Equatable, Hashable, Sendable, CustomStringConvertible {
    case code(Int)
    /// The hundreds digit: 2 is "2xx".
    case `class`(Int)

    public func matches(_ status: Int) -> Bool {
        switch self {
        case .code(let c): return status == c
        case .class(let k): return status / 100 == k
        }
    }

    public var description: String {
        switch self {
        case .code(let c): return String(c)
        case .class(let k): return "\(k)xx"
        }
    }

    /// "200" or "2xx".
    public init?(text: String) {
        let u = Array(text.utf8)
        if u.count == 3, u[1] == UInt8(ascii: "x"), u[2] == UInt8(ascii: "x"),
           u[0] >= UInt8(ascii: "1"), u[0] <= UInt8(ascii: "5") {
            self = .class(Int(u[0] - UInt8(ascii: "0")))
        } else if let c = Int(text), (100...599).contains(c) {
            self = .code(c)
        } else {
            return nil
        }
    }
}

/// A TCP connect to host:port. `host` is a name or an IP literal and may be
/// a `${env:NAME}` reference.
public struct TCPCheck: Equatable, Hashable, Sendable {
    public var host: String
    public var port: UInt16
    public init(host: String, port: UInt16) {
        self.host = host
        self.port = port
    }
}

/// A custom monitor: an executable speaking the line protocol of
/// docs/MONITORS.md. `command`, `args` and the strings inside `config` may
/// hold `${env:NAME}` references.
public struct ExecCheck: Equatable, Hashable, Sendable {
    public var command: String
    public var args: [String]
    public var steps: [ExecStep]
    /// A JSON object handed to the monitor after the handshake.
    public var config: JSONObject

    public init(command: String, args: [String] = [], steps: [ExecStep], config: JSONObject = JSONObject()) {
        self.command = command
        self.args = args
        self.steps = steps
        self.config = config
    }
}

public struct ExecStep: Equatable, Hashable, Sendable {
    public var name: String
    public var timeoutSecs: UInt32
    public init(name: String, timeoutSecs: UInt32) {
        self.name = name
        self.timeoutSecs = timeoutSecs
    }
}
