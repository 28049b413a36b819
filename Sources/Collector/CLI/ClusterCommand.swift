// ClusterCommand: `vigil-collector cluster status` — the collectors sharing
// the configured database (`store`, `postgresql_url`), read from it like
// `keys list`: each one's heartbeat age, live or dead (no heartbeat within
// a lease's length), established sessions, leases held, loop lag p99,
// version and addresses. On SQLite the database is one collector's: it
// prints that one (its collector_id), with no figures, since only the
// running process knows them (GET /api/v1/cluster shows them).
import CollectorStore
import Reactor

enum ClusterCommand {
    static func status(settings: CollectorSettings) -> Int32 {
        KeysCommand.withStore(settings) { store, done in
            guard store.isShared else {
                let id = ClusterNode.collectorID(configured: settings.collectorID, hostName: CollectorServer.hostName(),
                                                 listen: settings.listen.description)
                print("store sqlite: one collector")
                print("COLLECTOR  \(id)  (data_dir \(settings.dataDir))")
                return done(0)
            }
            store.clusterMembers { result in
                switch result {
                case .failure(let e):
                    CollectorCommand.printError("vigil-collector: reading the cluster: \(e)")
                    done(CollectorCommand.exitFailure)
                case .success(let members):
                    print(render(members), terminator: "")
                    done(0)
                }
            }
        }
    }

    /// One line per collector under a header; a line of totals.
    static func render(_ members: [ClusterMember]) -> String {
        let header = ["COLLECTOR", "STATE", "HEARTBEAT_AGE_S", "SESSIONS", "LEASES", "LAG_P99_MS", "VERSION", "LISTEN", "HTTP"]
        var rows = [header]
        for m in members {
            let age = Double(m.heartbeatAgeMs) / 1000
            rows.append([m.presence.id, ClusterNode.isLive(m) ? "live" : "dead", String(format1(age)), String(m.presence.sessions),
                         String(m.leasesHeld), format1(Double(m.presence.lagP99Us) / 1000), m.presence.version,
                         m.presence.listen, m.presence.httpListen])
        }
        var widths = [Int](repeating: 0, count: header.count)
        for r in rows { for (i, c) in r.enumerated() { widths[i] = max(widths[i], c.count) } }
        var out = ""
        for r in rows {
            out += r.enumerated().map { i, c in i == r.count - 1 ? c : c + String(repeating: " ", count: widths[i] - c.count) }
                .joined(separator: "  ") + "\n"
        }
        let live = members.filter(ClusterNode.isLive)
        out += "\(live.count) live, \(members.count - live.count) dead; \(live.reduce(0) { $0 + $1.presence.sessions }) sessions, "
            + "\(members.reduce(0) { $0 + $1.leasesHeld }) leases (lease \(ClusterNode.leaseMs / 1000) s)\n"
        return out
    }

    private static func format1(_ v: Double) -> String {
        let tenths = Int((v * 10).rounded())
        return "\(tenths / 10).\(abs(tenths % 10))"
    }
}
