// UDPBatch: the datagrams one recvmmsg(2) call returned, seen in place.
//
// Nothing is copied: each datagram's bytes are the receiver's own buffer
// slot, so a batch (and every pointer taken from it) is valid only inside
// the handler it was passed to. Copy what must outlive the call.
#if canImport(Glibc)
import Glibc
#endif
import CSystem

/// A view of the datagrams received by one `recvmmsg` call, in arrival order.
/// Truncated datagrams are not in it (they are counted by the receiver).
///
/// Ownership: borrowed from a `UDPReceiver`; valid only during the handler call.
public struct UDPBatch: RandomAccessCollection {
    public typealias Index = Int
    public typealias Indices = Range<Int>

    @usableFromInline let messages: UnsafeMutablePointer<csys_mmsghdr>
    public let count: Int

    @inlinable init(messages: UnsafeMutablePointer<csys_mmsghdr>, count: Int) {
        self.messages = messages
        self.count = count
    }

    @inlinable public var startIndex: Int { 0 }
    @inlinable public var endIndex: Int { count }
    @inlinable public var indices: Range<Int> { 0..<count }

    @inlinable public subscript(i: Int) -> UDPDatagram {
        precondition(i >= 0 && i < count, "UDPBatch index out of range")
        let m = messages + i
        return UDPDatagram(
            bytes: UnsafeRawBufferPointer(start: m.pointee.msg_hdr.msg_iov.pointee.iov_base, count: Int(m.pointee.msg_len)),
            name: UnsafeRawPointer(m.pointee.msg_hdr.msg_name!))
    }
}

/// One received datagram: its bytes (borrowed, see `UDPBatch`) and sender.
public struct UDPDatagram {
    public let bytes: UnsafeRawBufferPointer
    @usableFromInline let name: UnsafeRawPointer

    @inlinable init(bytes: UnsafeRawBufferPointer, name: UnsafeRawPointer) {
        self.bytes = bytes
        self.name = name
    }

    /// The sender's address (decoded on demand: costs nothing when unused).
    public var source: SocketAddress {
        SocketAddress(storage: name.load(as: sockaddr_storage.self))
    }
}
