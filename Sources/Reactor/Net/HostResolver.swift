// HostResolver: host names to addresses for loop code, off the loop.
//
// getaddrinfo(3) blocks — for seconds when DNS is down — and a blocked loop
// stops reading its sockets (the agent's kernel then drops instrumentation).
// So a name is looked up on a WorkerThread and the answer handed back to the
// loop; an IP literal is parsed on the spot and needs no thread.
//
// Contract (libev's "never finish before returning"):
//  - every answer runs on the loop thread, on a later iteration than the
//    `resolve` call — literals and immediate refusals included;
//  - `cancel()` drops the answer; a cancelled lookup that no thread has
//    taken yet is skipped, not resolved; dropping the resolver drops every
//    answer still to come;
//  - threads start lazily, on the first name (a process that only ever
//    resolves literals starts none), and stop again `idleSeconds` after the
//    last answer, so an idle process keeps no resolver thread.
//
// Bound. At most `threadLimit` lookups run at once, on that many threads,
// for the resolver's whole life: a lookup that never returns holds one
// thread (the others keep serving) and keeps the threads from being
// stopped, but never makes a new one. Further lookups wait, at most
// `waitingLimit` of them (running ones included); beyond that `resolve`
// answers at once with a failure ("too many lookups"). So a resolver costs
// at most `threadLimit` threads and `waitingLimit` queued requests, whatever
// DNS does.
//
// Thread: the loop thread for everything public; the lookup function runs
// on the worker threads and touches nothing but its arguments.
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import CSystem  // SOCK_* constants: glibc's socket macros may be owned by this C module
import Synchronization

public final class HostResolver {
    public typealias Completion = (Result<[SocketAddress], ResolveError>) -> Void
    /// Resolves one name on a worker thread. Pure: no shared state.
    public typealias Lookup = @Sendable (_ host: String, _ port: UInt16) -> Result<[SocketAddress], ResolveError>

    /// A lookup that failed, with the reason (gai_strerror's text, or ours).
    public struct ResolveError: Error, CustomStringConvertible, Equatable, Sendable {
        public let host: String
        public let reason: String
        public init(host: String, reason: String) {
            self.host = host
            self.reason = reason
        }
        public var description: String { "cannot resolve \(host): \(reason)" }
    }

    /// One lookup. The loop thread may `cancel()` it; a worker thread reads
    /// only `host`, `port` and the cancelled flag, and writes `answer`
    /// before handing it back (WorkerThread's mutex orders the two).
    public final class Request: @unchecked Sendable {
        let host: String
        let port: UInt16
        private let cancelled = Atomic<Bool>(false)
        /// Written by the worker (or the loop for literals), read on the loop.
        var answer: Result<[SocketAddress], ResolveError>?
        /// Loop thread only.
        fileprivate var completion: Completion?

        init(host: String, port: UInt16, completion: @escaping Completion) {
            self.host = host
            self.port = port
            self.completion = completion
        }

        /// Drops the answer. Loop thread.
        public func cancel() {
            completion = nil
            cancelled.store(true, ordering: .relaxed)
        }

        var isCancelled: Bool { cancelled.load(ordering: .relaxed) }
    }

    public static let defaultThreadLimit = 2
    public static let defaultWaitingLimit = 256
    public static let defaultIdleSeconds = 5.0

    public let loop: EventLoop
    public let threadLimit: Int
    public let waitingLimit: Int
    public let idleSeconds: Double
    private let lookup: Lookup
    /// Answered on the loop (literals, refusals); delivered together.
    private var ready: [Request] = []
    private var deliverReady: DeferOnce!
    /// The threads, from the first name until `idleSeconds` after the last answer.
    private var threads: ResolverThreads?

    /// Lookups refused because `waitingLimit` were waiting.
    public private(set) var refused: UInt64 = 0
    /// Times threads were started (each start makes up to `threadLimit`).
    public private(set) var threadStarts: UInt64 = 0

    public init(loop: EventLoop, threadLimit: Int = HostResolver.defaultThreadLimit,
                waitingLimit: Int = HostResolver.defaultWaitingLimit, idleSeconds: Double = HostResolver.defaultIdleSeconds,
                lookup: @escaping Lookup = HostResolver.systemLookup) {
        precondition(threadLimit >= 1 && waitingLimit >= 1)
        self.loop = loop
        self.threadLimit = threadLimit
        self.waitingLimit = waitingLimit
        self.idleSeconds = idleSeconds
        self.lookup = lookup
        deliverReady = DeferOnce(loop: loop, label: "dns answers") { [weak self] in self?.deliverAnswered() }
    }

    deinit {
        // Queued lookups are skipped; running ones finish on their threads,
        // which then stop (ResolverThreads outlives us until then). Their
        // answers have nowhere to go.
        threads?.orphan()
    }

    /// Lookups handed to threads and not answered yet (cancelled ones
    /// included): what `waitingLimit` bounds.
    public private(set) var pendingCount = 0
    /// Whether resolver threads exist now.
    public var hasThreads: Bool { threads?.isRunning ?? false }

    /// Resolves `host` — a name, or an IPv4/IPv6 literal with or without
    /// brackets — to its TCP addresses with `port`, in getaddrinfo's order.
    /// `completion` runs on a later iteration, unless cancelled.
    @discardableResult
    public func resolve(_ host: String, port: UInt16 = 0, _ completion: @escaping Completion) -> Request {
        let request = Request(host: host, port: port, completion: completion)
        if let literal = try? SocketAddress(ip: host, port: port) {
            answerSoon(request, .success([literal]))
        } else if pendingCount >= waitingLimit {
            refused &+= 1
            answerSoon(request, .failure(ResolveError(host: host, reason: "too many lookups (\(waitingLimit)) waiting")))
        } else {
            if threads == nil {
                threads = ResolverThreads(resolver: self, loop: loop, count: threadLimit, idleSeconds: idleSeconds, lookup: lookup)
            }
            do {
                if try threads!.submit(request) { threadStarts &+= 1 }
                pendingCount += 1
            } catch {
                answerSoon(request, .failure(ResolveError(host: host, reason: "cannot start a resolver thread: \(error)")))
            }
        }
        return request
    }

