// SQLiteStore as a ClusterStore: an embedded database belongs to one
// collector, so the cluster is that collector alone. Every claim is the
// agent's only one (epoch 1), no other collector ever owns an agent or
// takes a session away, and there are no commands to relay (a request for
// an agent without a session here answers as a disconnected agent).
// `clusterMembers` is empty: the collector shows itself from memory.
//
// Loop thread; completions on a later iteration, like every store call.
import Reactor

extension SQLiteStore: ClusterStore {
    public var isShared: Bool { false }

    public func heartbeat(_ presence: CollectorPresence, leaseMs: Int64, acknowledging handled: [SessionLease],
                          completion: @escaping (Result<HeartbeatAnswer, StoreError>) -> Void) {
        answer(completion, isClosed ? .failure(.closed) : .success(HeartbeatAnswer(lost: [], pendingCommands: 0)))
    }

    public func claimAgent(_ agent: String, collector: String, leaseMs: Int64,
                           completion: @escaping (Result<Int64, StoreError>) -> Void) {
        answer(completion, isClosed ? .failure(.closed) : .success(1))
    }

    public func releaseAgent(_ lease: SessionLease, collector: String, completion: @escaping (Result<Void, StoreError>) -> Void) {
        answer(completion, isClosed ? .failure(.closed) : .success(()))
    }

    public func markUnheldAgentsNotVisible(at: Int64, completion: @escaping (Result<Int, StoreError>) -> Void) {
        // Nobody else holds an agent of this database.
        markAllAgentsNotVisible(at: at, completion: completion)
    }

    public func reapExpiredLeases(completion: @escaping (Result<Int, StoreError>) -> Void) {
        answer(completion, isClosed ? .failure(.closed) : .success(0))
    }

    public func agentOwners(_ agents: [String], completion: @escaping (Result<[String: AgentOwner], StoreError>) -> Void) {
        answer(completion, isClosed ? .failure(.closed) : .success([:]))
    }

    public func clusterMembers(completion: @escaping (Result<[ClusterMember], StoreError>) -> Void) {
        answer(completion, isClosed ? .failure(.closed) : .success([]))
    }

    public func submitControlCommand(_ command: ControlCommand, timeoutMs: Int64,
                                     completion: @escaping (Result<Int64, StoreError>) -> Void) {
        answer(completion, .failure(.invalid("one collector on SQLite: no control commands to relay")))
    }

    public func takeControlCommands(owner: String, completion: @escaping (Result<[ControlCommand], StoreError>) -> Void) {
        answer(completion, isClosed ? .failure(.closed) : .success([]))
    }

    public func finishControlCommand(id: Int64, result: String, message: String, errors: String, notifyAsker: Bool,
                                     completion: @escaping (Result<ControlCommand, StoreError>) -> Void) {
        answer(completion, .failure(.notFound("control command \(id)")))
    }

    public func controlCommand(id: Int64, completion: @escaping (Result<ControlCommand, StoreError>) -> Void) {
        answer(completion, .failure(.notFound("control command \(id)")))
    }

    public func listenControl(collector: String, notified: @escaping (String) -> Void,
                              listening: @escaping () -> Void) -> ControlListening? { nil }

    private func answer<T>(_ completion: @escaping (Result<T, StoreError>) -> Void, _ result: Result<T, StoreError>) {
        loop.defer { completion(result) }
    }
}
