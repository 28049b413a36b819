// LedgerFile: an append-only text file written through one buffer, so a
// thousand acknowledgements a second cost a few write(2) calls, not a
// thousand. Lines reach the file when the buffer passes 64 KiB, on
// `flush()`, and on `close()`; a load generator killed with SIGKILL loses
// at most the buffered tail, which only makes the ledger claim less.
#if canImport(Glibc)
import Glibc
#endif
import Reactor

/// Where ledger lines go (a file, or memory in tests).
public protocol LedgerOutput: AnyObject {
    func append(_ line: String)
    /// Writes everything appended so far; throws naming the call and path.
    func flush() throws
}

/// A ledger file, created or truncated at open. Loop thread only.
public final class LedgerFile: LedgerOutput {
    public let path: String
    private var fd: Int32
    private var buffer: [UInt8] = []
    private static let flushAt = 64 * 1024

    public init(path: String) throws {
        self.path = path
        fd = try Syscalls.open(path, O_WRONLY | O_CREAT | O_TRUNC, mode: 0o644)
        buffer.reserveCapacity(LedgerFile.flushAt + 256)
    }

    deinit { if fd >= 0 { Syscalls.close(fd) } }

    public func append(_ line: String) {
        buffer.append(contentsOf: line.utf8)
        buffer.append(0x0A)
        if buffer.count >= LedgerFile.flushAt { try? flush() }
    }

    public func flush() throws {
        guard fd >= 0 else { throw SyscallError(call: "write(\(path))", errno: EBADF) }
        try buffer.withUnsafeBytes { try Syscalls.writeAll(fd, $0, path) }
        buffer.removeAll(keepingCapacity: true)
    }

    /// Flushes and closes; the file is complete on disk (fsync) when it returns.
    public func close() throws {
        try flush()
        try Syscalls.fsync(fd, path)
        Syscalls.close(fd)
        fd = -1
    }
}

/// Lines kept in memory (tests).
public final class MemoryLedger: LedgerOutput {
    public private(set) var lines: [String] = []
    public init() {}
    public func append(_ line: String) { lines.append(line) }
    public func flush() throws {}
}
