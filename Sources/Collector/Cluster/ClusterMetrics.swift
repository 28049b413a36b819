// ClusterMetrics: the cluster families of /metrics (docs/API.md, "Health and
// metrics") — heartbeats, leases, claims, stale sessions closed, control
// relayed either way and the LISTEN connection — rendered from ClusterNode
// and ControlRelay on each scrape. Present on SQLite too (a cluster of one:
// leases count the sessions, nothing is relayed).
//
// Thread: loop thread (the scrape).
import Reactor

enum ClusterMetrics {
    static func render(_ c: ClusterNode, into p: inout PrometheusText) {
        p.family("vigil_cluster_heartbeats_total", "counter", "Cluster heartbeats (collector row and lease renewal) by result.")
        p.sample("vigil_cluster_heartbeats_total", ["result": "ok"], c.heartbeats)
        p.sample("vigil_cluster_heartbeats_total", ["result": "failed"], c.heartbeatFailures)
        p.single("vigil_cluster_heartbeat_age_seconds", "gauge", "Time since the last heartbeat that committed (-1: none yet).",
                 c.lastHeartbeatAt == 0 ? -1 : Clock.monotonic() - c.lastHeartbeatAt)
        p.single("vigil_cluster_id_conflicts_total", "counter",
                 "Heartbeats that found this collector id's row held by another live instance (two processes with one collector_id).",
                 Double(c.idConflicts))
        p.single("vigil_cluster_leases", "gauge", "Agent sessions this collector holds a lease for.", Double(c.leasesHeld))
        p.family("vigil_cluster_claims_total", "counter", "Agent claims at handshake (epoch + 1) by result.")
        p.sample("vigil_cluster_claims_total", ["result": "sent"], c.claims)
        p.sample("vigil_cluster_claims_total", ["result": "failed"], c.claimFailures)
        p.single("vigil_cluster_stale_sessions_closed_total", "counter",
                 "Sessions closed because another collector claimed their agent with a newer epoch.", Double(c.staleSessionsClosed))
        p.single("vigil_cluster_forgotten_sessions_closed_total", "counter",
                 "Sessions closed because their agent was forgotten through another collector (the change log).",
                 Double(c.forgottenSessionsClosed))
        p.single("vigil_cluster_leases_reaped_total", "counter",
                 "Expired leases (their collector stopped renewing them) this collector found; their agents became not_visible.",
                 Double(c.leasesReaped))
        let r: ControlRelay = c.relay
        p.family("vigil_cluster_relayed_total", "counter",
                 "Control requests relayed through the database: out (asked here, agent elsewhere), in (run here for another collector).")
        p.sample("vigil_cluster_relayed_total", ["direction": "out"], r.relayedOut)
        p.sample("vigil_cluster_relayed_total", ["direction": "in"], r.relayedIn)
        p.family("vigil_cluster_relayed_results_total", "counter", "Relayed requests asked here, by the outcome they got.")
        for result in ControlOutcome.auditResults {
            p.sample("vigil_cluster_relayed_results_total", ["result": result], r.outcomes[result] ?? 0)
        }
        p.single("vigil_cluster_relayed_in_flight", "gauge", "Relayed requests asked here waiting for their answer.", Double(r.inFlight))
        p.single("vigil_cluster_notifications_total", "counter", "NOTIFYs received on this collector's control channel.",
                 Double(r.notifications))
        p.single("vigil_cluster_listening", "gauge", "1 while the LISTEN on this collector's control channel is in place (0 on SQLite).",
                 r.isListening ? 1 : 0)
        p.single("vigil_cluster_listen_reconnects_total", "counter", "LISTEN connections made again after one was lost.",
                 Double(r.listenReconnects))
    }
}
