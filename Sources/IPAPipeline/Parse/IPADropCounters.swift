// IPADropCounters: why an IPA line was dropped, and how many were, per
// cause. Every line the parser rejects is counted under exactly one cause.
//
// Thread: loop thread (a value the ingest pipeline copies per datagram).

/// Why a line was dropped. Every drop is counted under exactly one cause.
public enum IPADropCause: Int, CaseIterable, Sendable {
    case badVersion, fieldCount, duration, badURL, oversize

    public var name: String {
        switch self {
        case .badVersion: return "bad_version"
        case .fieldCount: return "field_count"
        case .duration: return "duration"
        case .badURL: return "bad_url"
        case .oversize: return "oversize"
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

    public init() {}

    @inline(__always)
    public mutating func count(_ c: IPADropCause) {
        switch c {
        case .badVersion: badVersion &+= 1
        case .fieldCount: fieldCount &+= 1
        case .duration: duration &+= 1
        case .badURL: badURL &+= 1
        case .oversize: oversize &+= 1
        }
    }

    public subscript(_ c: IPADropCause) -> UInt64 {
        switch c {
        case .badVersion: return badVersion
        case .fieldCount: return fieldCount
        case .duration: return duration
        case .badURL: return badURL
        case .oversize: return oversize
        }
    }

    public var total: UInt64 { badVersion &+ fieldCount &+ duration &+ badURL &+ oversize }
}
