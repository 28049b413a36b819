// CollectorMetrics: the /metrics page — the session layer's counters and
// gauges, the store's, the loop's lag, the process, the HTTP API and the
// configuration reloads — in the Prometheus text format (PrometheusText).
// Rendered on each scrape from the live objects; nothing here keeps state.
//
// Thread: the loop thread (the scrape is an HTTP request on the loop).
import Alerts
import CollectorStore
import HTTPServer
import Reactor
import RemoteWrite
import Wire

enum CollectorMetrics {
    /// The histograms behind the summaries, by family name, for
    /// SummaryWindows' copies.
    static func histograms(manager: SessionManager, store: any OperatedStore, loop: EventLoop) -> [String: LogHistogram] {
        ["vigil_handshake_seconds": manager.stats.handshakeMicros, "vigil_store_commit_seconds": store.stats.commitMicros,
         "vigil_store_transaction_seconds": store.stats.transactionMicros, "vigil_loop_lag_seconds": loop.lag]
    }

    static func render(manager: SessionManager, store: any OperatedStore, loop: EventLoop, api: APIHandler?, http: [HTTPServer] = [], windows: SummaryWindows,
                       reloads: (applied: UInt64, rejected: UInt64), uptime: Double, remoteWrite: RemoteWriteFeed? = nil,
                       alerts: AlertEvaluator? = nil, notifier: AlertNotifier? = nil, heap: HeapGauge? = nil, cluster: ClusterNode? = nil) -> String {
        var p = PrometheusText()
        let s = manager.stats
        let st = store.stats
        /// Quantiles over the recent window, _sum and _count since start.
        func summary(_ name: String, _ help: String, _ micros: LogHistogram) {
            p.summary(name, help + " Quantiles: the last \(SummaryWindows.lengthText).", total: micros,
                      recent: windows.recent(name, micros), perSecond: 1e6)
        }

        p.family("vigil_sessions", "gauge", "Agent connections by phase.")
        p.sample("vigil_sessions", ["phase": "handshake"], manager.handshaking)
        p.sample("vigil_sessions", ["phase": "established"], manager.established)
        p.sample("vigil_sessions", ["phase": "closing"], manager.closing)
        p.family("vigil_agents", "gauge", "Known agents by project and state (not_visible: no session; probe sessions excluded).")
        for (project, counts) in manager.agentCountsByProject().sorted(by: { $0.key < $1.key }) {
            for st in CollectorStore.AgentState.allCases {
                p.sample("vigil_agents", ["project": project, "state": st.rawValue], counts[st] ?? 0)
            }
        }
        let spools = manager.agentSpoolsByProject().sorted { $0.key < $1.key }
        p.family("vigil_agent_spool_batches", "gauge", "Unacknowledged batches in the connected agents' disk spools, by project.")
        for (project, f) in spools { p.sample("vigil_agent_spool_batches", ["project": project], f.batches) }
        p.family("vigil_agent_spool_bytes", "gauge", "Bytes of the connected agents' disk spools, by project.")
        for (project, f) in spools { p.sample("vigil_agent_spool_bytes", ["project": project], f.bytes) }
        p.family("vigil_agent_spool_oldest_age_seconds", "gauge", "Age of the oldest unacknowledged spooled batch among the connected agents, by project.")
        for (project, f) in spools { p.sample("vigil_agent_spool_oldest_age_seconds", ["project": project], Double(f.oldestAgeMs) / 1000) }
        p.family("vigil_agent_spool_dropped", "gauge", "Spool drops the connected agents report (totals since each agent started), by project and cause.")
        for (project, f) in spools {
            for (cause, n) in [("corrupt", f.corrupt), ("full", f.droppedFull), ("disk_full", f.droppedDiskFull), ("unwritten", f.unwritten)] {
                p.sample("vigil_agent_spool_dropped", ["project": project, "cause": cause], n)
            }
        }
        p.single("vigil_probe_sessions", "gauge", "Established probe sessions (no agent identity).", Double(manager.probes))
        p.single("vigil_max_clients", "gauge", "The max_clients setting in force.", Double(manager.settings.maxClients))

        p.single("vigil_connections_accepted_total", "counter", "TCP connections accepted on the session port.", Double(s.accepted))
        p.family("vigil_connections_refused_total", "counter",
                 "Connections refused or closed before their handshake by the limits on unauthenticated connections, by cause.")
        for c in ConnectionRefusal.allCases { p.sample("vigil_connections_refused_total", ["cause": c.description], s.refusals(c)) }
        p.single("vigil_outbound_queued_bytes", "gauge", "Bytes queued to send to agents across all sessions.",
                 Double(manager.outbound.total))
        p.single("vigil_outbound_budget_bytes", "gauge", "The session_outbound_budget_bytes setting in force.",
                 Double(manager.settings.outboundBudget))
        p.single("vigil_handshakes_total", "counter", "Handshakes completed (sessions established).", Double(s.handshakesCompleted))
        p.family("vigil_handshake_failures_total", "counter", "Connections that did not become a session, by reason.")
        for f in HandshakeFailure.allCases { p.sample("vigil_handshake_failures_total", ["reason": f.description], s.failures(f)) }
        summary("vigil_handshake_seconds", "Time from accept to Welcome.", s.handshakeMicros)
        p.single("vigil_handshakes_deferred_total", "counter", "Handshakes postponed by the per-iteration budget.",
                 Double(s.handshakesDeferred))
        p.single("vigil_session_input_deferred_total", "counter", "Session reads postponed by the per-iteration decode budget.",
                 Double(s.inputDeferred))
        p.family("vigil_sessions_closed_total", "counter", "Established sessions closed, by reason.")
        for (reason, n) in s.sessionsClosed.nonZero { p.sample("vigil_sessions_closed_total", ["reason": reason.description], n) }
        p.single("vigil_sessions_replaced_total", "counter", "Sessions closed because the same agent connected again.",
                 Double(s.sessionsReplaced))
        p.family("vigil_session_end_writes_total", "counter",
                 "Store writes of ended sessions' final Status and not_visible state (writes), and the sessions they carried (sessions).")
        p.sample("vigil_session_end_writes_total", ["kind": "writes"], s.sessionEndWrites)
        p.sample("vigil_session_end_writes_total", ["kind": "sessions"], s.sessionEndsWritten)
        p.single("vigil_session_ends_pending", "gauge", "Ended sessions whose final state waits for its store write.",
                 Double(manager.sessionEndsPending))
        p.family("vigil_key_lookups_total", "counter", "Project key reads for handshakes (shared: joined a queued read).")
        p.sample("vigil_key_lookups_total", ["kind": "read"], manager.keys.reads)
        p.sample("vigil_key_lookups_total", ["kind": "shared"], manager.keys.shared)
        p.sample("vigil_key_lookups_total", ["kind": "negative_cache"], manager.keys.negativeHits)
        let changes = manager.changes!
        p.family("vigil_changes_applied_total", "counter",
                 "Changes other collectors or processes made, read from the change log and applied here, by kind.")
        for kind in ChangeKind.allCases { p.sample("vigil_changes_applied_total", ["kind": kind.rawValue], changes.applied[kind] ?? 0) }
        p.single("vigil_changes_own_total", "counter", "This collector's own changes read back from the change log (pushed when made).",
                 Double(changes.own))
        p.single("vigil_change_reloads_total", "counter",
                 "Gaps in the change log (rows deleted before they were read): everything reloaded.", Double(changes.reloads))
        p.family("vigil_change_polls_total", "counter", "Reads of the change log by result.")
        p.sample("vigil_change_polls_total", ["result": "ok"], changes.polls &- changes.pollFailures)
        p.sample("vigil_change_polls_total", ["result": "failed"], changes.pollFailures)

        p.single("vigil_records_in_total", "counter", "Records received from agents.", Double(s.recordsIn))
        p.single("vigil_bytes_in_total", "counter", "Bytes received on agent sessions.", Double(s.bytesIn))
        p.single("vigil_bytes_out_total", "counter", "Bytes sent on agent sessions.", Double(s.bytesOut))
        p.family("vigil_batches_total", "counter", "Data batches by outcome.")
        p.sample("vigil_batches_total", ["outcome": "received"], s.batchesReceived)
        p.sample("vigil_batches_total", ["outcome": "stored"], st.batchesStored)
        p.sample("vigil_batches_total", ["outcome": "duplicate"], st.batchesDuplicate)
        p.sample("vigil_batches_total", ["outcome": "failed"], st.batchesFailed)
        p.single("vigil_rows_stored_total", "counter", "Rows stored from data batches.", Double(st.rowsStored))
        p.single("vigil_acks_total", "counter", "Ack records sent (each after the batches it covers committed).", Double(s.acksSent))
        p.family("vigil_dropped_total", "counter", "Things dropped, by cause.")
        p.sample("vigil_dropped_total", ["cause": "unknown_batch_item"], s.itemsUnknownDropped)
        p.sample("vigil_dropped_total", ["cause": "write_refused"], s.writesRefused)
        p.sample("vigil_dropped_total", ["cause": "state_write_failed"], s.stateWritesFailed)
        p.single("vigil_window_pauses_total", "counter", "Sessions paused for exceeding their in-flight window.", Double(s.windowPauses))
        p.single("vigil_store_pushbacks_total", "counter", "Sessions paused because the store refused a batch as overloaded.", Double(s.storePushbacks))
        p.single("vigil_sessions_pushed_back", "gauge", "Sessions paused now until the store drains.", Double(s.sessionsPushedBack))
        p.single("vigil_batches_resubmitted_total", "counter", "Batches held for an overloaded store and submitted again.", Double(s.batchesResubmitted))
        p.single("vigil_status_records_total", "counter", "Status records received.", Double(s.statusRecords))
        p.single("vigil_status_writes_total", "counter", "Status records stored (at most one per session and status_write_interval_ms).",
                 Double(s.statusWrites))
        p.single("vigil_status_group_writes_total", "counter", "Store writes that carried Status records (up to 256 each).",
                 Double(s.statusGroupWrites))
        p.family("vigil_session_limited_total", "counter", "Agent records folded into others by the per-session limits, by cause.")
        for c in SessionLimitCause.allCases { p.sample("vigil_session_limited_total", ["cause": c.description], s.limits(c)) }
        p.family("vigil_patterns_total", "counter", "Filter-rule answers and pushes.")
        p.sample("vigil_patterns_total", ["kind": "sent"], s.patternsSent)
        p.sample("vigil_patterns_total", ["kind": "unchanged"], s.patternsUnchanged)
        p.sample("vigil_patterns_total", ["kind": "pushed"], s.patternsPushed)
        p.family("vigil_schedules_total", "counter", "Monitor schedule answers and pushes.")
        p.sample("vigil_schedules_total", ["kind": "sent"], s.schedulesSent)
        p.sample("vigil_schedules_total", ["kind": "unchanged"], s.scheduleAnswers)
        p.sample("vigil_schedules_total", ["kind": "pushed"], s.schedulesPushed)
        p.single("vigil_pings_sent_total", "counter", "Pings sent to silent sessions.", Double(s.pingsSent))
        p.family("vigil_control_requests_total", "counter", "Control requests by result.")
        for result in ControlOutcome.auditResults {
            p.sample("vigil_control_requests_total", ["result": result], manager.control.outcomes[result] ?? 0)
        }
        p.single("vigil_control_requests_in_flight", "gauge", "Control requests waiting for an agent.", Double(manager.control.inFlight))
        if let cluster { ClusterMetrics.render(cluster, into: &p) }

        summary("vigil_store_commit_seconds", "COMMIT (the fsync) of one store transaction.", st.commitMicros)
        summary("vigil_store_transaction_seconds", "BEGIN to COMMIT of one store transaction (on the writer thread).",
                st.transactionMicros)
        p.single("vigil_store_transactions_total", "counter", "Store transactions committed.", Double(st.transactions))
        p.single("vigil_store_pending_rows", "gauge", "Rows queued for the store and not yet committed.", Double(st.pendingRows))
        p.single("vigil_store_pending_reads", "gauge", "Reads queued for the store and not yet answered.", Double(st.pendingReads))
        p.family("vigil_store_failures_total", "counter", "Store operations that failed or were refused, by cause.")
        p.sample("vigil_store_failures_total", ["cause": "write_failed"], st.writesFailed)
        p.sample("vigil_store_failures_total", ["cause": "overloaded"], st.refusedOverloaded)
        p.sample("vigil_store_failures_total", ["cause": "reads_overloaded"], st.refusedReads)
        p.sample("vigil_store_failures_total", ["cause": "closed"], st.refusedClosed)
        p.sample("vigil_store_failures_total", ["cause": "invalid"], st.refusedInvalid)
        p.sample("vigil_store_failures_total", ["cause": "busy_retry"], st.busyRetries)
        p.sample("vigil_store_failures_total", ["cause": "read_failed"], st.readsFailed - st.readsInterrupted)
        p.sample("vigil_store_failures_total", ["cause": "read_too_long"], st.readsInterrupted)
        p.single("vigil_store_writes_retried_total", "counter",
                 "Writes run again because their server connection broke before COMMIT returned (PostgreSQL).",
                 Double(st.writesRetried))
        p.single("vigil_store_groups_split_total", "counter",
                 "Group transactions the server refused, run again batch by batch so the bad batch fails alone (PostgreSQL).",
                 Double(st.groupsSplit))
        p.single("vigil_store_write_round_trips_total", "counter",
                 "Commands sent on the store's write and ingest connections, one round trip each (PostgreSQL; 0 for SQLite).",
                 Double(st.writeRoundTrips))
        p.single("vigil_store_handshake_round_trips_total", "counter",
                 "Commands sent on the store's handshake connection, one round trip each (PostgreSQL; 0 for SQLite).",
                 Double(st.handshakeRoundTrips))
        p.single("vigil_store_handshake_groups_total", "counter",
                 "Transactions on the handshake connection that carried several enrollments (PostgreSQL).",
                 Double(st.handshakeGroups))
        p.single("vigil_store_retention_deleted_total", "counter", "Rows removed by retention.", Double(st.retentionDeleted))

        summary("vigil_loop_lag_seconds", "Time the loop was busy before polling again.", loop.lag)
        p.single("vigil_loop_iterations_total", "counter", "Event loop iterations.", Double(loop.iteration))
        p.single("vigil_loop_slow_iterations_total", "counter",
                 "Loop iterations at least loop_slow_iteration_ms long (each logged with what ran, rate-limited).",
                 Double(loop.profile.slowIterations))
        p.single("vigil_loop_slow_iterations_on_cpu_total", "counter",
                 "Slow loop iterations in which the loop thread itself ran for loop_slow_iteration_ms (the rest waited for a core).",
                 Double(loop.profile.slowIterationsOnCPU))
        p.single("vigil_loop_slow_iteration_cpu_max_seconds", "gauge",
                 "The most CPU time the loop thread used in one slow iteration.",
                 Double(loop.profile.mostCPUMicros) / 1e6)
        p.single("vigil_loop_time_box_cuts_total", "counter",
                 "Times intake that can wait stopped because the iteration had spent its time box (0.5 ms).",
                 Double(loop.timeBox.cutShort))
        p.single("vigil_loop_callbacks_timed_total", "counter",
                 "Loop callbacks timed for the slow-iteration log (0 while loop_slow_iteration_ms is 0).",
                 Double(loop.profile.callbacksTimed))

        p.single("process_open_fds", "gauge", "Open file descriptors.", Double(ProcessLimits.openDescriptorCount()))
        p.single("process_max_fds", "gauge", "The descriptor limit.", Double(ProcessLimits.descriptorLimit()))
        p.single("process_resident_memory_bytes", "gauge", "Resident set size.", Double(ProcessLimits.residentBytes()))
        p.single("vigil_heap_bytes", "gauge", "Heap bytes in use (malloc; read at most once a second, less often when reading it is slow).",
                 Double(heap?.value(now: Clock.monotonic()) ?? ProcessLimits.heapBytesInUse()))
        p.single("process_cpu_seconds_total", "counter", "User and system CPU time.", ProcessLimits.cpuSeconds())
        p.single("vigil_uptime_seconds", "gauge", "Seconds since start.", uptime)
        p.family("vigil_build_info", "gauge", "Always 1; the labels say which collector this is.")
        p.sample("vigil_build_info", ["version": CollectorVersion.current, "store_schema": String(store.schemaVersion),
                                      "wire_preamble": String(Preamble.version)], 1.0)

        if let api {
            p.single("vigil_http_requests_total", "counter", "HTTP requests served.", Double(api.requests))
            p.single("vigil_http_unauthorized_total", "counter", "API requests refused for a missing or wrong token.",
                     Double(api.unauthorized))
            p.single("vigil_console_sessions", "gauge", "Console sign-in sessions open.", Double(api.sessions.count))
            p.family("vigil_console_sign_ins_total", "counter", "Console sign-ins by result.")
            p.sample("vigil_console_sign_ins_total", ["result": "ok"], api.sessions.signIns)
            p.sample("vigil_console_sign_ins_total", ["result": "wrong_token"], api.sessions.refusedSignIns)
            p.family("vigil_console_sessions_ended_total", "counter", "Console sessions ended, by cause.")
            p.sample("vigil_console_sessions_ended_total", ["cause": "sign_out"], api.sessions.signOuts)
            p.sample("vigil_console_sessions_ended_total", ["cause": "expired"], api.sessions.expired)
            p.sample("vigil_console_sessions_ended_total", ["cause": "evicted"], api.sessions.evicted)
            p.single("vigil_console_csrf_refused_total", "counter", "Cookie-authenticated changes refused for a missing or wrong X-Vigil-CSRF.",
                     Double(api.csrfRefused))
            if let uploads = api.uploads {
                p.single("vigil_uploads_running", "gauge", "Capture uploads running.", Double(uploads.running))
                p.family("vigil_uploads_total", "counter", "Capture uploads by how they ended, or why they were refused.")
                for name in Uploads.outcomeNames { p.sample("vigil_uploads_total", ["result": name], uploads.outcomes[name] ?? 0) }
                p.single("vigil_upload_bytes_total", "counter", "Bytes read by finished capture uploads.", Double(uploads.bytesRead))
            }
        }
        p.family("vigil_http_refused_total", "counter",
                 "HTTP requests and connections the server refused itself, before any handler, by cause (both listeners).")
        for c in HTTPRefusal.allCases {
            p.sample("vigil_http_refused_total", ["cause": c.description], http.reduce(UInt64(0)) { $0 &+ $1.refusals(c) })
        }
        remoteWriteFamilies(&p, remoteWrite)
        alertFamilies(&p, alerts)
        p.family("vigil_alert_notifications_total", "counter", "Alert notifications by result (sent, failed, silenced, rate_limited).")
        for name in AlertNotifier.outcomeNames { p.sample("vigil_alert_notifications_total", ["result": name], notifier?.outcomes[name] ?? 0) }
        p.single("vigil_alert_notification_retries_total", "counter", "Notification deliveries tried again after a failure.",
                 Double(notifier?.retries ?? 0))
        p.single("vigil_alert_notifications_in_flight", "gauge", "Notification deliveries running.", Double(notifier?.inFlight ?? 0))
        p.single("vigil_alert_notifications_taken_over_total", "counter",
                 "Pending notifications this collector took up from the store that it had not stored itself (a predecessor's, or its own before a restart).",
                 Double(notifier?.adopted ?? 0))
        p.family("vigil_config_reloads_total", "counter", "SIGHUP reloads by result.")
        p.sample("vigil_config_reloads_total", ["result": "applied"], reloads.applied)
        p.sample("vigil_config_reloads_total", ["result": "rejected"], reloads.rejected)
        p.family("vigil_log_lines_total", "counter", "Log lines written, by level.")
        for l in LogLevel.allCases { p.sample("vigil_log_lines_total", ["level": l.name], Log.written[l.rawValue]) }
        return p.text
    }

