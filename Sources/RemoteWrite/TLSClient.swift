// TLSClient: a GnuTLS client session over a Reactor `TCPConnection`, for
// `https://` remote-write receivers — nonblocking, on the loop.
//
// GnuTLS never touches the socket: its transport is a push function that
// queues ciphertext on the connection (`TCPConnection.write`) and a pull
// function that takes it from the buffer the connection lends during
// `connection(_:didRead:)`. Both say EAGAIN when they cannot go on (nothing
// lent, or the connection's queue above its high watermark), so the
// handshake and record I/O are steps driven by the connection's events:
// bytes read, writability regained. After an EAGAIN,
// `gnutls_record_get_direction` tells which of the two the session waits
// for. GNUTLS_E_INTERRUPTED is retried at once.
//
// Checks: the session verifies the peer's chain against the credentials'
// CAs and the certificate against the URL's host
// (`gnutls_session_set_verify_cert`: DNS names and IP addresses in the
// subject alternative names); a failure is an error that names it
// (certificate not trusted, hostname mismatch, expired). SNI is sent for a
// DNS name (RFC 6066 has no IP-address form).
//
// Bounded: ciphertext waits in the connection's read buffer (its
// `maxReadBuffer`) and write queue (refused above the high watermark, so
// at most one record beyond it); plaintext in one buffer of
// `maxPlaintext` bytes that the consumer must drain.
//
// Thread: the loop thread. One session per connection; `close()` sends a
// close_notify (gnutls_bye) and closes the connection gracefully.
#if canImport(Glibc)
import Glibc
#endif
import CGnuTLS
import Reactor

/// What a TLS session failed on, as a sentence.
public struct TLSError: Error, Equatable, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// The CAs a TLS client trusts: a PEM file, or the system trust store.
/// Loaded once (a file read, at start); shared by every session after.
public final class TLSCredentials: @unchecked Sendable {
    let handle: gnutls_certificate_credentials_t
    /// The CA file's path, or "the system trust store".
    public let source: String
    /// Certificates loaded.
    public let count: Int

    /// `caFile` empty or nil: the system trust store
    /// (gnutls_certificate_set_x509_system_trust).
    public init(caFile: String?) throws(TLSError) {
        var h: gnutls_certificate_credentials_t?
        guard gnutls_certificate_allocate_credentials(&h) == GNUTLS_E_SUCCESS, let h else {
            throw TLSError("cannot allocate TLS credentials")
        }
        let n: Int32
        if let caFile, !caFile.isEmpty {
            source = caFile
            n = gnutls_certificate_set_x509_trust_file(h, caFile, GNUTLS_X509_FMT_PEM)
        } else {
            source = "the system trust store"
            n = gnutls_certificate_set_x509_system_trust(h)
        }
        guard n > 0 else {
            gnutls_certificate_free_credentials(h)
            let why = n < 0 ? String(cString: gnutls_strerror(n)) : "no certificate in it"
            throw TLSError("cannot load CA certificates from \(source): \(why)")
        }
        handle = h
        count = Int(n)
    }

    deinit { gnutls_certificate_free_credentials(handle) }
}

final class TLSClient {
    enum Phase { case idle, handshaking, open, closed }

    private let session: gnutls_session_t
    private weak var connection: TCPConnection?
    private let credentials: TLSCredentials
    private let host: String
    /// `host` as a C string for the session's whole life:
    /// gnutls_session_set_verify_cert keeps the pointer, not a copy.
    private let verifyHost: UnsafeMutablePointer<CChar>
    private(set) var phase = Phase.idle
    /// The buffer the connection lends during a read; nil otherwise.
    private var input: ByteBuffer?
    /// Plaintext to send: queued until the handshake is done, kept while
    /// a record waits for room (GNUTLS_E_AGAIN: sent again unchanged).
    private var output: [UInt8] = []
    private var outputSent = 0
    /// Decrypted bytes for the consumer.
    let plaintext: ByteBuffer

