// TCPConnectionHandler: what a TCP connection tells its owner.
//
// A protocol rather than five stored closures: a collector session object
// implements it directly, so 10^5 connections cost one reference each
// instead of five closure contexts. `TCPCallbacks` adapts closures for tools
// and tests.

/// The events of one `TCPConnection`, called on the loop thread.
///
/// Callbacks come from the loop — never from inside a call the owner made on
/// the connection (`write`, `close`, ...), which only schedule them. A
/// callback may call anything on the connection, including `close()` and
/// `abort()`; the connection re-checks its state when the callback returns.
public protocol TCPConnectionHandler: AnyObject {
    /// A client connection completed its connect (not called for accepted
    /// connections, which start open).
    func connectionDidConnect(_ connection: TCPConnection)

    /// About to read from the socket. A handler that must not take more
    /// input now (a per-iteration budget spent) calls `pauseReading()` here;
    /// nothing is read then, and the bytes wait in the kernel until it
    /// resumes.
    func connectionWillRead(_ connection: TCPConnection)

    /// Bytes arrived. `buffer.readable` holds everything not yet consumed;
    /// consume (`buffer.consume(n)`) what was parsed and leave a partial
    /// frame in place: it is kept and more bytes are appended after it. The
    /// buffer is lent for the duration of the call only — never keep it.
    func connection(_ connection: TCPConnection, didRead buffer: ByteBuffer)

    /// The peer shut down its sending side. Only with
    /// `Options.allowHalfOpen`; otherwise the connection flushes what is
    /// queued and closes with `.peerClosed`.
    func connectionDidReadEOF(_ connection: TCPConnection)

    /// `connection.isWritable` changed: it became false when the queued
    /// bytes reached the high watermark (pause producing) and true when they
    /// fell to the low watermark (resume). Transitions inside one iteration
    /// may be coalesced, so read `isWritable` rather than toggling.
    func connectionWritabilityChanged(_ connection: TCPConnection)

    /// Queued bytes went to the socket: `queuedBytes` fell. Called after
    /// each flush that wrote any, so an owner that accounts what its
    /// connections hold learns of every decrease when it happens, instead
    /// of polling connections that still held bytes.
    func connectionDidSend(_ connection: TCPConnection)

    /// The connection is closed, for `reason`; called exactly once, after
    /// which the connection drops its reference to the handler.
    func connectionDidClose(_ connection: TCPConnection, reason: TCPCloseReason)
}

extension TCPConnectionHandler {
    public func connectionDidConnect(_ connection: TCPConnection) {}
    public func connectionWillRead(_ connection: TCPConnection) {}
    public func connectionDidReadEOF(_ connection: TCPConnection) {}
    public func connectionWritabilityChanged(_ connection: TCPConnection) {}
    public func connectionDidSend(_ connection: TCPConnection) {}
}

/// A `TCPConnectionHandler` made of closures, for tools and tests. Without
/// `onRead`, bytes read are consumed and dropped.
public final class TCPCallbacks: TCPConnectionHandler {
    public var onConnect: ((TCPConnection) -> Void)?
    public var onRead: ((TCPConnection, ByteBuffer) -> Void)?
    public var onReadEOF: ((TCPConnection) -> Void)?
    public var onWritabilityChanged: ((TCPConnection) -> Void)?
    public var onClose: ((TCPConnection, TCPCloseReason) -> Void)?

    public init(onConnect: ((TCPConnection) -> Void)? = nil,
                onRead: ((TCPConnection, ByteBuffer) -> Void)? = nil,
                onReadEOF: ((TCPConnection) -> Void)? = nil,
                onWritabilityChanged: ((TCPConnection) -> Void)? = nil,
                onClose: ((TCPConnection, TCPCloseReason) -> Void)? = nil) {
        self.onConnect = onConnect
        self.onRead = onRead
        self.onReadEOF = onReadEOF
        self.onWritabilityChanged = onWritabilityChanged
        self.onClose = onClose
    }

    public func connectionDidConnect(_ c: TCPConnection) { onConnect?(c) }
    public func connection(_ c: TCPConnection, didRead buffer: ByteBuffer) {
        if let onRead { onRead(c, buffer) } else { buffer.consume(buffer.readableBytes) }
    }
    public func connectionDidReadEOF(_ c: TCPConnection) { onReadEOF?(c) }
    public func connectionWritabilityChanged(_ c: TCPConnection) { onWritabilityChanged?(c) }
    public func connectionDidClose(_ c: TCPConnection, reason: TCPCloseReason) { onClose?(c, reason) }
}
