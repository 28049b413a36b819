// AgentSessionContext: everything an AgentSession may ask of the collector
// around it — the whole seam between one connection and the rest. A session
// holds this, not the SessionManager: it asks for keys, a handshake turn, an
// answer to a Hello, input budget and deadlines, and it hands over what the
// agent sent; counters, the store, the deadline wheel and control routing
// stay on the other side. SessionManager is the implementation.
//
// Thread: loop thread, like the sessions.
import Reactor
import Wire

/// The collector's answer to an authenticated Hello.
enum Admission {
    /// Accept: the first transport message carries this Welcome.
    case welcome(Welcome)
    /// Refuse: the first transport message carries this Error, and the handshake counts as
    /// failed for `failure`.
    case refuse(ErrorRecord, HandshakeFailure)
}

/// The registry's answer about an agent's identity.
enum IdentityAnswer {
    case accepted
    case refused(ErrorRecord, HandshakeFailure)
}

protocol AgentSessionContext: AnyObject {
    var loop: EventLoop { get }
    /// The Wire session's bounds (handshake size, string table, outbound).
    var sessionLimits: SessionLimits { get }
    /// The installation's static key pair (`data_dir/collector_key`).
    var collectorKey: StaticKeyPair { get }
    /// Timeouts and `max_clients` in force (they change on SIGHUP).
    var settings: SessionSettings { get }

    // MARK: deadlines (one wheel for every session)

    func setDeadline(_ s: AgentSession, at time: Double)
    func clearDeadline(_ s: AgentSession)

    // MARK: handshake

    /// The session's Wire session asked for `project`'s keys: answer with
    /// `s.keysArrived(_:)` on a later iteration.
    func lookupKeys(for s: AgentSession, project: String)
    /// Whether `s` may try its keys in this iteration. When not, it waits
    /// and `s.handshakeTurn()` is called on a later iteration.
    func mayHandshake(_ s: AgentSession) -> Bool
    /// Whether `s`, message 2 sent, may read (and so finish its handshake
    /// on message 3) in this iteration. When not, it waits and
    /// `s.resumeInput()` is called on a later iteration.
    func mayFinishHandshake(_ s: AgentSession) -> Bool
    /// Message 3 proved `key` for the Hello's agent id: enroll it or check
    /// it against the registry; answer with `s.identityAnswered(_:)` on a
    /// later iteration. Nothing about the agent is written before this.
    func verifyIdentity(_ s: AgentSession, agentID: String, key: Key32)
    /// What to answer an authenticated Hello (nil: a probe).
    func admit(_ s: AgentSession, hello: Hello?, revokedKey: Bool) -> Admission
    func handshakeFailed(_ s: AgentSession, _ failure: HandshakeFailure)
    func sessionEstablished(_ s: AgentSession, hello: Hello?)

    // MARK: established

    /// Whether an established session may read more input in this
    /// iteration. When not, it waits and `s.resumeInput()` is called later.
    func mayRead(_ s: AgentSession) -> Bool
    /// `bytes` read from the connection and taken by the Wire session.
    func didRead(_ s: AgentSession, bytes: Int)
    /// A record the agent sent.
    func received(_ record: Record, from s: AgentSession)
    /// `bytes` handed to the connection's write queue.
    func didWrite(_ s: AgentSession, bytes: Int)
    /// The connection sent bytes it held queued (`s.outboundHeld` > 0).
    func didSend(_ s: AgentSession)
    /// The connection refused a write (its queue is full).
    func writeRefused(_ s: AgentSession)
    /// The session pinged a silent agent.
    func pinged(_ s: AgentSession)

    // MARK: the end

    /// An established session is closing, for `reason`.
    func sessionEnded(_ s: AgentSession, reason: CloseReason)
    /// The connection is gone (every session ends here exactly once).
    func sessionFinished(_ s: AgentSession)
}
