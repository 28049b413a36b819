// The cluster as the API shows it: `GET /api/v1/cluster` (every collector
// on this database, its heartbeat's age, live or dead, sessions, leases
// held, loop lag, version), the agents' owners for the agent endpoints, and
// the way a control request takes to an agent — its session here, or the
// collector that holds it (ControlRelay), with the same answers either way.
//
// Thread: loop thread.
import CollectorStore
import HTTPServer
import JSON
import Reactor
import Wire

/// How a control request reaches an agent.
enum ControlPath {
    /// Its session is on this collector.
    case local(ConnectedAgent)
    /// Another collector holds it (lease running).
    case remote(AgentOwner)
}

extension APIHandler {
    /// The live owners of `ids` (none on a store of one collector); a store
    /// failure answers the request.
    func agentOwners(_ ids: [String], _ r: CountingResponder, _ done: @escaping ([String: AgentOwner]) -> Void) {
        guard let cluster, cluster.store.isShared else { return done([:]) }
        let elsewhere = ids.filter { manager.session(forAgent: $0) == nil }
        guard !elsewhere.isEmpty else { return done([:]) }
        cluster.store.agentOwners(elsewhere) { result in
            switch result {
            case .failure(let e): r.fail(.store(e))
            case .success(let owners): done(owners)
            }
        }
    }

    /// The way to `id`'s session: here, through the collector holding its
    /// lease, or nil (no session anywhere: as a disconnected agent).
    func controlPath(_ id: String, _ r: CountingResponder, _ done: @escaping (ControlPath?) -> Void) {
        if let s = manager.session(forAgent: id) { return done(.local(s)) }
        guard let cluster, cluster.store.isShared else { return done(nil) }
        cluster.store.agentOwners([id]) { [self] result in
            switch result {
            case .failure(let e):
                r.fail(.store(e))
            case .success(let owners):
                if let s = manager.session(forAgent: id) { return done(.local(s)) }   // connected meanwhile
                guard let owner = owners[id], owner.collector != cluster.id else { return done(nil) }
                done(.remote(owner))
            }
        }
    }

    /// Sends a control request along `path`; `completion` gets the outcome
    /// as from a local request. A store failure on the way answers 503.
    func sendControl(_ path: ControlPath, agent: String, kind: ControlKind, values: [KeyValue], timeout: Double,
                     audit: AuditContext, _ r: CountingResponder, completion: @escaping (ControlOutcome) -> Void) {
        switch path {
        case .local(let session):
            manager.control.send(to: session, kind: kind, values: values, timeout: timeout, audit: audit, completion: completion)
        case .remote(let owner):
            guard let cluster else { return completion(.disconnected) }
            cluster.relay.send(agent: agent, owner: owner, kind: kind, values: values, timeout: timeout, audit: audit) { result in
                switch result {
                case .success(let outcome): completion(outcome)
                case .failure(let e): r.fail(.store(e))
                }
            }
        }
    }

    // MARK: GET /api/v1/cluster

    func clusterStatus(_ r: CountingResponder) {
        guard let cluster else { return r.fail(APIError(503, "starting", .null)) }
        cluster.members { result in
            r.result(result) { members in
                .object([("collector", .string(cluster.id)), ("shared", .bool(cluster.store.isShared)),
                         ("lease_ms", .int(ClusterNode.leaseMs)),
                         ("collectors", .array(members.map { m in
                             .object([("id", .string(m.presence.id)), ("live", .bool(ClusterNode.isLive(m))),
                                      ("heartbeat", .int(m.heartbeatMs)), ("heartbeat_age_ms", .int(m.heartbeatAgeMs)),
                                      ("started", .int(m.presence.startedMs)), ("listen", .string(m.presence.listen)),
                                      ("http_listen", .string(m.presence.httpListen)), ("sessions", .int(m.presence.sessions)),
                                      ("leases", .int(m.leasesHeld)), ("lag_p99_ms", .number(Double(m.presence.lagP99Us) / 1000)),
                                      ("version", .string(m.presence.version))])
                         }))])
            }
        }
    }
}
