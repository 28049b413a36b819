// HTTPServer: libmicrohttpd on a Reactor loop, with no thread of its own —
// the collector's HTTP API serves on it, and so do the monitors' tests and
// benchmark server, without the rest of the collector. MHD runs in
// external-epoll mode: we watch its epoll descriptor with an IOWatcher and
// call MHD_run when it is readable or when the timer MHD asks for
// (MHD_get_timeout) expires.
//
// Before any of a request's body is read, `admit` sees its method, target
// and headers (libmicrohttpd's first access-handler call, before it would
// send `100 Continue`): an answer there (a 401) is sent at once, the body is
// never read and the connection closes — so an unauthenticated upload costs
// its headers, not its body.
//
// A handler gets the whole request (body capped at `maxBodyBytes`, request
// target at `maxTargetBytes`; beyond either the answer is a JSON 413 or 414
// without calling it) and an
// `HTTPResponder`. It may answer at once or later (e.g. after an agent has
// answered a control request): the connection is then suspended
// (MHD_suspend_connection) and resumed when `respond` is called.
//
// Connections are counted here, not by MHD: its accept-policy callback
// refuses one more than `HTTPLimits.maxConnections` in all or
// `maxConnectionsPerAddress` from one peer address (closed at accept,
// counted), so slow clients from one address cannot take every slot. Each
// connection also has an absolute deadline (`requestDeadline`): a request
// must arrive in full, and an answer be sent, within it of the connection's
// opening or the previous answer, however steadily the client trickles
// bytes (MHD's own timeout only measures inactivity). Time the collector
// itself takes to answer (a suspended request) does not count. A
// connection past it is shut down (there is no request to answer 408 to
// before its headers are in) and counted; one timer scans them.
//
// TLS: with an `HTTPTLSMaterial` (PEM key and certificate read by the
// caller's configuration) MHD serves HTTPS only, through GnuTLS.
//
// Streamed bodies. A request the `streamer` claims when its headers arrive
// (it returns an HTTPBodyStream) is not collected: each piece of body MHD
// reads is handed to the stream, which takes what it can (a bounded slice)
// and may leave the rest; the connection is then suspended — MHD reads no
// more from that client, TCP pushes back — until the stream calls
// `HTTPResponder.resumeBody()`, when MHD hands the rest again. Memory per
// streamed request is MHD's read buffer, whatever the body's size. An
// answer given while the headers are handled (a 401, a 413 for a declared
// length) is sent before any body is read; one given later ends the
// request when the body is over (the rest is discarded). A streamed body
// has no absolute deadline (it was admitted, and a large upload may take
// long); the inactivity timeout still ends a stalled one.
//
// Thread: loop thread only.
import CMicroHTTPD
import Reactor
#if canImport(Glibc)
import Glibc
#endif

public struct HTTPRequest {
    public let method: String
    /// The path as libmicrohttpd unescaped it (a `%00` ends it).
    public let path: String
    /// The request target as sent: not unescaped, query included ("" when
    /// unknown). Handlers that must see every byte (`%00`, `%2F`) parse this.
    public let target: String
    public let query: [String: String]
    public let headers: [String: String]   // lower-cased names
    public let body: [UInt8]

    public init(method: String, path: String, target: String = "", query: [String: String] = [:],
                headers: [String: String] = [:], body: [UInt8] = []) {
        self.method = method
        self.path = path
        self.target = target.isEmpty ? path : target
        self.query = query
        self.headers = headers
        self.body = body
    }

    public func header(_ name: String) -> String? { headers[name.lowercased()] }
}

public struct HTTPResponse {
    public var status: Int
    public var contentType: String
    public var body: [UInt8]
    public var headers: [(String, String)]

    public init(status: Int, contentType: String = "application/json", body: [UInt8], headers: [(String, String)] = []) {
        self.status = status
        self.contentType = contentType
        self.body = body
        self.headers = headers
    }

    public init(status: Int, contentType: String = "application/json", text: String) {
        self.init(status: status, contentType: contentType, body: Array(text.utf8))
    }
}

/// Answers one request, now or later; only the first `respond` counts.
public final class HTTPResponder {
    fileprivate var response: HTTPResponse?
    fileprivate var suspended = false
    fileprivate var finished = false
    fileprivate var connection: OpaquePointer?
    fileprivate weak var server: HTTPServer?