    /// The alert evaluator's families.
    static func alertFamilies(_ p: inout PrometheusText, _ e: AlertEvaluator?) {
        let st = e?.stats ?? AlertEvaluator.Stats()
        p.family("vigil_alert_rounds_total", "counter", "Alert evaluation rounds: evaluating (this collector held the lease) or standby.")
        p.sample("vigil_alert_rounds_total", ["role": "evaluating"], st.rounds &- st.standby)
        p.sample("vigil_alert_rounds_total", ["role": "standby"], st.standby)
        p.single("vigil_alert_lease_held", "gauge", "1 while this collector holds the alert evaluation lease.", e?.holdsLease == true ? 1 : 0)
        p.family("vigil_alert_evaluations_total", "counter", "Alert rule evaluations by result (failed: a read or the state write failed).")
        p.sample("vigil_alert_evaluations_total", ["result": "ok"], st.evaluations &- st.failures)
        p.sample("vigil_alert_evaluations_total", ["result": "failed"], st.failures)
        p.single("vigil_alert_transitions_total", "counter", "Alert state changes stored.", Double(st.transitions))
        p.single("vigil_alert_round_overruns_total", "counter", "Evaluation timer ticks that found the previous round still running.",
                 Double(st.overruns))
        p.single("vigil_alert_lease_lost_total", "counter", "State writes refused because the evaluation lease had moved on.",
                 Double(st.leaseLost))
        p.single("vigil_alert_round_seconds", "gauge", "How long the last evaluation round took.", Double(st.lastRoundMicros) / 1e6)
    }

