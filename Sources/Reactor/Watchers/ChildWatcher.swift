// ChildWatcher: exit of a child process (ev_child). Only the default loop
// can watch children (libev installs its SIGCHLD handler there). The watcher
// stops itself once the child has exited or was killed.
import CEv
#if canImport(Glibc)
import Glibc
#endif

public final class ChildWatcher {
    /// How the child ended: exit code, or the signal that killed it.
    public enum Termination: Equatable, CustomStringConvertible {
        case exited(Int32)
        case signaled(Int32)

        public var description: String {
            switch self {
            case .exited(let c): return "exited with status \(c)"
            case .signaled(let s): return "killed by signal \(s)"
            }
        }
    }

    public typealias Callback = (ChildWatcher, Termination) -> Void

    public let loop: EventLoop
    public let pid: Int32
    public var callback: Callback
    private let w: UnsafeMutablePointer<ev_child>
    private var retention = Retention()

    public init(loop: EventLoop, pid: Int32, callback: @escaping Callback) {
        precondition(loop.isDefault, "ChildWatcher needs the default loop (EventLoop.makeDefault())")
        self.loop = loop
        self.pid = pid
        self.callback = callback
        w = .allocate(capacity: 1)
        cev_child_init(w, { loopRaw, w, _ in
            let me = Unmanaged<ChildWatcher>.fromOpaque(cev_data(w!)!).takeUnretainedValue()
            let status = w!.pointee.rstatus
            let sig = status & 0x7f
            // WIFEXITED / WIFSIGNALED, spelled out: the macros are not importable.
            let how: Termination? = sig == 0 ? .exited((status >> 8) & 0xff)
                : (sig != 0x7f ? .signaled(sig) : nil)
            guard let how else { return }  // stopped/continued: keep watching
            ev_child_stop(loopRaw, w)
            me.callback(me, how)
            me.retention.release(for: me.loop)
        }, pid, 0)
        cev_set_data(w, Unmanaged.passUnretained(self).toOpaque())
    }

    deinit {
        if cev_is_active(w) != 0 { ev_child_stop(loop.raw, w) }
        w.deallocate()
    }

    public var isActive: Bool { cev_is_active(w) != 0 }

    public func start() {
        guard !isActive else { return }
        ev_child_start(loop.raw, w)
        retention.hold(self, for: loop)
    }

    public func stop() {
        ev_child_stop(loop.raw, w)
        retention.release(for: loop)
    }
}
