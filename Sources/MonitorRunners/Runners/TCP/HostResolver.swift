// HostResolver: asynchronous host name lookups for the loop, over glibc's
// getaddrinfo_a (CSystem's csys_resolve). glibc resolves on its own helper
// thread and hands each finished request back through a pipe, which one
// IOWatcher reads; the completion then runs on the loop. IP literals never
// reach it (the TCP runner parses them directly).
//
// Thread: loop thread only. Ownership: one per engine, created on the first
// lookup. A cancelled lookup that glibc is already running is kept in
// `abandoned` until its notification arrives, then freed.
import CSystem
import Reactor
#if canImport(Glibc)
import Glibc
#endif

final class HostResolver {
    typealias Completion = (Result<[SocketAddress], ResolveError>) -> Void

    /// A lookup that failed, with glibc's reason.
    struct ResolveError: Error, CustomStringConvertible {
        let host: String
        let reason: String
        var description: String { "cannot resolve \(host): \(reason)" }
    }

    /// A pending lookup, for `cancel`.
    struct Token: Hashable { fileprivate let raw: OpaquePointer }

    let loop: EventLoop
    private let readFD: Int32
    private let writeFD: Int32
    private var watcher: IOWatcher!
    private var pending: [OpaquePointer: (host: String, completion: Completion)] = [:]
    private var abandoned: Set<OpaquePointer> = []

    var pendingCount: Int { pending.count + abandoned.count }

    init(loop: EventLoop) throws {
        self.loop = loop
        (readFD, writeFD) = try Syscalls.pipe()
        // glibc's notification thread writes; blocking there (never on the
        // loop) means a notification is never lost to a full pipe.
        try Syscalls.setBlocking(writeFD)
        watcher = IOWatcher(loop: loop, fd: readFD, events: .read) { [unowned self] _, _ in self.drain() }
    }

    deinit {
        watcher.stop()
        Syscalls.close(readFD)
        // A lookup still inside glibc will write its pointer to writeFD: keep
        // that descriptor open (its write then fails with EPIPE) rather than
        // let the number be reused by something else, and keep the request's
        // memory. Both only happen at shutdown with lookups in flight.
        if pendingCount == 0 { Syscalls.close(writeFD) }
    }

    /// Starts resolving `host`; `completion` runs on a later iteration.
    @discardableResult
    func resolve(_ host: String, completion: @escaping Completion) -> Token? {
        var err: Int32 = 0
        guard let r = csys_resolve_start(host, writeFD, &err) else {
            let reason = String(cString: gai_strerror(err))
            loop.defer { completion(.failure(ResolveError(host: host, reason: reason))) }
            return nil
        }
        pending[r] = (host, completion)
        watcher.start()
        return Token(raw: r)
    }

    /// Drops a lookup; its completion will not run.
    func cancel(_ token: Token) {
        guard pending.removeValue(forKey: token.raw) != nil else { return }
        if csys_resolve_cancel(token.raw) == 1 {
            csys_resolve_free(token.raw)
        } else {
            abandoned.insert(token.raw)
        }
        if pendingCount == 0 { watcher.stop() }
    }

    private func drain() {
        var ptrs = [OpaquePointer?](repeating: nil, count: 64)
        let n: Int
        do {
            guard case .value(let got) = try ptrs.withUnsafeMutableBytes({ try Syscalls.read(readFD, $0.baseAddress!, $0.count) }) else { return }
            n = got / MemoryLayout<OpaquePointer>.size
        } catch {
            Log.error("monitor name lookups: \(error)")
            return
        }
        for case let r? in ptrs[0..<n] {
            if abandoned.remove(r) != nil {
                csys_resolve_free(r)
                continue
            }
            guard let p = pending.removeValue(forKey: r) else { continue }
            var list: UnsafePointer<addrinfo>?
            let rc = csys_resolve_result(r, &list)
            var addresses: [SocketAddress] = []
            var node = list
            while let a = node {
                if let sa = a.pointee.ai_addr {
                    if a.pointee.ai_family == AF_INET {
                        addresses.append(.v4(UnsafeRawPointer(sa).load(as: sockaddr_in.self)))
                    } else if a.pointee.ai_family == AF_INET6 {
                        addresses.append(.v6(UnsafeRawPointer(sa).load(as: sockaddr_in6.self)))
                    }
                }
                node = UnsafePointer(a.pointee.ai_next)
            }
            csys_resolve_free(r)
            if rc != 0 {
                p.completion(.failure(ResolveError(host: p.host, reason: String(cString: gai_strerror(rc)))))
            } else if addresses.isEmpty {
                p.completion(.failure(ResolveError(host: p.host, reason: "no addresses")))
            } else {
                p.completion(.success(addresses))
            }
        }
        if pendingCount == 0 { watcher.stop() }
    }
}
