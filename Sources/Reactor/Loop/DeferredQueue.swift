// DeferredQueue: the `setImmediate` of the Reactor.
//
// Long work is cut into slices and each slice is deferred. Every iteration a
// check watcher runs at most `budget` of the slices that were queued before
// the iteration began; slices queued while draining wait for the next
// iteration. The loop's time box (IterationTimeBox) does not cut the queue
// short: it carries the flushes and closes that the time-boxed intake
// (reads, handshakes, completions) produced, and draining them must keep
// pace — closes free the slots new connections wait for. An idle watcher,
// active only while work is queued, keeps poll from blocking, so I/O and
// timers get their turn between slices and a slice never runs before the
// call that queued it has returned.
import CEv

public final class DeferredQueue {
    /// Maximum slices run per loop iteration.
    public var budget = 64
    /// Slices run so far, and iterations that ended with work left over.
    public private(set) var ran: UInt64 = 0
    public private(set) var carriedOver: UInt64 = 0

    private struct Slice {
        var work: () -> Void
        /// IterationProfile's call site, -1 for none.
        var site: Int32
    }
    private var items = RingBuffer<Slice>(capacity: 256, overflow: .grow)
    private weak var profile: IterationProfile?
    // The raw ev_loop, not the EventLoop: the loop owns this queue, and a
    // reference back would make a cycle — no EventLoop would ever be freed,
    // nor its epoll descriptor closed by ev_loop_destroy.
    private var raw: OpaquePointer?
    private let check: UnsafeMutablePointer<ev_check>
    private let idle: UnsafeMutablePointer<ev_idle>

    init() {
        check = .allocate(capacity: 1)
        idle = .allocate(capacity: 1)
    }

    deinit {
        check.deallocate()
        idle.deallocate()
    }

    public var count: Int { items.count }

    func attach(to loop: EventLoop) {
        raw = loop.raw
        profile = loop.profile
        let me = Unmanaged.passUnretained(self).toOpaque()
        cev_check_init(check) { _, w, _ in
            Unmanaged<DeferredQueue>.fromOpaque(cev_data(w!)!).takeUnretainedValue().drain()
        }
        cev_set_data(check, me)
        cev_idle_init(idle) { _, _, _ in }
        cev_set_data(idle, me)
    }

    func detach() {
        guard let raw else { return }
        if cev_is_active(check) != 0 { ev_check_stop(raw, check) }
        if cev_is_active(idle) != 0 { ev_idle_stop(raw, idle) }
        self.raw = nil
    }

    func enqueue(_ work: @escaping () -> Void, site: Int32 = -1) {
        items.append(Slice(work: work, site: site))
        guard let raw, cev_is_active(idle) == 0 else { return }
        ev_check_start(raw, check)
        ev_idle_start(raw, idle)
    }

    private func drain() {
        let n = min(items.count, budget)
        for _ in 0..<n {
            guard let slice = items.popFirst() else { break }
            ran &+= 1
            if let profile, profile.enabled {
                let t = profile.begin()
                slice.work()
                profile.end(slice.site, t)
            } else {
                slice.work()
            }
        }
        guard let raw else { return }
        if items.isEmpty {
            ev_check_stop(raw, check)
            ev_idle_stop(raw, idle)
        } else {
            carriedOver &+= 1
        }
    }
}