    /// The remote-write sender's families, at zero when it is off (so a
    /// dashboard's queries exist either way).
    static func remoteWriteFamilies(_ p: inout PrometheusText, _ feed: RemoteWriteFeed?) {
        let st = feed?.sender.stats ?? RemoteWriteStats()
        p.single("vigil_remote_write_samples_sent_total", "counter", "Samples a remote-write receiver accepted.", Double(st.samplesSent))
        p.single("vigil_remote_write_samples_retried_total", "counter",
                 "Samples sent again after a 5xx, 429, connection error or timeout.", Double(st.samplesRetried))
        p.family("vigil_remote_write_samples_dropped_total", "counter", "Samples not sent, by cause.")
        p.sample("vigil_remote_write_samples_dropped_total", ["cause": "queue_full"], st.droppedQueueFull &+ (feed?.droppedPending ?? 0))
        p.sample("vigil_remote_write_samples_dropped_total", ["cause": "rejected"], st.droppedRejected)
        p.sample("vigil_remote_write_samples_dropped_total", ["cause": "series_limit"], feed?.droppedSeriesLimit ?? 0)
        p.family("vigil_remote_write_requests_total", "counter", "Remote-write requests by result.")
        p.sample("vigil_remote_write_requests_total", ["result": "ok"], st.requestsOK)
        p.sample("vigil_remote_write_requests_total", ["result": "rejected"], st.requestsRejected)
        p.sample("vigil_remote_write_requests_total", ["result": "server_error"], st.requestsServerError)
        p.sample("vigil_remote_write_requests_total", ["result": "failed"], st.requestsFailed)
        p.single("vigil_remote_write_sent_bytes_total", "counter", "Compressed request bytes a receiver accepted.", Double(st.bytesSent))
        p.single("vigil_remote_write_queue_samples", "gauge", "Samples waiting to be sent.", Double(feed?.sender.queuedSamples ?? 0))
        p.single("vigil_remote_write_lag_seconds", "gauge", "How long the oldest sample not yet accepted has waited.",
                 feed?.sender.lagSeconds ?? 0)
    }
}
