// ReadScratch: the one read buffer a loop thread lends to whichever TCP
// connection is reading.
//
// A collector holds 10^4–10^5 connections that are idle most of the time.
// Giving each its own read buffer would pin megabytes for nothing, so a
// connection reads into this per-thread buffer, lets its consumer parse what
// is there, and only copies the unparsed tail (a partial frame) into a buffer
// of its own. A connection with no partial frame holds no read memory.
//
// Thread: the buffer is per thread (pthread key), and a loop runs on one
// thread, so no locking is needed. It is lent to one reader at a time; a
// nested borrow (a consumer that runs the loop re-entrantly) gets nil and the
// caller falls back to a private buffer.
#if canImport(Glibc)
import Glibc
#endif

enum ReadScratch {
    /// Bytes in the scratch buffer: the most one read(2) can return.
    static let size = 64 * 1024

    private final class Slot {
        let buffer = ByteBuffer(capacity: ReadScratch.size, limit: ReadScratch.size)
        var lent = false
    }

    private static let key: pthread_key_t = {
        var k = pthread_key_t()
        // The destructor gives back the retain taken in `slot()` when the
        // thread exits.
        let rc = pthread_key_create(&k) { p in Unmanaged<Slot>.fromOpaque(p!).release() }
        precondition(rc == 0, "pthread_key_create failed: \(rc)")
        return k
    }()

    private static func slot() -> Slot {
        if let p = pthread_getspecific(key) {
            return Unmanaged<Slot>.fromOpaque(p).takeUnretainedValue()
        }
        let s = Slot()
        pthread_setspecific(key, Unmanaged.passRetained(s).toOpaque())
        return s
    }

    /// The empty scratch buffer, or nil while it is lent out.
    static func borrow() -> ByteBuffer? {
        let s = slot()
        if s.lent { return nil }
        s.lent = true
        return s.buffer
    }

    /// Returns the buffer, emptied, for the next reader.
    static func giveBack(_ buffer: ByteBuffer) {
        let s = slot()
        precondition(buffer === s.buffer && s.lent, "ReadScratch.giveBack of a buffer that was not lent")
        buffer.clear()
        s.lent = false
    }
}