    /// A session for a connection to `host` (a DNS name or an IP literal).
    init(credentials: TLSCredentials, host: String, connection: TCPConnection, maxPlaintext: Int) throws(TLSError) {
        var s: gnutls_session_t?
        let flags = cgnutls_client_nonblocking_flags()
        guard gnutls_init(&s, flags) == GNUTLS_E_SUCCESS, let s else { throw TLSError("cannot start a TLS session") }
        session = s
        self.credentials = credentials
        self.host = host
        verifyHost = strdup(host)
        self.connection = connection
        plaintext = ByteBuffer(capacity: 4096, limit: maxPlaintext)
        var rc = gnutls_set_default_priority(s)
        if rc == GNUTLS_E_SUCCESS { rc = gnutls_credentials_set(s, GNUTLS_CRD_CERTIFICATE, UnsafeMutableRawPointer(credentials.handle)) }
        if rc == GNUTLS_E_SUCCESS && !TLSClient.isIPLiteral(host) {
            rc = gnutls_server_name_set(s, GNUTLS_NAME_DNS, host, host.utf8.count)
        }
        guard rc == GNUTLS_E_SUCCESS else {
            gnutls_deinit(s)
            free(verifyHost)
            throw TLSError("cannot configure the TLS session: \(String(cString: gnutls_strerror(rc)))")
        }
        gnutls_session_set_verify_cert(s, verifyHost, 0)
        gnutls_transport_set_ptr(s, Unmanaged.passUnretained(self).toOpaque())
        gnutls_transport_set_push_function(s) { ptr, data, size in
            Unmanaged<TLSClient>.fromOpaque(ptr!).takeUnretainedValue().push(data, size)
        }
        gnutls_transport_set_pull_function(s) { ptr, data, size in
            Unmanaged<TLSClient>.fromOpaque(ptr!).takeUnretainedValue().pull(data, size)
        }
    }

    deinit {
        gnutls_deinit(session)
        free(verifyHost)
    }

    static func isIPLiteral(_ host: String) -> Bool {
        host.contains(":") || host.allSatisfy { $0 == "." || $0.isASCII && $0.isNumber }
    }

    // MARK: transport

    private func push(_ data: UnsafeRawPointer?, _ size: Int) -> Int {
        guard let c = connection, c.state == .open else {
            gnutls_transport_set_errno(session, EPIPE)
            return -1
        }
        guard c.isWritable, c.write(UnsafeRawBufferPointer(start: data, count: size)) else {
            gnutls_transport_set_errno(session, EAGAIN)
            return -1
        }
        return size
    }

    private func pull(_ data: UnsafeMutableRawPointer?, _ size: Int) -> Int {
        guard let b = input, b.readableBytes > 0, let data else {
            gnutls_transport_set_errno(session, EAGAIN)
            return -1
        }
        let n = min(size, b.readableBytes)
        data.copyMemory(from: b.readable.baseAddress!, byteCount: n)
        b.consume(n)
        return n
    }

    // MARK: driving the session

    /// The TCP connection is up: the handshake starts.
    func connected() throws(TLSError) {
        guard phase == .idle else { return }
        phase = .handshaking
        try step()
    }

    /// Queues `bytes` to be sent once the handshake is done.
    func send(_ bytes: [UInt8]) throws(TLSError) {
        guard phase != .closed else { throw TLSError("TLS session closed") }
        if outputSent == output.count { output.removeAll(keepingCapacity: true); outputSent = 0 }
        output.append(contentsOf: bytes)
        if phase == .open { try step() }
    }

    /// Ciphertext arrived in `buffer` (lent by the connection): the session
    /// takes what it can; `onPlaintext` runs whenever `plaintext` has new
    /// bytes (it consumes them), and `onEnd` on the peer's close_notify.
    func received(_ buffer: ByteBuffer, onPlaintext: () -> Void, onEnd: () -> Void) throws(TLSError) {
        input = buffer
        inputSeen = buffer.readableBytes
        defer { input = nil; inputSeen = 0 }
        try step()
        while phase == .open, connection?.state == .open {
            let room = min(16 * 1024, plaintext.limit - plaintext.readableBytes)
            guard room > 0, plaintext.reserve(room) else {
                throw TLSError("response larger than \(plaintext.limit) bytes unread")
            }
            let w = plaintext.writable
            let n = gnutls_record_recv(session, w.baseAddress, w.count)
            if n > 0 {
                plaintext.didWrite(n)
                onPlaintext()
                continue
            }
            if n == 0 { phase = .closed; return onEnd() }
            let rc = Int32(n)
            if rc == GNUTLS_E_INTERRUPTED { continue }
            if rc == GNUTLS_E_AGAIN {
                // A post-handshake message (a TLS 1.3 session ticket) also
                // ends in EAGAIN though more records may be lent: go on
                // while the last call took bytes.
                if wasTakingInput() { continue }
                return
            }
            if rc == GNUTLS_E_REHANDSHAKE || gnutls_error_is_fatal(rc) == 0 { continue }  // no renegotiation; warnings pass
            phase = .closed
            throw TLSError("TLS read from \(host) failed: \(String(cString: gnutls_strerror(rc)))")
        }
    }