    public func respond(_ r: HTTPResponse) {
        guard response == nil, !finished else { return }
        response = r
        if suspended, let c = connection, let server, server.isRunning {
            suspended = false
            server.suspended.removeValue(forKey: ObjectIdentifier(self))
            MHD_resume_connection(c)
            server.runSoon.schedule()
        }
    }

    /// False once the client went away; late answers are then dropped.
    public var isOpen: Bool { !finished }

    /// A streamed body's reader is ready for more: resumes the connection
    /// it left suspended (nothing when it is not suspended).
    public func resumeBody() {
        guard suspended, response == nil, !finished, let c = connection, let server, server.isRunning else { return }
        suspended = false
        server.suspended.removeValue(forKey: ObjectIdentifier(self))
        MHD_resume_connection(c)
        server.runSoon.schedule()
    }
}

/// A request body taken piece by piece (see the file's header). Loop thread.
public protocol HTTPBodyStream: AnyObject {
    /// A piece of the body. Returns how many bytes it took (0...count);
    /// taking fewer suspends the connection until `resumeBody()`.
    func consume(_ bytes: UnsafeRawBufferPointer, _ responder: HTTPResponder) -> Int
    /// The body is over: answer with `responder` (now or later).
    func finish(_ responder: HTTPResponder)
    /// The request ended before its body did (the client went away, a
    /// timeout, the server stopping): no answer can be sent.
    func cancelled()
}

/// Why the server refused a request or a connection itself (the handler
/// never saw it), for `vigil_http_refused_total{cause}`.
public enum HTTPRefusal: Int, CaseIterable, CustomStringConvertible {
    /// `admit` answered at header time, before the body (a 401).
    case beforeBody
    /// The body was longer than `maxBodyBytes` (413).
    case bodyTooLarge
    /// The request target was longer than `maxTargetBytes` (414).
    case targetTooLong
    /// A connection beyond `maxConnections`, closed at accept.
    case connectionLimit
    /// A connection beyond `maxConnectionsPerAddress` from its address, closed at accept.
    case addressLimit
    /// A connection shut down at its request deadline.
    case deadline

    public var description: String {
        switch self {
        case .beforeBody: return "before_body"
        case .bodyTooLarge: return "body_too_large"
        case .targetTooLong: return "target_too_long"
        case .connectionLimit: return "connection_limit"
        case .addressLimit: return "address_limit"
        case .deadline: return "deadline"
        }
    }
}

/// A TLS key and certificate chain in PEM, read from their files at start
/// (libmicrohttpd with GnuTLS serves HTTPS with them).
public struct HTTPTLSMaterial: Sendable {
    public let keyPEM: String
    public let certificatePEM: String

    /// A file that could not be used, named with the label the caller gave
    /// it (the configuration key) and why.
    public struct LoadError: Error, CustomStringConvertible {
        public let description: String
    }

    /// The most a PEM file may hold (a certificate chain is a few KiB).
    public static let maxFileBytes = 1 << 20

    /// Reads both files; an error names the label, the path and the cause
    /// (unreadable, empty, too large, not PEM, or TLS missing from this
    /// libmicrohttpd).
    public static func load(certificate: (label: String, path: String), key: (label: String, path: String)) throws(LoadError) -> HTTPTLSMaterial {
        guard cmhd_tls_supported() != 0 else {
            throw LoadError(description: "\(certificate.label): this libmicrohttpd was built without TLS (MHD_FEATURE_TLS)")
        }
        let cert = try read(certificate, marker: "CERTIFICATE-----")
        let k = try read(key, marker: "PRIVATE KEY-----")
        return HTTPTLSMaterial(keyPEM: k, certificatePEM: cert)
    }

    private init(keyPEM: String, certificatePEM: String) {
        self.keyPEM = keyPEM
        self.certificatePEM = certificatePEM
    }

