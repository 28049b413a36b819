// HTTPPoster: one HTTP/1.1 POST at a time to one host, on a Reactor
// `TCPConnection` — nonblocking, on the loop, nothing linked for it.
//
// Why not libcurl: the collector must not link libcurl's loader
// (docs/ARCHITECTURE.md: an idle process pays ~6 MB for it, and the
// collector keeps the monitor runners' dependencies out). A remote-write
// sender needs one request shape — a POST with a known length, one answer —
// so a small client is enough: the request is written in one go, the answer
// read with `HTTPResponseParser`, and the connection kept for the next
// request when the server allows it (keep-alive).
//
// The host is resolved with `HostResolver` (off the loop for a name; an IP
// literal needs no thread) at every new connection, so a receiver that
// moves is followed. Each request has one deadline (`timeout`, a single
// TimerWatcher): connect, TLS handshake, write and answer together.
// Completions always run on a later iteration than `post`.
//
// An `https://` URL puts a `TLSClient` (GnuTLS) between the request and
// the connection: the request is queued until the handshake is done, and
// the answer parsed from the decrypted bytes. A handshake that fails (an
// untrusted certificate, a hostname mismatch) fails the request with
// `.tls`, named, and the next attempt opens a new connection.
//
// Thread: the loop thread.
import Reactor

public final class HTTPPoster {
    public enum Failure: Error, Equatable, CustomStringConvertible {
        case resolve(String)
        case connection(String)
        case timeout
        case badResponse(String)
        case tls(String)

        public var description: String {
            switch self {
            case .resolve(let r): return "cannot resolve: \(r)"
            case .connection(let r): return r
            case .timeout: return "no answer in time"
            case .badResponse(let r): return "bad response: \(r)"
            case .tls(let r): return r
            }
        }
    }

    public typealias Completion = (Result<HTTPResponse, Failure>) -> Void

    public let loop: EventLoop
    public let url: RemoteWriteURL
    public var timeout: Double
    /// The CAs for an https URL; nil for http.
    public let credentials: TLSCredentials?
    private let resolver: HostResolver
    private var connection: TCPConnection?
    private var handler: Handler?
    /// The request deadline: one watcher, re-armed per request.
    private var timer: TimerWatcher?
    private var completion: Completion?
    /// Connections opened (for tests: keep-alive reuses one).
    public private(set) var connectionsOpened: UInt64 = 0

    /// `credentials`: required for an https URL (its CAs), ignored for http.
    public init(loop: EventLoop, url: RemoteWriteURL, timeout: Double, credentials: TLSCredentials? = nil) {
        precondition(!url.tls || credentials != nil, "an https URL needs TLS credentials")
        self.loop = loop
        self.url = url
        self.timeout = timeout
        self.credentials = url.tls ? credentials : nil
        resolver = HostResolver(loop: loop, threadLimit: 1, waitingLimit: 4)
    }

    public var isBusy: Bool { completion != nil }

    /// Sends `POST url.path` with `headers` (name, value; Host,
    /// Content-Length and Connection are added) and `body`.
    public func post(headers: [(String, String)], body: [UInt8], _ done: @escaping Completion) {
        precondition(completion == nil, "one request at a time")
        completion = done
        var head = "POST \(url.path) HTTP/1.1\r\nHost: \(url.hostHeader)\r\nContent-Length: \(body.count)\r\n"
        for (k, v) in headers { head += "\(k): \(v)\r\n" }
        head += "\r\n"
        var request = Array(head.utf8)
        request.append(contentsOf: body)
        let t = timer ?? TimerWatcher(loop: loop) { [weak self] _ in self?.fail(.timeout) }
        t.start(after: timeout)
        timer = t
        if let c = connection, c.state == .open, let h = handler {
            h.parser = HTTPResponseParser()
            if let tls = h.tls {
                do { try tls.send(request) } catch { fail(.tls(error.description)) }
            } else {
                _ = c.write(request)
            }
            return
        }
        resolver.resolve(url.host, port: url.port) { [weak self] r in
            guard let self, self.completion != nil else { return }
            switch r {
            case .failure(let e): self.fail(.resolve(e.reason))
            case .success(let addrs):
                guard let a = addrs.first else { return self.fail(.resolve("no address")) }
                self.open(a, request)
            }
        }
    }

