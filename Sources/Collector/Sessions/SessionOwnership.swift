// SessionOwnership: what the sessions tell whoever keeps track of which
// collector holds which agent (ClusterNode) — an agent's session here began
// or ended — without knowing who that is, as the API sees the sessions only
// through ConnectedAgents.
//
// Thread: loop thread.

protocol SessionOwnership: AnyObject {
    /// An agent's identity was accepted and its Welcome is about to go out:
    /// `done` once its ownership is recorded (or that failed, to be tried
    /// again), so that by the time the agent can be seen connected its
    /// owner is known to every collector.
    func claimAtHandshake(agent: String, done: @escaping () -> Void)
    /// An agent's handshake completed here (a newer session of an agent
    /// already here counts again).
    func sessionStarted(agent: String)
    /// False when the agent's session was taken by another collector (a
    /// stale session closed here): its end must not write the agent's state.
    func sessionEnded(agent: String) -> Bool
    /// The agent was forgotten (its row deleted) elsewhere while its session
    /// is here: the session is about to close, and its end must not write
    /// the agent back; its lease is released now.
    func sessionForgotten(agent: String)
    /// Of `keys`, the values the agent already accepted through a
    /// configuration update relayed from another collector — whose stored
    /// change then comes back through the change log and is not pushed
    /// again. Taken once.
    func takeRelayedConfig(agent: String, keys: [String]) -> [String: String]
}
