// ByteBuffer: one growable byte region with separate reader and writer
// indices, so reads land in place and nothing is allocated per read.
//
//   [0 ..< readerIndex)            consumed, reclaimed by `compact()`
//   [readerIndex ..< writerIndex)  readable
//   [writerIndex ..< capacity)     writable
//
// Growth is capped by `limit`; asking for more than the limit is refused,
// so a peer cannot make a buffer grow without bound.

public final class ByteBuffer {
    public private(set) var storage: UnsafeMutableRawPointer
    public private(set) var capacity: Int
    public private(set) var readerIndex = 0
    public private(set) var writerIndex = 0
    public let limit: Int

    public init(capacity: Int = 4096, limit: Int = 1 << 30) {
        precondition(capacity > 0 && capacity <= limit)
        self.capacity = capacity
        self.limit = limit
        storage = .allocate(byteCount: capacity, alignment: 16)
    }

    deinit { storage.deallocate() }

    public var readableBytes: Int { writerIndex - readerIndex }
    public var writableBytes: Int { capacity - writerIndex }
    public var isEmpty: Bool { readerIndex == writerIndex }

    /// The readable region. Valid until the next mutating call.
    public var readable: UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: storage + readerIndex, count: readableBytes)
    }

    /// The writable region after `reserve(_:)`; commit with `didWrite(_:)`.
    public var writable: UnsafeMutableRawBufferPointer {
        UnsafeMutableRawBufferPointer(start: storage + writerIndex, count: writableBytes)
    }

    /// Makes room for at least `n` writable bytes, first by moving the
    /// readable bytes to the front, then by growing up to `limit`.
    /// Returns false when that would exceed the limit.
    @discardableResult
    public func reserve(_ n: Int) -> Bool {
        if writableBytes >= n { return true }
        if readerIndex > 0 { compact() }
        if writableBytes >= n { return true }
        let needed = writerIndex + n
        guard needed <= limit else { return false }
        var newCap = capacity
        while newCap < needed { newCap = Swift.min(newCap * 2, limit) }
        let bigger = UnsafeMutableRawPointer.allocate(byteCount: newCap, alignment: 16)
        bigger.copyMemory(from: storage, byteCount: writerIndex)
        storage.deallocate()
        storage = bigger
        capacity = newCap
        return true
    }

    public func didWrite(_ n: Int) {
        precondition(n >= 0 && writerIndex + n <= capacity)
        writerIndex += n
    }

    public func consume(_ n: Int) {
        precondition(n >= 0 && n <= readableBytes)
        readerIndex += n
        if readerIndex == writerIndex { readerIndex = 0; writerIndex = 0 }
    }

    /// Moves readable bytes to offset 0.
    public func compact() {
        guard readerIndex > 0 else { return }
        let n = readableBytes
        if n > 0 { storage.copyMemory(from: storage + readerIndex, byteCount: n) }
        readerIndex = 0
        writerIndex = n
    }

    /// Appends bytes; returns false (writing nothing) past the limit.
    @discardableResult
    public func write(_ bytes: UnsafeRawBufferPointer) -> Bool {
        guard reserve(bytes.count) else { return false }
        if let base = bytes.baseAddress, bytes.count > 0 {
            (storage + writerIndex).copyMemory(from: base, byteCount: bytes.count)
        }
        writerIndex += bytes.count
        return true
    }

    @discardableResult
    public func write<C: Collection>(_ bytes: C) -> Bool where C.Element == UInt8 {
        guard reserve(bytes.count) else { return false }
        let dst = (storage + writerIndex).assumingMemoryBound(to: UInt8.self)
        var i = 0
        for b in bytes { dst[i] = b; i += 1 }
        writerIndex += bytes.count
        return true
    }

    public func clear() {
        readerIndex = 0
        writerIndex = 0
    }

    /// Returns the buffer to `capacity` bytes when it is empty and larger,
    /// so one burst does not pin memory forever.
    public func shrink(to target: Int) {
        guard isEmpty, capacity > target, target > 0 else { return }
        storage.deallocate()
        storage = .allocate(byteCount: target, alignment: 16)
        capacity = target
        clear()
    }

    /// A copy of the readable bytes (for tests and small messages).
    public var readableArray: [UInt8] { Array(readable) }
}