    private func open(_ address: SocketAddress, _ request: [UInt8]) {
        var o = TCPConnection.Options()
        o.connectTimeout = timeout
        o.maxReadBuffer = 64 * 1024
        let h = Handler(self)
        handler = h
        connectionsOpened &+= 1
        let c = TCPConnection.connect(loop: loop, to: address, options: o, handler: h)
        connection = c
        guard let credentials else { _ = c.write(request); return }
        do {
            let tls = try TLSClient(credentials: credentials, host: url.host, connection: c, maxPlaintext: o.maxReadBuffer)
            h.tls = tls
            try tls.send(request)
        } catch {
            fail(.tls(error.description))
        }
    }

    /// Drops the connection and any request in flight (its completion is
    /// not called).
    public func close() {
        completion = nil
        timer?.stop()
        dropConnection(graceful: true)
    }

    /// Graceful: a TLS close_notify, then the queue flushed (an idle
    /// connection ends politely); otherwise reset at once (a failure).
    private func dropConnection(graceful: Bool = false) {
        let tls = handler?.tls
        handler?.owner = nil
        handler = nil
        if graceful, let tls, connection?.state == .open {
            tls.close()
        } else {
            connection?.abort()
        }
        connection = nil
    }

    fileprivate func fail(_ f: Failure) {
        dropConnection()
        finish(.failure(f))
    }

    fileprivate func finish(_ r: Result<HTTPResponse, Failure>) {
        timer?.stop()
        guard let done = completion else { return }
        completion = nil
        done(r)
    }

    fileprivate func read(_ c: TCPConnection, _ buffer: ByteBuffer) {
        guard let h = handler else { return buffer.consume(buffer.readableBytes) }
        do {
            let (used, response) = try h.parser.feed(buffer.readable)
            buffer.consume(used)
            guard let response else { return }
            if !response.keepAlive || buffer.readableBytes > 0 || completion == nil {
                let extra = buffer.readableBytes > 0
                buffer.consume(buffer.readableBytes)
                dropConnection(graceful: !extra)
            }
            finish(.success(response))
        } catch {
            buffer.consume(buffer.readableBytes)
            fail(.badResponse(error.description))
        }
    }

    fileprivate func closed(_ reason: TCPCloseReason) {
        guard let h = handler else { return }
        if completion != nil, let r = try? h.parser.endOfInput() {
            handler = nil
            connection = nil
            return finish(.success(r))
        }
        handler = nil
        connection = nil
        if completion != nil { finish(.failure(.connection(reason.description))) }
    }

    /// The connection's handler; `owner` is cleared when the poster drops
    /// the connection, so a late callback of an old connection does nothing.
    fileprivate final class Handler: TCPConnectionHandler {
        weak var owner: HTTPPoster?
        var parser = HTTPResponseParser()
        /// The TLS session of an https connection.
        var tls: TLSClient?
        init(_ owner: HTTPPoster) { self.owner = owner }

        private var current: HTTPPoster? {
            guard let owner, owner.handler === self else { return nil }
            return owner
        }

        func connectionDidConnect(_ c: TCPConnection) {
            guard let owner = current, let tls else { return }
            do { try tls.connected() } catch { owner.fail(.tls(error.description)) }
        }

        func connection(_ c: TCPConnection, didRead buffer: ByteBuffer) {
            guard let owner = current else { return buffer.consume(buffer.readableBytes) }
            guard let tls else { return owner.read(c, buffer) }
            do {
                try tls.received(buffer, onPlaintext: { [unowned self] in
                    // The poster may have dropped this connection while reading.
                    if let o = self.current { o.read(c, tls.plaintext) } else { tls.plaintext.consume(tls.plaintext.readableBytes) }
                }, onEnd: { [unowned self] in
                    // close_notify: the answer ends here, like a FIN.
                    self.current?.closed(.peerClosed)
                    c.close()
                })
            } catch {
                buffer.consume(buffer.readableBytes)
                current?.fail(.tls(error.description))
            }
        }

        func connectionWritabilityChanged(_ c: TCPConnection) {
            guard let owner = current, let tls, c.isWritable else { return }
            do { try tls.writable() } catch { owner.fail(.tls(error.description)) }
        }

        func connectionDidClose(_ c: TCPConnection, reason: TCPCloseReason) {
            guard let owner, owner.handler === self else { return }
            owner.closed(reason)
        }
    }
}