    private func answerSoon(_ request: Request, _ answer: Result<[SocketAddress], ResolveError>) {
        request.answer = answer
        ready.append(request)
        deliverReady.schedule()
    }

    private func deliverAnswered() {
        let batch = ready
        ready = []
        for r in batch { HostResolver.deliver(r) }
    }

    /// Answers from the threads, in the order they finished.
    fileprivate func answered(_ requests: [Request]) {
        pendingCount -= requests.count
        for r in requests { HostResolver.deliver(r) }
    }

    /// The threads stopped (idle): the next name starts them again.
    fileprivate func threadsStopped(_ t: ResolverThreads) {
        if threads === t { threads = nil }
    }

    private static func deliver(_ r: Request) {
        guard let completion = r.completion, let answer = r.answer else { return }
        r.completion = nil
        completion(answer)
    }

    // MARK: - The lookup

    /// getaddrinfo(3) for TCP (AI_ADDRCONFIG, any family): every IPv4 and
    /// IPv6 address, in its order, with `port`.
    public static let systemLookup: Lookup = { host, port in
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_flags = AI_ADDRCONFIG
        var list: UnsafeMutablePointer<addrinfo>?
        let rc = getaddrinfo(host, nil, &hints, &list)
        guard rc == 0 else { return .failure(ResolveError(host: host, reason: String(cString: gai_strerror(rc)))) }
        defer { freeaddrinfo(list) }
        var addresses: [SocketAddress] = []
        var node = list
        while let ai = node {
            if let sa = ai.pointee.ai_addr {
                switch Int32(sa.pointee.sa_family) {
                case AF_INET:
                    var v4 = UnsafeRawPointer(sa).load(as: sockaddr_in.self)
                    v4.sin_port = port.bigEndian
                    addresses.append(.v4(v4))
                case AF_INET6:
                    var v6 = UnsafeRawPointer(sa).load(as: sockaddr_in6.self)
                    v6.sin6_port = port.bigEndian
                    addresses.append(.v6(v6))
                default:
                    break
                }
            }
            node = ai.pointee.ai_next
        }
        return addresses.isEmpty ? .failure(ResolveError(host: host, reason: "no IPv4 or IPv6 address")) : .success(addresses)
    }
}

/// A resolver's worker threads and when they end: `idleSeconds` after the
/// last answer, when no lookup is running, so stopping them joins idle
/// threads at once and never blocks the loop. The worker's completion
/// holds this object (a cycle, broken when the threads stop), so threads
/// still running a lookup when their resolver goes away stop after it.
/// Loop thread only.
private final class ResolverThreads {
    weak var resolver: HostResolver?
    private var worker: WorkerThread<HostResolver.Request>?
    private var idleTimer: TimerWatcher!
    private let idleSeconds: Double
    private var orphaned = false
    /// Set when the resolver goes away: waiting lookups are skipped.
    private let abandoned = AbandonedFlag()

    init(resolver: HostResolver, loop: EventLoop, count: Int, idleSeconds: Double, lookup: @escaping HostResolver.Lookup) {
        self.resolver = resolver
        self.idleSeconds = idleSeconds
        // One lookup per thread at a time: a slow name holds one thread only.
        let abandoned = self.abandoned
        worker = WorkerThread(loop: loop, name: "resolver", threads: count, batchLimit: 1, process: { worker, batch in
            for r in batch where !r.isCancelled && !abandoned.isSet {
                r.answer = lookup(r.host, r.port)
            }
            worker.finish(batch)
        }, completed: { [self] requests in completed(requests) })
        idleTimer = TimerWatcher(loop: loop, label: "dns idle") { [weak self] _ in self?.stopIfIdle() }
    }

    var isRunning: Bool { worker?.isStarted ?? false }

    /// Hands `request` to a thread, starting the threads first when there
    /// are none (returns true then).
    func submit(_ request: HostResolver.Request) throws(SyscallError) -> Bool {
        guard let worker else { preconditionFailure("resolver threads used after they stopped") }
        idleTimer.stop()
        var started = false
        if !worker.isStarted {
            try worker.start()
            started = true
        }
        worker.submit(request)
        return started
    }

    /// The resolver went away: stop as soon as nothing runs.
    func orphan() {
        orphaned = true
        abandoned.set()
        resolver = nil
        if (worker?.outstanding ?? 0) == 0 { idleTimer.start(after: 0) }
    }

    private func completed(_ requests: [HostResolver.Request]) {
        resolver?.answered(requests)
        if (worker?.outstanding ?? 0) == 0 { idleTimer.start(after: orphaned ? 0 : idleSeconds) }
    }

    private func stopIfIdle() {
        guard let w = worker, w.outstanding == 0 else { return }
        w.stop()
        worker = nil    // breaks the cycle through the completion closure
        resolver?.threadsStopped(self)
    }
}

/// A flag the loop sets and worker threads read.
private final class AbandonedFlag: @unchecked Sendable {
    private let value = Atomic<Bool>(false)
    func set() { value.store(true, ordering: .relaxed) }
    var isSet: Bool { value.load(ordering: .relaxed) }
}