    /// The connection's queue drained below its low watermark: a step that
    /// waited for room goes on.
    func writable() throws(TLSError) {
        guard phase == .handshaking || phase == .open, gnutls_record_get_direction(session) == 1 else { return }
        try step()
    }

    /// Sends close_notify (queued on the connection) and closes it gracefully.
    func close() {
        guard let c = connection else { return }
        if phase == .open { _ = gnutls_bye(session, GNUTLS_SHUT_WR) }
        phase = .closed
        c.close()
    }

    /// Lent bytes at the last check: an EAGAIN after the session took some
    /// of them is not yet the end of what it can do with them.
    private var inputSeen = 0

    private func wasTakingInput() -> Bool {
        let left = input?.readableBytes ?? 0
        defer { inputSeen = left }
        return left > 0 && left < inputSeen || gnutls_record_check_pending(session) > 0
    }

    /// Handshake, then queued plaintext, until done or EAGAIN.
    private func step() throws(TLSError) {
        while phase == .handshaking {
            let rc = gnutls_handshake(session)
            if rc == GNUTLS_E_SUCCESS { phase = .open; break }
            if rc == GNUTLS_E_INTERRUPTED { continue }
            if rc == GNUTLS_E_AGAIN {
                if wasTakingInput() { continue }
                return
            }
            if gnutls_error_is_fatal(rc) == 0 { continue }
            phase = .closed
            throw handshakeError(rc)
        }
        while phase == .open && outputSent < output.count {
            let n = output.withUnsafeBytes { b in
                gnutls_record_send(session, b.baseAddress! + outputSent, min(16 * 1024, b.count - outputSent))
            }
            if n > 0 { outputSent += n; continue }
            let rc = Int32(n)
            if rc == GNUTLS_E_INTERRUPTED { continue }
            if rc == GNUTLS_E_AGAIN { return }
            phase = .closed
            throw TLSError("TLS write to \(host) failed: \(String(cString: gnutls_strerror(rc)))")
        }
        if phase == .open && outputSent == output.count && output.count > 64 * 1024 {
            output = []   // give back a large request's memory
            outputSent = 0
        }
    }

    /// The handshake's failure, named: the verification status when the
    /// certificate was refused, GnuTLS's message otherwise.
    private func handshakeError(_ rc: Int32) -> TLSError {
        guard rc == GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR else {
            return TLSError("TLS handshake with \(host) failed: \(String(cString: gnutls_strerror(rc)))")
        }
        let status = gnutls_session_get_verify_cert_status(session)
        var why: [String] = []
        func has(_ f: gnutls_certificate_status_t) -> Bool { status & f.rawValue != 0 }
        if has(GNUTLS_CERT_SIGNER_NOT_FOUND) || has(GNUTLS_CERT_SIGNER_NOT_CA) {
            why.append("certificate not trusted (its issuer is not among the CAs of \(credentials.source))")
        }
        if has(GNUTLS_CERT_UNEXPECTED_OWNER) { why.append("hostname mismatch (the certificate is not for \(host))") }
        if has(GNUTLS_CERT_EXPIRED) { why.append("certificate expired") }
        if has(GNUTLS_CERT_NOT_ACTIVATED) { why.append("certificate not yet valid") }
        if has(GNUTLS_CERT_REVOKED) { why.append("certificate revoked") }
        if has(GNUTLS_CERT_SIGNATURE_FAILURE) { why.append("bad certificate signature") }
        if has(GNUTLS_CERT_INSECURE_ALGORITHM) { why.append("insecure certificate algorithm") }
        if why.isEmpty { why.append("certificate refused (status 0x\(String(status, radix: 16)))") }
        return TLSError("TLS handshake with \(host) failed: " + why.joined(separator: "; "))
    }
}
