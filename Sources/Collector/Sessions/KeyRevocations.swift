// KeyRevocations: revoking an access key ends the sessions that
// authenticated with it, within a second, however it was revoked — through
// the API (this process, at once) or with `vigil-collector keys revoke`
// (another process writing the same database).
//
// The other process cannot tell this one, so the store is asked every
// `interval` (250 ms) for keys revoked since shortly before the last answer
// (`KeyInfo.revoked` is the revoking process's wall clock; the overlap
// covers clock steps and commits that land late): one read of the small
// key table, at most one outstanding. Closing is idempotent: a key seen
// twice finds no session the second time, since a revoked key opens none.
//
// Thread: loop thread. Owned by the SessionManager.
import CollectorStore
import Reactor

final class KeyRevocations {
    static let interval = 0.25
    /// How far before the last check the next one looks back (ms).
    static let overlapMs: Int64 = 5_000

    private let store: MeasurementStore
    private let close: (Int64) -> Void
    private var timer: TimerWatcher!
    private var since: Int64
    private var reading = false
    private(set) var checks: UInt64 = 0

    /// `close(keyID)` ends every session that authenticated with the key.
    init(loop: EventLoop, store: MeasurementStore, close: @escaping (Int64) -> Void) {
        self.store = store
        self.close = close
        since = Clock.wallMillis() - KeyRevocations.overlapMs
        timer = TimerWatcher(loop: loop, label: "key revocations") { [unowned self] _ in self.check() }
    }

    func start() { timer.start(after: KeyRevocations.interval, repeat: KeyRevocations.interval) }
    func stop() { timer.stop() }

    deinit { timer.stop() }

    /// A key revoked in this process: its sessions close now.
    func revoked(_ keyID: Int64) { close(keyID) }

    private func check() {
        guard !reading else { return }
        reading = true
        checks &+= 1
        let asOf = Clock.wallMillis()
        store.keysRevoked(since: since) { [weak self] result in
            guard let self else { return }
            self.reading = false
            guard case .success(let keys) = result else { return }  // the next tick asks again
            self.since = asOf - KeyRevocations.overlapMs
            for k in keys { self.close(k.id) }
        }
    }
}
