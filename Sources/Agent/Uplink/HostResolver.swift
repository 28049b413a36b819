// HostResolver: a collector's host name to an address, off the loop.
//
// getaddrinfo(3) blocks — for seconds when DNS is down — and a blocked loop
// stops reading UDP, so the kernel starts dropping instrumentation. An IP
// literal is parsed on the spot; a name is resolved on a short-lived
// detached thread, which hands its answer back through an ev_async (the
// loop's one thread-safe entry). The answer is delivered on the loop
// thread, always on a later iteration than the call.
#if canImport(Glibc)
import Glibc
#endif
import Reactor
import CSystem  // SOCK_* constants: glibc's socket macros may be owned by this C module

/// Resolves names for the uplink. Loop thread only (its worker threads
/// touch nothing but their own job).
public final class HostResolver {
    public typealias Completion = (Result<SocketAddress, ResolveError>) -> Void

    public struct ResolveError: Error, CustomStringConvertible, Sendable {
        public let host: String
        public let reason: String
        public var description: String { "cannot resolve \(host): \(reason)" }
    }

    /// One lookup in flight; `cancel()` drops its answer.
    public final class Request {
        fileprivate var completion: Completion?
        fileprivate var watcher: AsyncWatcher?
        public func cancel() {
            completion = nil
            watcher?.stop()
            watcher = nil
        }
    }

    public let loop: EventLoop

    public init(loop: EventLoop) { self.loop = loop }

    /// Resolves `host` (a name or an IP literal, IPv6 with or without
    /// brackets) with `port`.
    @discardableResult
    public func resolve(_ host: String, port: UInt16, _ completion: @escaping Completion) -> Request {
        let request = Request()
        request.completion = completion
        if let literal = try? SocketAddress(ip: host, port: port) {
            loop.defer { [request] in
                let c = request.completion
                request.completion = nil
                c?(.success(literal))
            }
            return request
        }
        let job = ResolveJob(host: host, port: port)
        let watcher = AsyncWatcher(loop: loop) { [request, job] w in
            guard let result = job.take() else { return }
            w.stop()
            request.watcher = nil
            let c = request.completion
            request.completion = nil
            c?(result)
        }
        watcher.start()
        request.watcher = watcher
        job.watcher = watcher
        if !job.spawn() {
            watcher.stop()
            request.watcher = nil
            loop.defer { [request] in
                let c = request.completion
                request.completion = nil
                c?(.failure(ResolveError(host: host, reason: "cannot start a resolver thread")))
            }
        }
        return request
    }
}

/// One getaddrinfo call and its answer, shared by the worker thread and
/// the loop under a mutex.
private final class ResolveJob {
    let host: String
    let port: UInt16
    /// Set before the worker starts; the worker clears it when done.
    var watcher: AsyncWatcher?
    // Heap-allocated: a pthread mutex must not move.
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private var result: Result<SocketAddress, HostResolver.ResolveError>?

    init(host: String, port: UInt16) {
        self.host = host
        self.port = port
        mutex.initialize(to: pthread_mutex_t())
        pthread_mutex_init(mutex, nil)
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    /// Starts the detached worker, which holds the job until it is done.
    func spawn() -> Bool {
        let context = Unmanaged.passRetained(self).toOpaque()
        var thread = pthread_t()
        let rc = pthread_create(&thread, nil, { raw in
            let job = Unmanaged<ResolveJob>.fromOpaque(raw!).takeRetainedValue()
            job.run()
            return nil
        }, context)
        guard rc == 0 else {
            Unmanaged<ResolveJob>.fromOpaque(context).release()
            return false
        }
        pthread_detach(thread)
        return true
    }

    /// Worker thread: resolve, store, wake the loop.
    private func run() {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_flags = AI_ADDRCONFIG
        var list: UnsafeMutablePointer<addrinfo>?
        let rc = getaddrinfo(host, nil, &hints, &list)
        var answer: Result<SocketAddress, HostResolver.ResolveError>
        if rc != 0 {
            answer = .failure(.init(host: host, reason: String(cString: gai_strerror(rc))))
        } else {
            answer = .failure(.init(host: host, reason: "no IPv4 or IPv6 address"))
            var p = list
            while let ai = p {
                if let sa = ai.pointee.ai_addr, let a = SocketAddress(sockaddr: sa, port: port) {
                    answer = .success(a)
                    break
                }
                p = ai.pointee.ai_next
            }
            freeaddrinfo(list)
        }
        pthread_mutex_lock(mutex)
        result = answer
        // Hand the watcher back: from here it is held by the request alone
        // (the local keeps it alive for the send), so no cycle remains.
        let w = watcher
        watcher = nil
        pthread_mutex_unlock(mutex)
        w?.send()
    }

    /// Loop thread: the answer, once there is one.
    func take() -> Result<SocketAddress, HostResolver.ResolveError>? {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return result
    }
}

extension SocketAddress {
    /// An IPv4/IPv6 sockaddr from getaddrinfo, with `port` put in.
    init?(sockaddr sa: UnsafeMutablePointer<sockaddr>, port: UInt16) {
        switch Int32(sa.pointee.sa_family) {
        case AF_INET:
            var v4 = UnsafeRawPointer(sa).load(as: sockaddr_in.self)
            v4.sin_port = port.bigEndian
            self = .v4(v4)
        case AF_INET6:
            var v6 = UnsafeRawPointer(sa).load(as: sockaddr_in6.self)
            v6.sin6_port = port.bigEndian
            self = .v6(v6)
        default:
            return nil
        }
    }
}
