// HelpText: `vigil-load --help`.

public enum HelpText {
    public static let usage = """
    vigil-load — many simulated agents in one process, speaking the real Wire protocol to vigil-collector

    usage:
      vigil-load density --key KEY [options]     hold N sessions: Status + a small DataBatch every interval
      vigil-load ingest  --key KEY [options]     saturate: keep every session's batch window full
      vigil-load verify  --ledger FILE --db PATH [--db PATH]…
                                                 check a run's acknowledged batches against collector databases
      vigil-load verify  --ledger FILE --shared-db PATH
                                                 the same against one database every collector shared
      vigil-load e2e --udp IP:PORT --db PATH [options]
                                                 datagram sent → aggregate durable, through a real agent
      vigil-load --help

    Each simulated agent opens one TCP session (Noise XKpsk3: the project's access key, the collector key
    it pins, and a static key of its own derived from the key's secret and its id, so a rerun proves the
    key its id enrolled with), sends Hello, then Interfaces, Status and PatternsRequest, a Status every --status-interval and DataBatches
    of --items aggregates, answers Pings and ControlRequests, re-sends unacknowledged batches first after
    a reconnect, and moves to the next collector of --collector when a session is lost. Timers are
    jittered per agent so sessions do not fire together. All agents share one event loop.

    run options (density | ingest):
      --key KEY               access key <project-id>.<secret>.<collector-key> (`vigil-collector keys create --project P`)
      --key-file FILE         the key from a file (keeps it out of the process list)
      --collector LIST        collectors in order of preference, IP:PORT[,IP:PORT…]   [127.0.0.1:6600]
      --agents N              simulated agents                              [density 10000, ingest 50]
      --rate N                new connections per second while ramping up                      [2000]
      --max-pending N         connects + handshakes in progress at once                         [1000]
      --sources auto|LIST     loopback source addresses: 127.0.0.1-127.0.0.4 or a comma list; auto adds
                              127.0.0.x addresses as the agent count exceeds one address's ephemeral
                              ports (net.ipv4.ip_local_port_range)                              [auto]
      --duration S            seconds to run after the ramp (all agents connected or --ramp-timeout) [30]
      --ramp-timeout S        longest ramp; the run goes on with the sessions it has            [180]
      --status-interval S     seconds between one agent's Status records                         [10]
      --batch-interval S      density: seconds between one agent's DataBatches                    [10]
      --items N               aggregates per DataBatch                        [density 10, ingest 100]
      --inflight N            unacknowledged batches per session (capped by the collector's Welcome)
                                                                              [density 64, ingest 8]
      --silence S             collector silence before a Ping; no answer in S/2 more → reconnect  [30]
      --connect-timeout S     connect + handshake                                                 [10]
      --reconnect-min S, --reconnect-max S
                              jittered wait before a reconnect, doubling per failure       [0.5, 2]
      --drain S               at the end, wait this long for acks of batches in flight             [5]
      --ledger FILE           write every acknowledgement (agent, sequences, records, collector) for
                              `vigil-load verify`; the file is truncated first
      --prefix P              agent ids are P-<index>                                          [load]
      --report-interval S     progress line on stderr every S seconds (0: none)                     [5]
      --json FILE             also write the summary as a JSON object
      --seed N                seed for the jitter (0: from the clock)                              [0]

    output: progress lines on stderr ("ramp complete …" once the ramp ends), then ONE line on stdout:
      load-run mode=… sessions=… handshakes_per_s=… acked_records=… acked_records_per_s=… lost… loop_lag_p99_ms=…
    Exit status: 0 done; 1 the run failed (no session at all, an ack for a batch never sent, a ledger
    write error); 2 usage error. SIGINT/SIGTERM end the run early (drain, summary, exit 0); a second
    signal exits at once.

    The process raises its descriptor limit (soft to hard; as root, hard too) to fit --agents.

    verify: reads the ledger, and for every acknowledged batch counts its aggregates in the database of
    the collector that acknowledged it. Prints
      verify: acked_batches=… acked_records=… lost_records=… duplicate_rows=… cross_collector_batches=… …
    and exits 0 only when lost_records=0 and duplicate_rows=0 (1 otherwise, 2 on a usage error).
    Run it after the collectors have stopped. With --shared-db (collectors of one cluster on one store,
    its measurements and series copied into a SQLite file of the same columns) every batch is looked up
    there, whichever collector acknowledged it.

    e2e: sends single-record IPA datagrams (host e2e.example.com, path /e2e/N) to the agent at --udp and
    polls the collector's database (read-only) for the rule's rows; each datagram's latency is the first
    time its window's row was visible minus its send time. Needs a filter rule host e2e.example.com,
    path /e2e/* → --monitor/--check, and --window-ms equal to the agent's aggregation_interval_ms.
      --rate N [1000]  --duration S [10]  --window-ms MS [1000]  --monitor M [e2e]  --check C [probe]
      --settle S       wait after the last datagram for its row [5]
    Prints  e2e: sent=… windows=… stored_records=… e2e_p50_ms=… e2e_p99_ms=… after_window_p99_ms=…
    """
}
