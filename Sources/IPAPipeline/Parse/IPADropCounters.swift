// IPADropCounters: why an IPA line was dropped, and how many were, per
// cause. Every line the parser rejects is counted under exactly one cause;
// so is every parsed record whose timestamp falls outside what a replay
// accepts (`too_old`, `future`).
//
// Thread: loop thread (a value the ingest pipeline copies per datagram).

/// Why a line was dropped. Every drop is counted under exactly one cause.
public enum IPADropCause: Int, CaseIterable, Sendable {
    case badVersion, fieldCount, duration, badURL, oversize
    /// Version 2: the timestamp is not integer ms since the epoch.
    case timestamp
    /// Version 2: the status is not 0 or 200...599.
    case status
    /// Version 2: the trailing error class is too long or not a token.
    case errorClass
    /// Placed by its timestamp, the record is older than accepted.
    case tooOld
    /// Placed by its timestamp, the record lies ahead of the clock by more
    /// than the accepted skew.
    case future

    public var name: String {
        switch self {
        case .badVersion: return "bad_version"
        case .fieldCount: return "field_count"
        case .duration: return "duration"
        case .badURL: return "bad_url"
        case .oversize: return "oversize"
        case .timestamp: return "timestamp"
        case .status: return "status"
        case .errorClass: return "error_class"
        case .tooOld: return "too_old"
        case .future: return "future"
        }
    }
}

/// Drops per cause. Plain stored fields, not an array: the ingest path
/// copies this per datagram and must not allocate.
public struct IPADropCounters: Sendable, Equatable {
    private var badVersion: UInt64 = 0
    private var fieldCount: UInt64 = 0
    private var duration: UInt64 = 0
    private var badURL: UInt64 = 0
    private var oversize: UInt64 = 0
    private var timestamp: UInt64 = 0
    private var status: UInt64 = 0
    private var errorClass: UInt64 = 0
    private var tooOld: UInt64 = 0
    private var future: UInt64 = 0

    public init() {}

    @inline(__always)
    public mutating func count(_ c: IPADropCause, times n: UInt64 = 1) {
        switch c {
        case .badVersion: badVersion &+= n
        case .fieldCount: fieldCount &+= n
        case .duration: duration &+= n
        case .badURL: badURL &+= n
        case .oversize: oversize &+= n
        case .timestamp: timestamp &+= n
        case .status: status &+= n
        case .errorClass: errorClass &+= n
        case .tooOld: tooOld &+= n
        case .future: future &+= n
        }
    }

    public subscript(_ c: IPADropCause) -> UInt64 {
        switch c {
        case .badVersion: return badVersion
        case .fieldCount: return fieldCount
        case .duration: return duration
        case .badURL: return badURL
        case .oversize: return oversize
        case .timestamp: return timestamp
        case .status: return status
        case .errorClass: return errorClass
        case .tooOld: return tooOld
        case .future: return future
        }
    }

    /// Lines the parser rejected (every cause but the two of placement).
    public var parseTotal: UInt64 {
        badVersion &+ fieldCount &+ duration &+ badURL &+ oversize &+ timestamp &+ status &+ errorClass
    }

    public var total: UInt64 { parseTotal &+ tooOld &+ future }
}
