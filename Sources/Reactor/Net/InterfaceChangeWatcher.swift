// InterfaceChangeWatcher: says when the host's network interfaces or their
// addresses change, so a caller that reports them (the agent's status) can
// re-read them then instead of polling getifaddrs(3) on every tick.
//
// A NETLINK_ROUTE socket subscribed to RTMGRP_LINK (a link appears, goes,
// or changes state or flags) and RTMGRP_IPV4_IFADDR / RTMGRP_IPV6_IFADDR (an
// address is added or removed). The messages are not parsed: any of them
// means "read again". A full socket buffer (ENOBUFS: notifications were
// lost) means the same. The kernel sends nothing while nothing changes, so
// an idle host costs no wakeup at all.
#if canImport(Glibc)
import Glibc
#endif
import CSystem

/// Owned by one caller on the loop thread: create, then `close()` (or let
/// it go) before the loop ends. `onChange` runs on the loop thread, once per
/// readable wakeup that carried at least one notification or an error. After
/// an unexpected read error the watcher closes itself (`isOpen` false).
public final class InterfaceChangeWatcher {
    public private(set) var fd: Int32 = -1
    /// Wakeups that reported a change (notifications or a lost batch).
    public private(set) var changes: UInt64 = 0
    private var watcher: IOWatcher?
    private let onChange: () -> Void

    /// Opens and subscribes the socket. Throws the failing call (a sandbox
    /// without netlink: `socket` EAFNOSUPPORT or `bind` EPERM).
    public init(loop: EventLoop, onChange: @escaping () -> Void) throws {
        self.onChange = onChange
        let fd = try Syscalls.socket(CSYS_AF_NETLINK, Int32(SOCK_RAW.rawValue), csys_netlink_route)
        do {
            try Syscalls.bindNetlink(fd, groups: csys_rtmgrp_interfaces)
        } catch {
            Syscalls.close(fd)
            throw error
        }
        self.fd = fd
        let w = IOWatcher(loop: loop, fd: fd, events: .read) { [unowned self] _, _ in self.readable() }
        watcher = w
        w.start()
    }

    deinit { close() }

    public var isOpen: Bool { fd >= 0 }

    public func close() {
        guard fd >= 0 else { return }
        watcher?.stop()
        watcher = nil
        Syscalls.close(fd)
        fd = -1
    }

    /// Drains the socket (the content does not matter) and reports once.
    private func readable() {
        var changed = false
        withUnsafeTemporaryAllocation(byteCount: 8192, alignment: 8) { buf in
            while fd >= 0 {
                do {
                    switch try Syscalls.read(fd, buf.baseAddress!, buf.count) {
                    case .wouldBlock: return
                    case .value(let n):
                        if n <= 0 { return }
                        changed = true
                    }
                } catch let e as SyscallError where e.errno == ENOBUFS {
                    // The kernel dropped notifications; re-reading covers them.
                    changed = true
                } catch {
                    // Not expected from a netlink socket; rather than spin on
                    // a descriptor that stays readable, stop watching (the
                    // caller sees !isOpen and polls).
                    changed = true
                    close()
                }
            }
        }
        if changed {
            changes &+= 1
            onChange()
        }
    }
}
