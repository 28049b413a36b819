// IPAReceiver: the UDP side of ingest — one socket and one batched,
// budgeted UDPReceiver per `ipa_bind` address on `ipa_port`, each batch
// handed to the IngestPipeline in place. StatsD ingest reuses it with its
// own sink (StatsDReceiver).
//
// Changing the addresses is all-or-nothing: sockets whose address stays are
// kept (their queued datagrams with them), new ones are bound first, and
// only when every bind succeeded are the sockets that went away closed. A
// failed bind leaves the running set untouched and names the address.
//
// Thread: loop thread; owned by the runtime.
import IPAPipeline
#if canImport(Glibc)
import Glibc
#endif
import Reactor

/// The agent's instrumentation sockets. Loop thread only; owned by the
/// runtime. Closing (capture off) stops reading and closes the sockets;
/// whatever was already ingested stays in the aggregator and queues.
public final class IPAReceiver {
    public struct Settings: Equatable, Sendable {
        public var addresses: [SocketAddress]
        /// SO_RCVBUF request in bytes; 0 keeps the kernel default.
        public var receiveBuffer: Int

        public init(addresses: [SocketAddress], receiveBuffer: Int) {
            self.addresses = addresses
            self.receiveBuffer = receiveBuffer
        }
    }

    /// recvmmsg batch and per-wakeup budget: a flood costs the other
    /// watchers at most `budget` datagrams of latency per iteration.
    public static let batchSize = 64
    public static let budget = 256
    /// Whole datagrams up to 64 KiB; larger are truncated by the kernel and
    /// counted as oversize.
    public static let maxDatagramSize = 65_535

    private struct Endpoint {
        let socket: UDPSocket
        let receiver: UDPReceiver
    }

    public let loop: EventLoop
    /// Takes each datagram's bytes, valid only during the call.
    private let sink: (UnsafeRawBufferPointer) -> Void
    private var endpoints: [Endpoint] = [] { didSet { generation &+= 1 } }
    /// Changes whenever the sockets do (open, close): a cheap "did the bound
    /// addresses move" for callers that cache something derived from them.
    public private(set) var generation: UInt64 = 0
    public private(set) var settings: Settings?
    // Totals of endpoints already closed.
    private var closedKernelDrops: UInt64 = 0
    private var closedTruncated: UInt64 = 0
    private var closedDatagrams: UInt64 = 0

    public convenience init(loop: EventLoop, pipeline: IngestPipeline) {
        self.init(loop: loop) { pipeline.ingest($0) }
    }

    public init(loop: EventLoop, sink: @escaping (UnsafeRawBufferPointer) -> Void) {
        self.loop = loop
        self.sink = sink
    }

    deinit { close() }

    public var isOpen: Bool { !endpoints.isEmpty }

    /// The bound addresses (with the kernel's port when 0 was asked for).
    public var localAddresses: [SocketAddress] { endpoints.map { $0.socket.localAddress } }

    /// Datagrams the kernel dropped on our sockets (receive queue full).
    public var kernelDrops: UInt64 { endpoints.reduce(closedKernelDrops) { $0 &+ $1.receiver.kernelDrops } }
    /// Datagrams larger than `maxDatagramSize`, dropped as oversize.
    public var truncated: UInt64 { endpoints.reduce(closedTruncated) { $0 &+ $1.receiver.truncated } }
    public var datagrams: UInt64 { endpoints.reduce(closedDatagrams) { $0 &+ $1.receiver.datagrams } }

    /// Granted receive buffers, for the log.
    public var receiveBuffers: [(SocketAddress, UDPSocket.ReceiveBuffer?)] {
        endpoints.map { ($0.socket.localAddress, $0.socket.receiveBuffer) }
    }

    /// Reads each socket's drop counter now (SO_MEMINFO): drops after the
    /// last datagram are otherwise seen only when another one arrives.
    public func refreshKernelDrops() {
        for e in endpoints { try? e.receiver.refreshKernelDrops() }
    }

    /// Receives on exactly `new.addresses`. Throws the first bind failure
    /// (e.g. `bind(127.0.0.1:51712) failed: EADDRINUSE`), changing nothing.
    public func open(_ new: Settings) throws {
        var kept: [Endpoint] = []
        var created: [Endpoint] = []
        do {
            for address in new.addresses {
                if let e = endpoints.first(where: { $0.socket.localAddress == address }), !kept.contains(where: { $0.socket === e.socket }) {
                    kept.append(e)
                    continue
                }
                created.append(try makeEndpoint(address, receiveBuffer: new.receiveBuffer))
            }
        } catch {
            for e in created { e.receiver.stop(); e.socket.close() }
            throw error
        }
        for e in endpoints where !kept.contains(where: { $0.socket === e.socket }) { retire(e) }
        if new.receiveBuffer != settings?.receiveBuffer && new.receiveBuffer > 0 {
            for e in kept { _ = try? e.socket.setReceiveBuffer(new.receiveBuffer) }
        }
        endpoints = kept + created
        for e in created { e.receiver.start() }
        settings = new
    }

    /// Stops receiving and closes every socket (capture off).
    public func close() {
        for e in endpoints { retire(e) }
        endpoints = []
        settings = nil
    }

    private func makeEndpoint(_ address: SocketAddress, receiveBuffer: Int) throws -> Endpoint {
        var options = UDPSocket.Options(receiveBufferBytes: receiveBuffer > 0 ? receiveBuffer : nil)
        // "::" and "0.0.0.0" on one port side by side: each family its own socket.
        if case .v6 = address { options.v6Only = true }
        let socket = try UDPSocket(bind: address, options: options)
        let sink = self.sink
        do {
            let receiver = try UDPReceiver(
                socket: socket, loop: loop,
                config: .init(batchSize: IPAReceiver.batchSize, budget: IPAReceiver.budget,
                              maxDatagramSize: IPAReceiver.maxDatagramSize)) { batch in
                for d in batch { sink(d.bytes) }
            }
            return Endpoint(socket: socket, receiver: receiver)
        } catch {
            socket.close()
            throw error
        }
    }

    private func retire(_ e: Endpoint) {
        try? e.receiver.refreshKernelDrops()
        closedKernelDrops &+= e.receiver.kernelDrops
        closedTruncated &+= e.receiver.truncated
        closedDatagrams &+= e.receiver.datagrams
        e.receiver.stop()
        e.socket.close()
    }
}
