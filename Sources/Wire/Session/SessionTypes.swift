// The vocabulary shared by ClientSession and ServerSession: limits, events,
// states, errors, counters and close reasons.
import Reactor

/// Why a session ended. One reason per session; the owner adds it to a
/// `CloseReasonCounts`. The first group is decided by the session itself,
/// the second by its owner (the I/O layer) through `close(_:)`.
public enum CloseReason: UInt8, CaseIterable, Sendable, CustomStringConvertible {
    case badPreamble = 1
    case unknownProject
    case badFrameLength
    case handshakeFailed
    case badHandshakePayload
    case decryptFailed
    case badVarint
    case truncatedRecord
    case recordTooLarge
    case batchTooLarge
    case malformedRecord
    case unexpectedRecord
    case stringTableOverflow
    case nonceExhausted
    case rejected
    case peerError
    case outboundOverflow
    // Decided by the owner.
    case local
    case peerClosed
    case ioError
    case handshakeTimeout
    case idleTimeout
    // Decided by the session (appended, so earlier raw values stay).
    /// A version-1 (NNpsk0) agent, told to upgrade.
    case outdatedProtocol
    // Decided by the owner (appended).
    /// The access key the session authenticated with was revoked.
    case keyRevoked

    public var description: String {
        switch self {
        case .badPreamble: return "bad_preamble"
        case .unknownProject: return "unknown_project"
        case .badFrameLength: return "bad_frame_length"
        case .handshakeFailed: return "handshake_failed"
        case .badHandshakePayload: return "bad_handshake_payload"
        case .decryptFailed: return "decrypt_failed"
        case .badVarint: return "bad_varint"
        case .truncatedRecord: return "truncated_record"
        case .recordTooLarge: return "record_too_large"
        case .batchTooLarge: return "batch_too_large"
        case .malformedRecord: return "malformed_record"
        case .unexpectedRecord: return "unexpected_record"
        case .stringTableOverflow: return "string_table_overflow"
        case .nonceExhausted: return "nonce_exhausted"
        case .rejected: return "rejected"
        case .peerError: return "peer_error"
        case .outboundOverflow: return "outbound_overflow"
        case .local: return "local"
        case .peerClosed: return "peer_closed"
        case .ioError: return "io_error"
        case .handshakeTimeout: return "handshake_timeout"
        case .idleTimeout: return "idle_timeout"
        case .outdatedProtocol: return "outdated_protocol"
        case .keyRevoked: return "key_revoked"
        }
    }

    /// The close reason for a record decoding failure.
    public init(_ error: WireError) {
        switch error {
        case .truncated: self = .truncatedRecord
        case .badVarint: self = .badVarint
        case .recordTooLarge: self = .recordTooLarge
        case .batchTooLarge: self = .batchTooLarge
        case .limitExceeded(let field, _) where field.hasPrefix("string_table"): self = .stringTableOverflow
        case .limitExceeded, .malformed: self = .malformedRecord
        }
    }
}

/// Sessions closed, by reason (for a collector's or load generator's
/// metrics). A value type; one owner.
public struct CloseReasonCounts: Sendable {
    private var counts = [UInt64](repeating: 0, count: 256)
    public init() {}
    public mutating func add(_ reason: CloseReason) { counts[Int(reason.rawValue)] &+= 1 }
    public subscript(reason: CloseReason) -> UInt64 { counts[Int(reason.rawValue)] }
    public var total: UInt64 { counts.reduce(0, &+) }
    /// Non-zero counts, in declaration order.
    public var nonZero: [(CloseReason, UInt64)] {
        CloseReason.allCases.compactMap { self[$0] > 0 ? ($0, self[$0]) : nil }
    }
}

/// Per-session traffic and drop counters.
public struct SessionCounters: Equatable, Sendable {
    public var bytesIn: UInt64 = 0
    public var bytesOut: UInt64 = 0
    public var messagesIn: UInt64 = 0
    public var messagesOut: UInt64 = 0
    public var recordsIn: UInt64 = 0
    public var recordsOut: UInt64 = 0
    /// Records of a type this version does not know, skipped.
    public var unknownRecords: UInt64 = 0
    public var pingsAnswered: UInt64 = 0
    public var stringDefs: UInt64 = 0
    public init() {}
}

