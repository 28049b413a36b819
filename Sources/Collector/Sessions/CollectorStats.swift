// CollectorStats: what the session layer did, for /metrics and the periodic
// self-report. Every refusal and drop is counted under its cause.
import Reactor
import Wire

/// Why a connection did not become a session. Each failed handshake is
/// counted under exactly one of these (`vigil_handshake_failures_total`).
public enum HandshakeFailure: Int, CaseIterable, Sendable, CustomStringConvertible {
    /// The first bytes were not a Vigil preamble (a port scan, an HTTP client).
    case badPreamble
    /// No project of that name.
    case unknownProject
    /// Message 1 did not decrypt with any key of the project.
    case wrongKey
    /// Message 1 decrypted with a key that was revoked.
    case revokedKey
    /// `max_clients` sessions were open: refused with an Error record.
    case capacity
    /// So far over `max_clients` that even the refusal was not offered:
    /// closed at accept.
    case overload
    case handshakeTimeout
    /// Message 1's frame length was out of bounds.
    case badFrame
    /// Message 1 decrypted but its payload was not a Hello (or a probe).
    case badHandshakePayload
    /// The Hello had no usable agent id.
    case badHello
    /// The peer closed or reset before the handshake completed.
    case peerClosed
    case ioError
    /// The key lookup failed in the store.
    case storeError
    case shuttingDown
    /// A protocol-version-1 agent, told to upgrade.
    case outdatedAgent
    /// The agent id is enrolled with another static key.
    case agentKeyMismatch
    /// The agent id is enrolled in another project.
    case agentInOtherProject

    public var description: String {
        switch self {
        case .outdatedAgent: return "outdated_agent"
        case .agentKeyMismatch: return "agent_key_mismatch"
        case .agentInOtherProject: return "agent_in_other_project"
        case .badPreamble: return "bad_preamble"
        case .unknownProject: return "unknown_project"
        case .wrongKey: return "wrong_key"
        case .revokedKey: return "revoked_key"
        case .capacity: return "capacity"
        case .overload: return "overload"
        case .handshakeTimeout: return "handshake_timeout"
        case .badFrame: return "bad_frame"
        case .badHandshakePayload: return "bad_handshake_payload"
        case .badHello: return "bad_hello"
        case .peerClosed: return "peer_closed"
        case .ioError: return "io_error"
        case .storeError: return "store_error"
        case .shuttingDown: return "shutting_down"
        }
    }
}

/// Counters of the session layer. A value owned by `SessionManager`.
public struct CollectorStats {
    public var accepted: UInt64 = 0
    public var handshakesCompleted: UInt64 = 0
    public var probeSessions: UInt64 = 0
    public var handshakeFailures = [UInt64](repeating: 0, count: HandshakeFailure.allCases.count)
    /// Established sessions closed, by reason.
    public var sessionsClosed = CloseReasonCounts()
    /// Sessions closed because the same agent connected again.
    public var sessionsReplaced: UInt64 = 0
    /// Handshakes postponed to a later loop iteration (per-iteration budget).
    public var handshakesDeferred: UInt64 = 0
    /// Session input postponed to a later iteration (per-iteration budget).
    public var inputDeferred: UInt64 = 0
    public var keyLookups: UInt64 = 0
    public var keyLookupsShared: UInt64 = 0

    public var bytesIn: UInt64 = 0
    public var bytesOut: UInt64 = 0
    public var recordsIn: UInt64 = 0
    /// Writes the connection refused (its queue was full): the session is closed.
    public var writesRefused: UInt64 = 0

    /// Data batches received; what the store made of them (stored,
    /// duplicate, failed, rows) is counted once, in StoreStats.
    public var batchesReceived: UInt64 = 0
    public var acksSent: UInt64 = 0
    /// Batch items of a kind this version does not store, dropped.
    public var itemsUnknownDropped: UInt64 = 0
    /// Sessions whose reading paused because their in-flight window was full.
    public var windowPauses: UInt64 = 0
    /// Sessions whose reading paused because the store refused a batch as
    /// over its pending-rows bound (pushed back until it drained).
    public var storePushbacks: UInt64 = 0
    /// Batches held for an overloaded store and submitted to it again.
    public var batchesResubmitted: UInt64 = 0
    /// Sessions paused for the store now.
    public var sessionsPushedBack = 0

    public var statusRecords: UInt64 = 0
    /// Status records written to the store (at most one per session and
    /// `status_write_interval_ms`).
    public var statusWrites: UInt64 = 0
    /// Store writes that carried Statuses (many per write; `statusWrites`
    /// counts the Statuses).
    public var statusGroupWrites: UInt64 = 0
    /// Records folded into others by the per-session limits, by cause.
    public var sessionLimited = [UInt64](repeating: 0, count: SessionLimitCause.allCases.count)
    public var interfaceRecords: UInt64 = 0
    public var patternsSent: UInt64 = 0
    public var patternsUnchanged: UInt64 = 0
    public var patternsPushed: UInt64 = 0
    /// ScheduleUnchanged answers.
    public var scheduleAnswers: UInt64 = 0
    /// Schedules sent (answers and pushes; one per schedule, however many records).
    public var schedulesSent: UInt64 = 0
    /// Schedules pushed after a definitions change.
    public var schedulesPushed: UInt64 = 0
    public var pingsSent: UInt64 = 0
    /// Store writes for agent state and status that failed.
    public var stateWritesFailed: UInt64 = 0
    /// Store writes of ended sessions' final Status and `not_visible`
    /// (SessionManager+Ends.swift), and the sessions they carried: at most
    /// `sessionEndsPerSlice` per write, one write per loop iteration.
    public var sessionEndWrites: UInt64 = 0
    public var sessionEndsWritten: UInt64 = 0
    /// Time from accept to the Welcome, µs.
    public var handshakeMicros = LogHistogram()

    public init() {}

    /// Connections refused or closed by the limits on unauthenticated
    /// connections, by cause.
    public var connectionsRefused = [UInt64](repeating: 0, count: ConnectionRefusal.allCases.count)
    public mutating func refused(_ c: ConnectionRefusal) { connectionsRefused[c.rawValue] &+= 1 }
    public func refusals(_ c: ConnectionRefusal) -> UInt64 { connectionsRefused[c.rawValue] }

    public mutating func limited(_ c: SessionLimitCause) { sessionLimited[c.rawValue] &+= 1 }
    public func limits(_ c: SessionLimitCause) -> UInt64 { sessionLimited[c.rawValue] }

    public mutating func fail(_ f: HandshakeFailure) { handshakeFailures[f.rawValue] &+= 1 }
    public func failures(_ f: HandshakeFailure) -> UInt64 { handshakeFailures[f.rawValue] }
    public var totalHandshakeFailures: UInt64 { handshakeFailures.reduce(0, &+) }
}
