// Agents as the operator sees them: identity, state with its history, the
// latest status. Plain values.

/// The operator-visible state of an agent (issue: collector, "Agent state").
public enum AgentState: String, Sendable, CaseIterable {
    /// No session.
    case notVisible = "not_visible"
    /// A session without a first status yet.
    case connecting
    case stopped
    case capturing
    /// The agent rejected its configuration; see the state's messages.
    case wrongConfiguration = "wrong_configuration"
}

/// What a session learns at handshake.
public struct AgentHello: Sendable {
    public var id: String
    public var projectId: Int64
    public var name: String
    public var hostname: String
    public var version: String
    public var bootId: String
    public var at: Int64
    /// `agent` (a vigil-agent's session) or `upload` (the virtual agent of a project's uploads).
    public var mode: String

    public init(id: String, projectId: Int64, name: String, hostname: String, version: String, bootId: String, at: Int64,
                mode: String = AgentRecord.agentMode) {
        self.id = id; self.projectId = projectId; self.name = name; self.hostname = hostname
        self.version = version; self.bootId = bootId; self.at = at; self.mode = mode
    }
}

public struct AgentRecord: Equatable, Sendable {
    public var id: String
    public var projectId: Int64
    public var project: String
    public var name: String
    public var hostname: String
    public var version: String
    public var bootId: String
    public var state: AgentState
    public var stateMessages: [String]
    public var stateSince: Int64
    public var firstSeen: Int64
    public var lastSeen: Int64
    /// The latest status snapshot (JSON text) and its time.
    public var status: String?
    public var statusTs: Int64?
    /// `agent` or `upload` (AgentHello.mode).
    public var mode: String = AgentRecord.agentMode

    public static let agentMode = "agent"
    public static let uploadMode = "upload"
}

/// One entry of an agent's state history.
public struct StateChange: Equatable, Sendable {
    public var ts: Int64
    public var state: AgentState
    public var messages: [String]
    /// The row's id in the store: with `ts`, its list position.
    public var id: Int64 = 0
}

/// One stored status snapshot.
public struct StatusRecord: Equatable, Sendable {
    public var ts: Int64
    public var json: String
    /// The row's id in the store: with `ts`, its list position.
    public var id: Int64 = 0
}

// Messages are stored one per line; a line break inside a message would
// split it, so it becomes a space.
enum MessageList {
    static func encode(_ messages: [String]) -> String {
        messages.map { String($0.map { $0 == "\n" || $0 == "\r" || $0 == "\r\n" ? " " : $0 }) }.joined(separator: "\n")
    }

    static func decode(_ text: String) -> [String] {
        text.isEmpty ? [] : text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
    }
}
