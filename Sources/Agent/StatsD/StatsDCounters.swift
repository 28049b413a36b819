// StatsDCounters: what became of every StatsD line — a metric value counted,
// an event or service check seen (parsed, not supported), or a drop under
// exactly one named cause (docs/STATSD.md, "Drops").
//
// Thread: a value owned by the StatsD pipeline on the loop thread.

/// Why a StatsD line was dropped. Every drop is counted under exactly one cause.
public enum StatsDDropCause: Int, CaseIterable, Sendable {
    /// The metric name is empty, longer than `StatsDParser.maxNameBytes`,
    /// or holds a control byte.
    case name
    /// No `:` after the name, or a value that is not a number (sets: empty).
    case value
    /// No `|type`, or a type other than c, g, ms, h, d, s.
    case type
    /// A timer, histogram or distribution value below zero.
    case negative
    /// `@rate` is not a number in (0, 1].
    case sampleRate
    /// The `#` tags are longer than `StatsDParser.maxTagBytes` or hold a
    /// control byte.
    case tags
    /// `|T` is not a Unix time in seconds.
    case timestamp
    /// A `|field` the grammar does not know.
    case field
    /// An `_e{…}` event whose lengths do not match its title and text.
    case event
    /// An `_sc|…` service check without a name or a status 0-3.
    case serviceCheck
    /// The line is longer than `StatsDParser.maxLineBytes` (or the datagram
    /// was truncated by the kernel: counted by the receiver).
    case oversize

    public var name: String {
        switch self {
        case .name: return "name"
        case .value: return "value"
        case .type: return "type"
        case .negative: return "negative"
        case .sampleRate: return "sample_rate"
        case .tags: return "tags"
        case .timestamp: return "timestamp"
        case .field: return "field"
        case .event: return "event"
        case .serviceCheck: return "service_check"
        case .oversize: return "oversize"
        }
    }
}

/// Drops per cause, plain stored fields: copied per datagram, never allocated.
public struct StatsDDropCounters: Sendable, Equatable {
    private var name: UInt64 = 0, value: UInt64 = 0, type: UInt64 = 0, negative: UInt64 = 0
    private var sampleRate: UInt64 = 0, tags: UInt64 = 0, timestamp: UInt64 = 0, field: UInt64 = 0
    private var event: UInt64 = 0, serviceCheck: UInt64 = 0, oversize: UInt64 = 0

    public init() {}

    @inline(__always)
    public mutating func count(_ c: StatsDDropCause, times n: UInt64 = 1) {
        switch c {
        case .name: name &+= n
        case .value: value &+= n
        case .type: type &+= n
        case .negative: negative &+= n
        case .sampleRate: sampleRate &+= n
        case .tags: tags &+= n
        case .timestamp: timestamp &+= n
        case .field: field &+= n
        case .event: event &+= n
        case .serviceCheck: serviceCheck &+= n
        case .oversize: oversize &+= n
        }
    }

    public subscript(_ c: StatsDDropCause) -> UInt64 {
        switch c {
        case .name: return name
        case .value: return value
        case .type: return type
        case .negative: return negative
        case .sampleRate: return sampleRate
        case .tags: return tags
        case .timestamp: return timestamp
        case .field: return field
        case .event: return event
        case .serviceCheck: return serviceCheck
        case .oversize: return oversize
        }
    }

    public var total: UInt64 { StatsDDropCause.allCases.reduce(0) { $0 &+ self[$1] } }
}

/// What the parser saw besides metric lines, and where metric lines went.
/// Monotonic counters.
public struct StatsDCounters: Sendable, Equatable {
    /// Datagrams fed in, and their bytes.
    public var datagrams: UInt64 = 0
    public var bytes: UInt64 = 0
    /// Metric lines that parsed (one line may carry several values).
    public var lines: UInt64 = 0
    /// Values counted into a series (the overflow series included).
    public var values: UInt64 = 0
    /// Lines no `metric` rule matched while some exist: dropped.
    public var unmatched: UInt64 = 0
    /// Lines an `exclude` metric rule matched: dropped on purpose.
    public var excluded: UInt64 = 0
    /// Values counted into the overflow series because the window already
    /// held `statsd_max_series` series.
    public var overflow: UInt64 = 0
    /// Set members not remembered because the window already held
    /// `statsd_max_set_members` of them (the set's count is then a lower bound).
    public var setMembersRefused: UInt64 = 0
    /// Counter sums and gauge values below zero, stored as 0 (a measurement
    /// holds no negative numbers).
    public var clampedNegative: UInt64 = 0
    /// DogStatsD events and service checks: parsed, not supported, counted.
    public var events: UInt64 = 0
    public var serviceChecks: UInt64 = 0
    /// Lines with a `|c:` container id or a `|T` timestamp: parsed, skipped.
    public var containerFields: UInt64 = 0
    public var timestamps: UInt64 = 0
    /// Dropped lines by cause.
    public var drops = StatsDDropCounters()

    public init() {}
}