    private static func read(_ file: (label: String, path: String), marker: String) throws(LoadError) -> String {
        let fd = open(file.path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            throw LoadError(description: "\(file.label): cannot read \(file.path): \(String(cString: strerror(errno)))")
        }
        defer { close(fd) }
        var bytes = [UInt8](repeating: 0, count: maxFileBytes + 1)
        var total = 0
        while total <= maxFileBytes {
            let n = bytes.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress! + total, maxFileBytes + 1 - total) }
            if n < 0 && errno == EINTR { continue }
            if n < 0 { throw LoadError(description: "\(file.label): cannot read \(file.path): \(String(cString: strerror(errno)))") }
            if n == 0 { break }
            total += n
        }
        if total > maxFileBytes { throw LoadError(description: "\(file.label): \(file.path) is larger than \(maxFileBytes) bytes") }
        let text = String(decoding: bytes[0..<total], as: UTF8.self)
        guard text.contains("-----BEGIN "), text.contains(marker) else {
            throw LoadError(description: "\(file.label): \(file.path) is not PEM (no \"-----BEGIN … \(marker)\" line)")
        }
        return text
    }
}

/// The server's connection limits (see the file header).
public struct HTTPLimits: Sendable {
    /// Open connections in all; one more is closed at accept.
    public var maxConnections = 256
    /// Open connections from one peer address; 0: no limit of its own.
    public var maxConnectionsPerAddress = 0
    /// MHD_OPTION_CONNECTION_TIMEOUT: seconds without a byte either way.
    public var idleTimeoutSeconds: UInt32 = 30
    /// Seconds from a connection's opening (or its previous answer) within
    /// which a request must arrive and its answer be sent; 0: none.
    public var requestDeadline = 0.0

    public init(maxConnections: Int = 256, maxConnectionsPerAddress: Int = 0, idleTimeoutSeconds: UInt32 = 30,
                requestDeadline: Double = 0) {
        self.maxConnections = maxConnections
        self.maxConnectionsPerAddress = maxConnectionsPerAddress
        self.idleTimeoutSeconds = idleTimeoutSeconds
        self.requestDeadline = requestDeadline
    }
}

public final class HTTPServer {
    public typealias Handler = (HTTPRequest, HTTPResponder) -> Void
    /// Sees a request with its headers and an empty body before any of the
    /// body is read; a response refuses it there (see the file header).
    public typealias Admission = (HTTPRequest) -> HTTPResponse?
    /// Called with a request's headers (no body), after `admit`: a stream to
    /// take its body piece by piece, or nil to collect it and call the
    /// handler as usual. It may answer at once through the responder (and
    /// return nil).
    public var streamer: ((HTTPRequest, HTTPResponder) -> HTTPBodyStream?)?

    public let loop: EventLoop
    public let maxBodyBytes: Int
    /// The longest request target (path and query, as sent) handed to the
    /// handler; longer ones are answered 414 with a JSON body. MHD's own
    /// per-connection memory (`connectionMemoryBytes`) is far larger, so
    /// its HTML error page is reached only by request lines beyond it.
    public let maxTargetBytes: Int
    /// MHD_OPTION_CONNECTION_MEMORY_LIMIT: the request line and headers must fit.
    public static let connectionMemoryBytes = 256 * 1024
    public private(set) var port: UInt16 = 0
    public private(set) var requests: UInt64 = 0
    /// Refusals by cause (HTTPRefusal's raw values).
    private var refused = [UInt64](repeating: 0, count: HTTPRefusal.allCases.count)
    public func refusals(_ cause: HTTPRefusal) -> UInt64 { refused[cause.rawValue] }
    public var rejectedBodies: UInt64 { refusals(.bodyTooLarge) }
    public var rejectedTargets: UInt64 { refusals(.targetTooLong) }
    /// Asked at header time; nil admits every request.
    public var admit: Admission?

    private var daemon: OpaquePointer?
    private var handler: Handler
    private var io: IOWatcher?
    private var timer: TimerWatcher?
    /// Runs MHD on a later turn, after a resume (whose wake-up would
    /// otherwise only arrive through the epoll descriptor).
    fileprivate lazy var runSoon = DeferOnce(loop: loop) { [weak self] in self?.run() }
    /// Requests waiting for a late answer. MHD must not be stopped while a
    /// connection is suspended, so `stop()` answers these first.
    fileprivate var suspended: [ObjectIdentifier: HTTPResponder] = [:]

