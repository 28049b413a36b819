// ChangeFollower: keeps this collector in step with changes made by other
// collectors on the same database, or by `vigil-collector keys` in another
// process, by following the store's change log (ChangeLog.swift).
//
// Every `interval` (250 ms) one read asks for the rows from the last one
// seen on (`seq >= last`, one probe of the log's primary key, at most one
// read outstanding); the row seen last comes back first, and anything after
// it is new. Rows written by this collector (its `origin`) were pushed when
// they were made and are skipped here; the others go to `apply` as one
// batch per read, in seq order. A full page is followed by another read at
// once instead of a tick later.
//
// Start: the first read is the log's newest seq; nothing older is applied
// (a starting collector reads everything afresh anyway). A failed read is
// retried at the next tick. A gap — the row seen last is gone, so rows after
// it may have been deleted unread (retention keeps a day, and always the
// newest row) — calls `reloadAll` and is counted; when the log holds nothing
// at or after the last row, the follower first reads the newest seq again,
// so that every change is either in the reload or in a later read.
//
// Thread: loop thread. Owned by the SessionManager.
import CollectorStore
import Reactor
import Wire

final class ChangeFollower {
    static let interval = 0.25
    /// Rows per read.
    static let pageRows = 1_000

    /// Written into this collector's change-log rows: a random id per process.
    let origin: String
    private let loop: EventLoop
    private let store: MeasurementStore
    private let apply: ([ChangeRecord]) -> Void
    private let reloadAll: () -> Void
    private var timer: TimerWatcher!
    /// The seq of the row read last; nil until the newest was read.
    private(set) var last: Int64?
    private var reading = false
    private var reloadAfterRebase = false
    private var stopped = false

    /// Changes by others applied, by kind.
    private(set) var applied: [ChangeKind: UInt64] = [:]
    /// This collector's own changes read back (already pushed when made).
    private(set) var own: UInt64 = 0
    /// Gaps: everything reloaded.
    private(set) var reloads: UInt64 = 0
    private(set) var polls: UInt64 = 0
    private(set) var pollFailures: UInt64 = 0

    init(loop: EventLoop, store: MeasurementStore, apply: @escaping ([ChangeRecord]) -> Void, reloadAll: @escaping () -> Void) {
        self.loop = loop
        self.store = store
        self.apply = apply
        self.reloadAll = reloadAll
        origin = "c-" + Base64URL.encode(Array(Key32.random().bytes.prefix(12)))
        store.changeOrigin = origin
        timer = TimerWatcher(loop: loop, label: "change log") { [unowned self] _ in self.poll() }
    }

    func start() {
        stopped = false
        poll()
        timer.start(after: ChangeFollower.interval, repeat: ChangeFollower.interval)
    }

    func stop() {
        stopped = true
        timer.stop()
    }

    deinit { timer.stop() }

    private func poll() {
        guard !reading, !stopped else { return }
        reading = true
        polls &+= 1
        guard let from = last else {
            store.latestChange { [weak self] result in
                guard let self else { return }
                self.reading = false
                guard case .success(let newest) = result else { self.pollFailures &+= 1; return }
                self.last = newest
                if self.reloadAfterRebase {
                    self.reloadAfterRebase = false
                    self.gap()
                }
            }
            return
        }
        store.changes(from: from, limit: ChangeFollower.pageRows) { [weak self] result in
            guard let self else { return }
            self.reading = false
            guard case .success(let rows) = result else { self.pollFailures &+= 1; return }  // the next tick asks again
            self.read(rows, from: from)
        }
    }

    private func read(_ rows: [ChangeRecord], from: Int64) {
        var fresh = rows[...]
        if from > 0 {
            if rows.first?.seq == from {
                fresh = rows.dropFirst()
            } else if rows.isEmpty {
                // Nothing at or after the last row: read the newest seq, then reload.
                last = nil
                reloadAfterRebase = true
                return
            } else {
                last = rows.last!.seq
                // The reload's reads are queued after this one: they see every row read here.
                return gap()
            }
        }
        guard let newest = rows.last?.seq else { return }
        last = newest
        var others: [ChangeRecord] = []
        for c in fresh {
            if c.origin == origin { own &+= 1; continue }
            applied[c.kind, default: 0] &+= 1
            others.append(c)
        }
        if !others.isEmpty { apply(others) }
        if rows.count >= ChangeFollower.pageRows { loop.defer { [weak self] in self?.poll() } }
    }

    private func gap() {
        reloads &+= 1
        Log.warn("change log: rows were deleted before this collector read them; reloading everything", ["seq": "\(last ?? 0)"])
        reloadAll()
    }
}
