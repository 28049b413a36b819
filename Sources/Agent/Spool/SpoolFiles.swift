// SpoolFiles: the spool's file-system calls in one place — errno captured
// at once, EINTR retried (pread, pwrite loop), everything else a
// SyscallError naming the call and the file. Blocking calls on a local
// disk, made on the loop thread: one append or one record read at a time,
// each a few KiB.
//
// Thread: loop thread (and the main thread at start).
import Reactor
#if canImport(Glibc)
import Glibc
#endif

/// A segment file open for reading, as a `SegmentSource`; its size is read
/// again on each call (the newest segment grows while it is replayed).
final class FileSegment: SegmentSource {
    let fd: Int32
    init(path: String) throws {
        fd = try Syscalls.open(path, O_RDONLY)
    }
    deinit { Syscalls.close(fd) }

    var size: Int {
        var st = stat()
        return fstat(fd, &st) == 0 ? Int(st.st_size) : 0
    }

    func read(at offset: Int, count: Int, into buffer: inout [UInt8]) -> Bool {
        buffer.removeAll(keepingCapacity: true)
        guard count > 0 else { return true }
        buffer.append(contentsOf: repeatElement(0, count: count))
        var done = 0
        while done < count {
            let n = buffer.withUnsafeMutableBytes { b in pread(fd, b.baseAddress! + done, count - done, off_t(offset + done)) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { return false }
            done += n
        }
        return true
    }
}

enum SpoolFiles {
    static func fail(_ call: String) -> SyscallError { SyscallError(call: call, errno: errno) }

    /// Names in `dir` (without "." and ".."), unsorted.
    static func list(_ dir: String) throws -> [String] {
        guard let d = opendir(dir) else { throw fail("opendir(\(dir))") }
        defer { closedir(d) }
        var names: [String] = []
        while let e = readdir(d) {
            let name = withUnsafeBytes(of: e.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }

    static func size(_ path: String) -> Int? {
        var st = stat()
        return stat(path, &st) == 0 ? Int(st.st_size) : nil
    }

    static func unlink(_ path: String) { _ = Glibc.unlink(path) }

    static func truncate(_ fd: Int32, to size: Int, _ path: String) throws {
        while ftruncate(fd, off_t(size)) < 0 {
            if errno != EINTR { throw fail("ftruncate(\(path))") }
        }
    }

    static func datasync(_ fd: Int32, _ path: String) throws {
        while fdatasync(fd) < 0 {
            if errno != EINTR { throw fail("fdatasync(\(path))") }
        }
    }

    /// Reads a whole small file; nil when it is missing or unreadable.
    static func readSmall(_ path: String, limit: Int = 4096) -> [UInt8]? {
        guard let f = try? FileSegment(path: path) else { return nil }
        let n = min(f.size, limit)
        var b: [UInt8] = []
        return f.read(at: 0, count: n, into: &b) ? b : nil
    }

    /// Writes `bytes` to `path` atomically: a temporary file in the same
    /// directory, fsync'd when `sync`, then renamed over `path`.
    static func replace(_ path: String, with bytes: [UInt8], sync: Bool) throws {
        let tmp = path + ".tmp"
        let fd = try Syscalls.open(tmp, O_WRONLY | O_CREAT | O_TRUNC, mode: 0o600)
        do {
            try bytes.withUnsafeBytes { try Syscalls.writeAll(fd, $0, tmp) }
            if sync { try datasync(fd, tmp) }
        } catch {
            Syscalls.close(fd)
            unlink(tmp)
            throw error
        }
        Syscalls.close(fd)
        guard rename(tmp, path) == 0 else {
            let e = fail("rename(\(tmp), \(path))")
            unlink(tmp)
            throw e
        }
    }
}