    var isRunning: Bool { daemon != nil }

    public private(set) var limits = HTTPLimits()
    /// One open connection: its peer address (the per-address count's key)
    /// and when it must have been answered (nil while the collector answers).
    fileprivate final class Slot {
        let address: [UInt8]
        var deadline: Double?
        init(address: [UInt8]) { self.address = address }
    }
    /// Open connections by MHD connection, from MHD's start to close notification.
    private var slots: [OpaquePointer: Slot] = [:]
    private var perAddress: [[UInt8]: Int] = [:]
    private var deadlineTimer: TimerWatcher?

    /// Per-request state kept in MHD's `con_cls` (retained until MHD reports
    /// the request completed).
    fileprivate final class Exchange {
        var body: [UInt8] = []
        var tooLarge = false
        /// The request target as sent (from the URI log callback).
        var target = ""
        var targetBytes = 0
        /// MHD's first call for a request carries the headers only.
        var headersSeen = false
        /// The reader of a streamed body (nil: the body is collected).
        var stream: HTTPBodyStream?
        let responder = HTTPResponder()
    }

    public init(loop: EventLoop, maxBodyBytes: Int = 1 << 20, maxTargetBytes: Int = 8192, handler: @escaping Handler) {
        self.loop = loop
        self.maxBodyBytes = maxBodyBytes
        self.maxTargetBytes = maxTargetBytes
        self.handler = handler
    }

    deinit { stop() }

    /// Binds and starts serving. Throws naming the address when MHD cannot.
    public func start(address: SocketAddress, connectionLimit: UInt32 = 256, timeoutSeconds: UInt32 = 30) throws {
        try start(address: address, limits: HTTPLimits(maxConnections: Int(connectionLimit), idleTimeoutSeconds: timeoutSeconds))
    }

    /// Binds and starts serving with `limits`, over TLS when `tls` is given.
    /// Throws naming the address when MHD cannot.
    public func start(address: SocketAddress, limits: HTTPLimits, tls: HTTPTLSMaterial? = nil) throws {
        self.limits = limits
        // GnuTLS copies the PEM text when the daemon starts; kept until stop anyway.
        if let tls {
            tlsStrings = (strdup(tls.keyPEM), strdup(tls.certificatePEM))
        }
        let me = Unmanaged.passUnretained(self).toOpaque()
        var o = cmhd_options()
        // MHD's own bound stays above ours, so every refusal is ours and counted.
        o.connection_limit = UInt32(clamping: limits.maxConnections + 16)
        o.timeout_seconds = limits.idleTimeoutSeconds
        o.connection_memory_limit = HTTPServer.connectionMemoryBytes
        if let (k, c) = tlsStrings {
            o.tls_key_pem = UnsafePointer(k)
            o.tls_cert_pem = UnsafePointer(c)
        }
        let d: OpaquePointer? = address.withSockaddr { sa, _ in
            cmhd_start(sa, address.family == AF_INET6 ? 1 : 0, { cls, conn, url, method, _, upload, uploadSize, conCls in
                let server = Unmanaged<HTTPServer>.fromOpaque(cls!).takeUnretainedValue()
                return server.access(conn!, url!, method!, upload, uploadSize!, conCls!)
            }, me, { cls, conn, conCls, _ in
                if let conn { Unmanaged<HTTPServer>.fromOpaque(cls!).takeUnretainedValue().armDeadline(conn) }
                guard let p = conCls?.pointee else { return }
                let ex = Unmanaged<Exchange>.fromOpaque(p).takeRetainedValue()
                ex.responder.server?.suspended.removeValue(forKey: ObjectIdentifier(ex.responder))
                ex.responder.finished = true
                ex.responder.connection = nil
                conCls!.pointee = nil
                // A streamed body not read to its end: its reader is told.
                if let stream = ex.stream {
                    ex.stream = nil
                    stream.cancelled()
                }
            }, me, { _, uri, conn in
                // Before the access handler: the exchange starts here, with the target as sent.
                let ex = Exchange()
                if let uri {
                    ex.targetBytes = strlen(uri)
                    ex.target = String(cString: uri)
                }
                ex.responder.connection = conn
                return Unmanaged.passRetained(ex).toOpaque()
            }, me, { cls, sa, _ in
                Unmanaged<HTTPServer>.fromOpaque(cls!).takeUnretainedValue().acceptPolicy(sa)
            }, me, { cls, conn, _, code in
                guard let conn else { return }
                let server = Unmanaged<HTTPServer>.fromOpaque(cls!).takeUnretainedValue()
                if code == .CONNECTION_NOTIFY_STARTED { server.opened(conn) } else { server.closed(conn) }
            }, me, &o)
        }
        guard let d else {
            let e = errno
            freeTLSStrings()
            if tls != nil { throw TLSStartError(address: address) }
            throw SyscallError(call: "MHD_start_daemon(\(address))", errno: e == 0 ? EADDRINUSE : e)
        }
        daemon = d
        port = cmhd_bound_port(d)
        let fd = cmhd_epoll_fd(d)
        precondition(fd >= 0, "MHD started without an epoll descriptor")
        io = IOWatcher(loop: loop, fd: fd, events: .read) { [unowned self] _, _ in self.run() }
        io!.start()
        timer = TimerWatcher(loop: loop) { [unowned self] _ in self.run() }
        rearmTimer()
        if limits.requestDeadline > 0 {
            let t = TimerWatcher(loop: loop) { [unowned self] _ in self.enforceDeadlines() }
            let step = min(1.0, max(0.05, limits.requestDeadline / 4))
            t.start(after: step, repeat: step)
            deadlineTimer = t
        }
    }