/// Session configuration. Memory per session is bounded by
/// `maxHandshakeLength` or 65537 (frame reassembly) + 65519 (pending
/// plaintext) + `maxOutboundBytes` + `wire.maxStringTableBytes`.
public struct SessionLimits: Equatable, Sendable {
    public var wire: WireLimits
    /// Largest accepted handshake message (bounds what an unauthenticated
    /// peer can make the server buffer).
    public var maxHandshakeLength: Int
    /// Cap on sealed bytes waiting in `outbound`; beyond it `send` refuses
    /// with `.outboundFull`.
    public var maxOutboundBytes: Int
    /// Largest plaintext per transport message (≤ 65519).
    public var maxMessagePlaintext: Int

    public static let absoluteMaxMessagePlaintext = FrameDecoder.maxFrameLength - CipherState.tagLength

    public init(wire: WireLimits = .default, maxHandshakeLength: Int = 16384, maxOutboundBytes: Int = 4 << 20,
                maxMessagePlaintext: Int = SessionLimits.absoluteMaxMessagePlaintext) {
        self.wire = wire
        self.maxHandshakeLength = min(max(NoiseHandshake.message3Overhead + 256, maxHandshakeLength), FrameDecoder.maxFrameLength)
        self.maxOutboundBytes = max(FrameDecoder.maxFrameLength + FrameDecoder.headerLength, maxOutboundBytes)
        self.maxMessagePlaintext = min(max(64, maxMessagePlaintext), SessionLimits.absoluteMaxMessagePlaintext)
    }
}

extension SessionLimits {
    /// The Welcome.Limits that announce these limits to an agent, so the
    /// agent's sender never exceeds what this side's receiver accepts.
    public func announced(maxInFlightBatches: UInt32, pingIntervalMs: UInt32, idleTimeoutMs: UInt32) -> Welcome.Limits {
        Welcome.Limits(maxRecordLength: UInt32(wire.maxRecordLength), maxBatchItems: UInt32(clamping: wire.maxBatchItems),
                       maxStringID: wire.maxStringID, maxInFlightBatches: maxInFlightBatches,
                       pingIntervalMs: pingIntervalMs, idleTimeoutMs: idleTimeoutMs,
                       maxStringTableBytes: UInt32(clamping: wire.maxStringTableBytes))
    }
}

/// What `feed` (and the server's `provideKeys`/`unknownProject`) reports.
public enum SessionEvent: Equatable, Sendable {
    /// Server: the preamble names `project`. The owner answers with
    /// `provideKeys(_:_:)` or `unknownProject(_:)`, now or on a later
    /// iteration; message 1 is read meanwhile.
    case needKeys(project: String)
    /// Server: message 3 authenticated (the agent's static key is
    /// `peerStaticKey`). `nil` is a probe. The owner must
    /// call `accept(_:)` or `reject(_:)` (now or later).
    case hello(Hello?)
    /// Client: the collector's Welcome received; the session is established.
    case welcome(Welcome)
    /// A transport record for the owner. Ping, StringDef and StringClear
    /// are handled inside the session and not reported.
    case record(Record)
    /// The session closed itself. Write what is left in `outbound` (it may
    /// hold a final Error record), then close the connection.
    case closed(CloseReason)
}

/// Where a session is in its life.
public enum SessionState: Equatable, Sendable {
    case preamble          // server: waiting for the preamble
    case idle              // client: `start()` not called yet
    case handshake         // waiting for message 1 and its keys (server) or message 2 (client)
    case awaitingAccept    // server: Hello reported, accept/reject pending
    case established
    case closed(CloseReason)
}

/// Why `send`, `flush`, `accept` or `start` refused.
public enum SessionError: Error, Equatable, Sendable {
    case notEstablished
    case closed
    /// The encoded record exceeds the record or message limit.
    case recordTooLarge(Int)
    /// A DataBatch with more items than the limit.
    case batchTooLarge(Int)
    /// `outbound` is at `maxOutboundBytes`; write it out and retry.
    case outboundFull
    /// Probe sessions carry only Ping/Pong.
    case probeSession
    /// The record type is not sent by this side (or only in a handshake).
    case wrongDirection
    /// The string table is full; call `clearStrings()` between batches.
    case stringTableFull
    case noise(NoiseError)
}
