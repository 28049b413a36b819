// RecordType: the one-byte type of every record, and who may send it.
//
// 0x01/0x02 are fixed for interoperability (Ping/Pong). The rest are grouped
// by purpose: 0x03 errors, 0x1x session setup and the string table, 0x2x
// data from the agent, 0x3x schedule and pattern sync, 0x4x control.
// Unassigned values are skipped by receivers (forward compatibility).

/// A record's type byte. Values outside the known set are carried as
/// `Record.unknown`.
public enum RecordType: UInt8, CaseIterable, Sendable {
    case ping = 0x01
    case pong = 0x02
    case error = 0x03
    case hello = 0x10
    case welcome = 0x11
    case stringDef = 0x12
    case stringClear = 0x13
    case dataBatch = 0x20
    case ack = 0x21
    case status = 0x22
    case interfaces = 0x23
    case scheduleRequest = 0x30
    case scheduleUnchanged = 0x31
    case schedule = 0x32
    case patternsRequest = 0x33
    case patternsUnchanged = 0x34
    case patterns = 0x35
    case controlRequest = 0x40
    case controlResponse = 0x41
    // Declared last so `allCases` keeps its older order (seed corpora).
    case effectiveConfig = 0x24

    /// Where a record type may appear.
    public enum Placement: Sendable {
        /// Transport messages, either direction.
        case either
        /// Transport messages from the agent (client).
        case fromAgent
        /// Transport messages from the collector (server).
        case fromCollector
        /// Only in handshake message 1 (Hello) or 2 (Welcome, Error).
        case handshake
    }

    public var placement: Placement {
        switch self {
        case .ping, .pong, .error, .stringDef, .stringClear: return .either
        case .hello, .welcome: return .handshake
        case .dataBatch, .status, .interfaces, .effectiveConfig, .scheduleRequest, .patternsRequest, .controlResponse:
            return .fromAgent
        case .ack, .scheduleUnchanged, .schedule, .patternsUnchanged, .patterns, .controlRequest: return .fromCollector
        }
    }
}

/// A record body with a fixed type byte and a codec. Decoders read the
/// fields they know and ignore bytes after them, so a later version can
/// append fields without breaking older receivers.
public protocol RecordBody: Equatable, Sendable {
    static var recordType: RecordType { get }
    func encode(into w: inout WireWriter)
    static func decode(from r: inout WireReader, limits: WireLimits) throws(WireError) -> Self
}
