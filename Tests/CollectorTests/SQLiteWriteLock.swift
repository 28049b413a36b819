// Test support: another process holding a SQLite database's write lock
// (`BEGIN IMMEDIATE` from python3), so the collector's store can commit
// nothing until it is released — a stalled store, seen from outside.
import Foundation
import XCTest

final class SQLiteWriteLock {
    private let locker = Process()
    private let input = Pipe()

    /// Takes the write lock of the database at `path`; returns once held.
    init(path: String, file: StaticString = #filePath, line: UInt = #line) throws {
        locker.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        locker.arguments = ["-c", """
            import sqlite3, sys
            c = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=10)
            c.execute("BEGIN IMMEDIATE")
            print("locked", flush=True)
            sys.stdin.read()
            """, path]
        let out = Pipe()
        locker.standardOutput = out
        locker.standardInput = input
        try locker.run()
        XCTAssertTrue(String(decoding: out.fileHandleForReading.availableData, as: UTF8.self).hasPrefix("locked"),
                      "the write lock was not taken", file: file, line: line)
    }

    /// Ends the locking process: the lock is gone when this returns.
    func release() throws {
        try input.fileHandleForWriting.close()
        locker.waitUntilExit()
    }

    deinit { if locker.isRunning { locker.terminate() } }
}
