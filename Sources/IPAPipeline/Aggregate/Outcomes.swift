// Outcomes: what became of calls, by class — 2xx, 3xx, 4xx, 5xx, or
// `error` (a transport failure: no response at all). Records that carry no
// status (IPA versions 0 and 1, tcp and exec monitor runs) are counted in
// no class, so `count − outcomes.total` is the number of such records.
//
// Thread: values; built and read on the loop thread.

/// The class of a call's result.
public enum Outcome: Int, CaseIterable, Sendable {
    case s2xx, s3xx, s4xx, s5xx, error

    /// 0 is a transport error; 200...599 its class. Anything else (the
    /// parser accepts no other status) counts as `error`.
    @inline(__always)
    public init(status: Int32) {
        switch status {
        case 200...299: self = .s2xx
        case 300...399: self = .s3xx
        case 400...499: self = .s4xx
        case 500...599: self = .s5xx
        default: self = .error
        }
    }

    /// The name the API and the docs use.
    public var name: String {
        switch self {
        case .s2xx: return "2xx"
        case .s3xx: return "3xx"
        case .s4xx: return "4xx"
        case .s5xx: return "5xx"
        case .error: return "error"
        }
    }
}

/// Calls per outcome class. Plain fields: counted per record, no allocation.
public struct OutcomeCounts: Equatable, Sendable {
    public var s2xx: UInt64 = 0
    public var s3xx: UInt64 = 0
    public var s4xx: UInt64 = 0
    public var s5xx: UInt64 = 0
    public var error: UInt64 = 0

    public init() {}

    public init(s2xx: UInt64, s3xx: UInt64, s4xx: UInt64, s5xx: UInt64, error: UInt64) {
        self.s2xx = s2xx; self.s3xx = s3xx; self.s4xx = s4xx; self.s5xx = s5xx; self.error = error
    }

    @inline(__always)
    public mutating func count(_ o: Outcome, times n: UInt64 = 1) {
        switch o {
        case .s2xx: s2xx &+= n
        case .s3xx: s3xx &+= n
        case .s4xx: s4xx &+= n
        case .s5xx: s5xx &+= n
        case .error: error &+= n
        }
    }

    public mutating func add(_ o: OutcomeCounts) {
        s2xx &+= o.s2xx; s3xx &+= o.s3xx; s4xx &+= o.s4xx; s5xx &+= o.s5xx; error &+= o.error
    }

    /// Records that carried a status.
    public var total: UInt64 { s2xx &+ s3xx &+ s4xx &+ s5xx &+ error }
    /// The calls that failed: a server error or no response.
    public var failures: UInt64 { s5xx &+ error }
}