    public func stop() {
        io?.stop(); io = nil
        timer?.stop(); timer = nil
        deadlineTimer?.stop(); deadlineTimer = nil
        guard let d = daemon else { return }
        if !suspended.isEmpty {
            for r in suspended.values {
                r.respond(HTTPResponse(status: 503, text: "{\"error\":\"shutting down\",\"detail\":null}"))
            }
            suspended.removeAll()
            MHD_run(d)   // processes the resumes; MHD refuses to stop with suspended connections
        }
        daemon = nil
        MHD_stop_daemon(d)
        freeTLSStrings()
    }

    /// The PEM text given to MHD (strdup'ed), freed after the daemon stops.
    private var tlsStrings: (UnsafeMutablePointer<CChar>?, UnsafeMutablePointer<CChar>?)?

    private func freeTLSStrings() {
        if let (k, c) = tlsStrings { free(k); free(c) }
        tlsStrings = nil
    }

    /// MHD would not start with the TLS material (GnuTLS refused the key or
    /// certificate, or they do not match), or could not bind.
    public struct TLSStartError: Error, CustomStringConvertible {
        public let address: SocketAddress
        public var description: String {
            "MHD_start_daemon(\(address)) with TLS failed: the key or certificate was refused (not matching, "
                + "encrypted, or not a key and certificate GnuTLS reads), or the address is in use (libmicrohttpd's log line above says which)"
        }
    }

    public var connectionCount: Int { daemon.map { Int(cmhd_connection_count($0)) } ?? 0 }

    // MARK: connection limits and deadlines

    /// The peer's address bytes (4 for IPv4, 16 for IPv6), the per-address key.
    private static func addressKey(_ sa: UnsafePointer<sockaddr>?) -> [UInt8] {
        guard let sa else { return [] }
        switch Int32(sa.pointee.sa_family) {
        case AF_INET:
            return sa.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { p in
                withUnsafeBytes(of: p.pointee.sin_addr) { Array($0) }
            }
        case AF_INET6:
            return sa.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { p in
                withUnsafeBytes(of: p.pointee.sin6_addr) { Array($0) }
            }
        default:
            return []
        }
    }

    /// MHD's accept policy: refuses (closes at accept) beyond the limits.
    private func acceptPolicy(_ sa: UnsafePointer<sockaddr>?) -> MHD_Result {
        if slots.count >= limits.maxConnections {
            refused[HTTPRefusal.connectionLimit.rawValue] &+= 1
            return .NO
        }
        if limits.maxConnectionsPerAddress > 0, perAddress[HTTPServer.addressKey(sa), default: 0] >= limits.maxConnectionsPerAddress {
            refused[HTTPRefusal.addressLimit.rawValue] &+= 1
            return .NO
        }
        return .YES
    }

