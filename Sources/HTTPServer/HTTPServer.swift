// HTTPServer: libmicrohttpd on a Reactor loop, with no thread of its own —
// the collector's HTTP API serves on it, and so do the monitors' tests and
// benchmark server, without the rest of the collector. MHD runs in
// external-epoll mode: we watch its epoll descriptor with an IOWatcher and
// call MHD_run when it is readable or when the timer MHD asks for
// (MHD_get_timeout) expires.
//
// A handler gets the whole request (body capped at `maxBodyBytes`, request
// target at `maxTargetBytes`; beyond either the answer is a JSON 413 or 414
// without calling it) and an
// `HTTPResponder`. It may answer at once or later (e.g. after an agent has
// answered a control request): the connection is then suspended
// (MHD_suspend_connection) and resumed when `respond` is called.
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
// request when the body is over (the rest is discarded).
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

public final class HTTPServer {
    public typealias Handler = (HTTPRequest, HTTPResponder) -> Void
    /// Called with a request's headers (no body): a stream to take its body
    /// piece by piece, or nil to collect it and call the handler as usual.
    /// It may answer at once through the responder (and return nil).
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
    public private(set) var rejectedTargets: UInt64 = 0
    public private(set) var port: UInt16 = 0
    public private(set) var requests: UInt64 = 0
    public private(set) var rejectedBodies: UInt64 = 0

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
        let me = Unmanaged.passUnretained(self).toOpaque()
        let d: OpaquePointer? = address.withSockaddr { sa, _ in
            cmhd_start(sa, address.family == AF_INET6 ? 1 : 0, { cls, conn, url, method, _, upload, uploadSize, conCls in
                let server = Unmanaged<HTTPServer>.fromOpaque(cls!).takeUnretainedValue()
                return server.access(conn!, url!, method!, upload, uploadSize!, conCls!)
            }, me, { _, _, conCls, _ in
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
            }, me, connectionLimit, timeoutSeconds, HTTPServer.connectionMemoryBytes)
        }
        guard let d else {
            throw SyscallError(call: "MHD_start_daemon(\(address))", errno: errno == 0 ? EADDRINUSE : errno)
        }
        daemon = d
        port = cmhd_bound_port(d)
        let fd = cmhd_epoll_fd(d)
        precondition(fd >= 0, "MHD started without an epoll descriptor")
        io = IOWatcher(loop: loop, fd: fd, events: .read) { [unowned self] _, _ in self.run() }
        io!.start()
        timer = TimerWatcher(loop: loop) { [unowned self] _ in self.run() }
        rearmTimer()
    }

    public func stop() {
        io?.stop(); io = nil
        timer?.stop(); timer = nil
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
    }

    public var connectionCount: Int { daemon.map { Int(cmhd_connection_count($0)) } ?? 0 }

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
            if let streamer, ex.targetBytes <= maxTargetBytes {
                let req = HTTPRequest(method: String(cString: method), path: String(cString: url), target: ex.target,
                                      query: values(conn, .GET_ARGUMENT_KIND), headers: values(conn, .HEADER_KIND, lower: true))
                ex.stream = streamer(req, ex.responder)
                if ex.stream != nil { requests &+= 1 }
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
            rejectedBodies &+= 1
            return queue(conn, HTTPResponse(status: 413, text: "{\"error\":\"request body too large\",\"detail\":{\"limit_bytes\":\(maxBodyBytes)}}"))
        }
        if ex.targetBytes > maxTargetBytes {
            rejectedTargets &+= 1
            return queue(conn, HTTPResponse(status: 414, text: "{\"error\":\"request target too long\",\"detail\":{\"limit_bytes\":\(maxTargetBytes),\"bytes\":\(ex.targetBytes)}}"))
        }
        requests &+= 1
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
