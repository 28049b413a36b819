// TCPRun: time a TCP connect through the Reactor's TCPConnection.
//
// A host name is resolved first (HostResolver, phase "dns"); then the
// addresses are tried in order until one accepts, each attempt bounded by
// what is left of the monitor's timeout (phase "connect" is the successful
// attempt). The connection is closed as soon as it is established.
// One TimerWatcher caps the whole run.
import MonitorModel
import Reactor
import Wire

final class TCPRun: MonitorRun, TCPConnectionHandler {
    private let loop: EventLoop
    private let context: RunContext
    private let host: String
    private let port: UInt16
    private let env: EnvResolver
    private let resolver: () throws -> HostResolver
    private var lookup: HostResolver.Token?
    private var lookupOwner: HostResolver?
    private var connection: TCPConnection?
    private var timer: TimerWatcher?
    private var addresses: [SocketAddress] = []
    private var attempt = 0
    private var dnsUs: UInt64 = 0
    private var connectStart: UInt64 = 0
    private var failures: [String] = []
    private var done = false

    /// `host` is resolved from `${env:…}` already; `resolver` makes (or
    /// returns) the engine's resolver, only when a name must be looked up.
    init(loop: EventLoop, context: RunContext, host: String, port: UInt16, env: EnvResolver,
         resolver: @escaping () throws -> HostResolver) {
        self.loop = loop
        self.context = context
        self.host = host
        self.port = port
        self.env = env
        self.resolver = resolver
    }

    func start() {
        let t = TimerWatcher(loop: loop) { [unowned self] _ in self.timedOut() }
        t.start(after: Double(context.definition.timeoutMs) / 1000)
        timer = t
        if let literal = try? SocketAddress(ip: host, port: port) {
            addresses = [literal]
            // Connect on the next iteration: a result must never come from start().
            loop.defer { [self] in if !done { connectNext() } }
            return
        }
        do {
            let r = try resolver()
            lookupOwner = r
            lookup = r.resolve(host) { [unowned self] result in self.resolved(result) }
        } catch {
            loop.defer { [self] in self.finish(.error, "name lookup unavailable: \(error)") }
        }
    }

    func cancel() {
        done = true
        cleanUp()
    }

    private func resolved(_ result: Result<[SocketAddress], HostResolver.ResolveError>) {
        lookup = nil
        guard !done else { return }
        dnsUs = context.elapsedUs
        switch result {
        case .success(let list):
            addresses = list.map { $0.withPort(port) }
            connectNext()
        case .failure(let e):
            finish(.error, "DNS failure: \(e.description)")
        }
    }

    private func connectNext() {
        guard attempt < addresses.count else {
            finish(.error, "connect failed: " + failures.joined(separator: "; "))
            return
        }
        let address = addresses[attempt]
        attempt += 1
        var options = TCPConnection.Options()
        let leftMs = Int64(context.definition.timeoutMs) - Int64(context.elapsedUs / 1000)
        options.connectTimeout = max(Double(leftMs) / 1000, 0.001)
        connectStart = Clock.monotonicNanos()
        connection = TCPConnection.connect(loop: loop, to: address, options: options, handler: self)
    }

    // MARK: TCPConnectionHandler

    func connectionDidConnect(_ c: TCPConnection) {
        guard c === connection, !done else { return }
        let connectUs = (Clock.monotonicNanos() &- connectStart) / 1000
        connection = nil
        c.close()
        var phases: [PhaseTiming] = []
        if dnsUs > 0 || lookupOwner != nil { phases.append(PhaseTiming("dns", dnsUs)) }
        phases.append(PhaseTiming("connect", connectUs))
        done = true
        cleanUp()
        context.complete(context.result(.ok, durationUs: context.elapsedUs, phases: phases))
    }

    func connection(_ c: TCPConnection, didRead buffer: ByteBuffer) {
        buffer.consume(buffer.readableBytes)
    }

    func connectionDidClose(_ c: TCPConnection, reason: TCPCloseReason) {
        guard c === connection, !done else { return }
        connection = nil
        if reason == .connectTimeout {
            finish(.timeout, "timeout after \(context.definition.timeoutMs) ms connecting to \(c.peer)")
            return
        }
        failures.append("\(c.peer): \(reason)")
        connectNext()
    }

    // MARK: ending

    private func timedOut() {
        guard !done else { return }
        let stage = lookup != nil ? "resolving \(host)" : "connecting to \(connection.map { "\($0.peer)" } ?? host)"
        finish(.timeout, "timeout after \(context.definition.timeoutMs) ms \(stage)")
    }

    private func finish(_ status: MonitorStatus, _ message: String) {
        guard !done else { return }
        done = true
        cleanUp()
        var phases: [PhaseTiming] = []
        if lookupOwner != nil && dnsUs > 0 { phases.append(PhaseTiming("dns", dnsUs)) }
        context.complete(context.result(status, message: env.redact(message), phases: phases))
    }

    private func cleanUp() {
        timer?.stop()
        timer = nil
        if let l = lookup, let r = lookupOwner { r.cancel(l) }
        lookup = nil
        if let c = connection {
            connection = nil
            c.abort()
        }
    }
}