    private func opened(_ conn: OpaquePointer) {
        let slot = Slot(address: HTTPServer.addressKey(cmhd_connection_address(conn)))
        slots[conn] = slot
        perAddress[slot.address, default: 0] += 1
        armDeadline(conn)
    }

    private func closed(_ conn: OpaquePointer) {
        guard let slot = slots.removeValue(forKey: conn) else { return }
        let n = perAddress[slot.address, default: 1] - 1
        if n <= 0 { perAddress.removeValue(forKey: slot.address) } else { perAddress[slot.address] = n }
    }

    /// Starts a connection's deadline anew: at its opening, when its
    /// answer is queued and after each answer.
    fileprivate func armDeadline(_ conn: OpaquePointer) {
        guard limits.requestDeadline > 0, let slot = slots[conn] else { return }
        slot.deadline = Clock.monotonic() + limits.requestDeadline
    }

    /// Stops a connection's deadline while the collector works on its answer.
    private func pauseDeadline(_ conn: OpaquePointer) {
        slots[conn]?.deadline = nil
    }

    private func enforceDeadlines() {
        let now = Clock.monotonic()
        var shut = false
        for (conn, slot) in slots {
            guard let d = slot.deadline, d <= now else { continue }
            slot.deadline = nil
            let fd = cmhd_connection_fd(conn)
            guard fd >= 0 else { continue }
            refused[HTTPRefusal.deadline.rawValue] &+= 1
            // MHD sees the end of the stream on its next run and closes it.
            _ = Glibc.shutdown(fd, Int32(SHUT_RDWR))
            shut = true
        }
        if shut { runSoon.schedule() }
    }

    private func run() {
        guard let d = daemon else { return }
        MHD_run(d)
        rearmTimer()
    }

    private func rearmTimer() {
        guard let d = daemon, let timer else { return }
        var ms: UInt64 = 0
        if MHD_get_timeout(d, &ms) == .YES {
            timer.start(after: Double(ms) / 1000)
        } else {
            timer.stop()
        }
    }

    // MARK: MHD access handler

