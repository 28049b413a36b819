// PGListener: a LISTEN kept open on a connection of its own — a collector's
// control channel (`vigil_control_<collector id>`, ClusterStore).
//
// Notifications arrive through PGConnection's `onNotify` (libpq's
// PQnotifies after each PQconsumeInput). The connection carries nothing
// else, so a NOTIFY is never stuck behind a long query or an ingest COPY.
// A lost connection is made again with backoff (0.1 s doubling to the
// store's maxReconnectDelay) and the LISTEN issued again; each time it is
// in place `listening` runs, so the owner can look for whatever was sent
// while nobody listened (NOTIFY is not queued for absent listeners).
//
// Loop thread only.
import Reactor

final class PGListener: ControlListening {
    private let loop: EventLoop
    private let options: PostgreSQLOptions
    private let channel: String
    private let notified: (String) -> Void
    private let listening: () -> Void
    private let connection: PGConnection
    private var timer: TimerWatcher?
    private var backoff = 0.0
    private var closed = false
    private(set) var isListening = false
    private(set) var reconnects: UInt64 = 0

    init(loop: EventLoop, options: PostgreSQLOptions, channel: String,
         notified: @escaping (String) -> Void, listening: @escaping () -> Void) {
        self.loop = loop
        self.options = options
        self.channel = channel
        self.notified = notified
        self.listening = listening
        connection = PGConnection(loop: loop, maxQueued: 4)
        connection.onNotify = { [weak self] channel, payload in
            guard let self, channel == self.channel else { return }
            self.notified(payload)
        }
        connection.onFailure = { [weak self] why in
            guard let self else { return }
            self.isListening = false
            Log.warn("cluster: LISTEN connection lost: \(why)")
            self.retry()
        }
        connect()
    }

    deinit {
        timer?.stop()
        connection.close()
    }

    private func connect() {
        guard !closed else { return }
        connection.connect(conninfo: options.conninfo, password: options.password, timeout: options.connectTimeout) { [weak self] r in
            guard let self, !self.closed else { return }
            switch r {
            case .failure(let e):
                Log.warn("cluster: LISTEN connection: \(e)")
                self.retry()
            case .success:
                // The channel is a quoted identifier: collector ids hold no `"`.
                self.connection.run(.query("LISTEN \"\(self.channel)\"", [])) { [weak self] r in
                    guard let self, !self.closed else { return }
                    switch r {
                    case .success:
                        if self.backoff > 0 { self.reconnects &+= 1 }
                        self.backoff = 0
                        self.isListening = true
                        self.listening()
                    case .failure(let e):
                        Log.warn("cluster: LISTEN \(self.channel) failed: \(e)")
                        self.connection.close()
                        self.retry()
                    }
                }
            }
        }
    }

    private func retry() {
        guard !closed else { return }
        backoff = min(max(backoff * 2, 0.1), options.maxReconnectDelay)
        timer?.stop()
        let t = TimerWatcher(loop: loop) { [weak self] _ in self?.connect() }
        t.start(after: backoff)
        timer = t
    }

    func close() {
        closed = true
        isListening = false
        timer?.stop()
        timer = nil
        connection.close()
    }
}
