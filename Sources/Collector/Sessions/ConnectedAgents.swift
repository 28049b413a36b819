// ConnectedAgents: the session layer as the HTTP API sees it — a connected
// agent's live state, a target for control requests, and the pushes an
// operator's change starts. The API depends on the sessions only through
// this; nothing in Sessions knows the API. SessionManager implements it.
//
// Thread: loop thread.
import CollectorStore
import Wire

/// A connected agent's session, as the API may use it.
protocol ConnectedAgent: ControlTarget {
    /// The operator's view of the agent, current to its last record.
    var state: CollectorStore.AgentState { get }
    /// The configuration the agent last reported running (non-secret
    /// schema keys only), nil before its first report.
    var reportedConfig: [String: ConfigEntry]? { get }
}

protocol ConnectedAgents: AnyObject {
    /// The installation's static public key (the third part of access keys).
    var collectorPublicKey: Key32 { get }
    /// A key was revoked through the API: its sessions close now.
    func keyRevoked(_ keyID: Int64)
    /// The session of a connected agent, nil when it has none.
    func session(forAgent id: String) -> ConnectedAgent?
    /// Control requests to agents, with audit.
    var control: ControlRouter { get }
    /// Monitor definitions as agents get them.
    var schedules: ScheduleDirectory { get }
    /// A new rule set committed: every connected agent of the project gets it.
    func pushPatterns(project: String, set: PatternSet)
    /// New monitor definitions committed: every connected agent of the
    /// project gets its schedule.
    func pushSchedules(project: String, stored: MonitorDefinitions)
    /// Project-level configuration committed: each connected agent of the
    /// project gets the keys it does not override; the ids it goes to.
    func pushProjectConfig(project: String, values: [KeyValue]) -> [String]
}