    private func access(_ conn: OpaquePointer, _ url: UnsafePointer<CChar>, _ method: UnsafePointer<CChar>,
                        _ upload: UnsafePointer<CChar>?, _ uploadSize: UnsafeMutablePointer<Int>,
                        _ conCls: UnsafeMutablePointer<UnsafeMutableRawPointer?>) -> MHD_Result {
        // First call: headers only. The exchange exists since the URI log
        // callback (created here should MHD not have called it).
        if conCls.pointee == nil {
            let ex = Exchange()
            ex.responder.connection = conn
            conCls.pointee = Unmanaged.passRetained(ex).toOpaque()
        }
        let ex = Unmanaged<Exchange>.fromOpaque(conCls.pointee!).takeUnretainedValue()
        if !ex.headersSeen {
            ex.headersSeen = true
            ex.responder.server = self
            if let admit {
                let head = HTTPRequest(method: String(cString: method), path: String(cString: url), target: ex.target,
                                       query: values(conn, .GET_ARGUMENT_KIND), headers: values(conn, .HEADER_KIND, lower: true))
                if let r = admit(head) {
                    // Queued before the body: MHD sends no `100 Continue`,
                    // reads none of the body and closes after the answer.
                    refused[HTTPRefusal.beforeBody.rawValue] &+= 1
                    ex.responder.response = r
                    return queue(conn, r)
                }
            }
            if let streamer, ex.targetBytes <= maxTargetBytes {
                let req = HTTPRequest(method: String(cString: method), path: String(cString: url), target: ex.target,
                                      query: values(conn, .GET_ARGUMENT_KIND), headers: values(conn, .HEADER_KIND, lower: true))
                ex.stream = streamer(req, ex.responder)
                if ex.stream != nil {
                    requests &+= 1
                    pauseDeadline(conn)
                }
                // Answered from the headers alone: sent before any body is read.
                if let r = ex.responder.response { return queue(conn, r) }
            }
            return .YES
        }
        if let stream = ex.stream {
            if uploadSize.pointee > 0 {
                // Answered already: the rest of the body is read and dropped.
                if ex.responder.response != nil { uploadSize.pointee = 0; return .YES }
                let n = upload.map { stream.consume(UnsafeRawBufferPointer(start: $0, count: uploadSize.pointee), ex.responder) } ?? uploadSize.pointee
                uploadSize.pointee -= min(max(n, 0), uploadSize.pointee)
                if uploadSize.pointee > 0 && ex.responder.response == nil {
                    ex.responder.suspended = true
                    suspended[ObjectIdentifier(ex.responder)] = ex.responder
                    MHD_suspend_connection(conn)
                }
                return .YES
            }
            if let r = ex.responder.response { return queue(conn, r) }
            ex.stream = nil
            stream.finish(ex.responder)
            if let r = ex.responder.response { return queue(conn, r) }
            ex.responder.suspended = true
            suspended[ObjectIdentifier(ex.responder)] = ex.responder
            MHD_suspend_connection(conn)
            return .YES
        }
        // Body chunks.
        if uploadSize.pointee > 0 {
            if ex.body.count + uploadSize.pointee > maxBodyBytes {
                ex.tooLarge = true
            } else if let upload {
                upload.withMemoryRebound(to: UInt8.self, capacity: uploadSize.pointee) {
                    ex.body.append(contentsOf: UnsafeBufferPointer(start: $0, count: uploadSize.pointee))
                }
            }
            uploadSize.pointee = 0
            return .YES
        }
        // Whole request is here (or we were resumed with an answer).
        if let r = ex.responder.response { return queue(conn, r) }
        if ex.tooLarge {
            refused[HTTPRefusal.bodyTooLarge.rawValue] &+= 1
            return queue(conn, HTTPResponse(status: 413, text: "{\"error\":\"request body too large\",\"detail\":{\"limit_bytes\":\(maxBodyBytes)}}"))
        }
        if ex.targetBytes > maxTargetBytes {
            refused[HTTPRefusal.targetTooLong.rawValue] &+= 1
            return queue(conn, HTTPResponse(status: 414, text: "{\"error\":\"request target too long\",\"detail\":{\"limit_bytes\":\(maxTargetBytes),\"bytes\":\(ex.targetBytes)}}"))
        }
        requests &+= 1
        pauseDeadline(conn)
        let req = HTTPRequest(method: String(cString: method), path: String(cString: url), target: ex.target,
                              query: values(conn, .GET_ARGUMENT_KIND), headers: values(conn, .HEADER_KIND, lower: true),
                              body: ex.body)
        ex.body = []
        handler(req, ex.responder)
        if let r = ex.responder.response { return queue(conn, r) }
        ex.responder.suspended = true
        suspended[ObjectIdentifier(ex.responder)] = ex.responder
        MHD_suspend_connection(conn)
        return .YES
    }

    private func queue(_ conn: OpaquePointer, _ r: HTTPResponse) -> MHD_Result {
        armDeadline(conn)
        let resp = r.body.withUnsafeBytes { b in
            MHD_create_response_from_buffer(b.count, UnsafeMutableRawPointer(mutating: b.baseAddress), .RESPMEM_MUST_COPY)
        }
        guard let resp else { return .NO }
        MHD_add_response_header(resp, "Content-Type", r.contentType)
        for (k, v) in r.headers { MHD_add_response_header(resp, k, v) }
        let ok = MHD_queue_response(conn, UInt32(r.status), resp)
        MHD_destroy_response(resp)
        return ok
    }

    private final class Collected {
        var values: [String: String] = [:]
        let lower: Bool
        init(lower: Bool) { self.lower = lower }
    }

    private func values(_ conn: OpaquePointer, _ kind: MHD_ValueKind, lower: Bool = false) -> [String: String] {
        let c = Collected(lower: lower)
        let cls = Unmanaged.passUnretained(c).toOpaque()
        _ = MHD_get_connection_values(conn, kind, { cls, _, key, value in
            let c = Unmanaged<Collected>.fromOpaque(cls!).takeUnretainedValue()
            guard let key else { return .YES }
            let k = String(cString: key)
            c.values[c.lower ? k.lowercased() : k] = value.map { String(cString: $0) } ?? ""
            return .YES
        }, cls)
        return c.values
    }
}
