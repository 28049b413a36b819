// RuleFile: the filter rules the agent last received, kept in `state_dir`
// (`rules`) so a restarted agent filters — and aggregates and spools —
// before it reaches a collector, instead of dropping records as unmatched.
//
//   "VRUL" | u8 version (1) | u32 LE CRC32C of the body | body (a Wire Patterns body)
//
// Written atomically (temporary file, fsync, rename) each time the
// collector sends rules; read once at start. A missing file means no rules
// yet; a damaged one is logged and ignored (the collector's rules replace
// it at the next session), never a reason not to start.
//
// Thread: loop thread (and the main thread at start); small blocking writes.
import Reactor
import Wire

public enum RuleFile {
    static let magic: [UInt8] = Array("VRUL".utf8)
    static let version: UInt8 = 1

    public static func path(stateDir: String) -> String {
        stateDir.hasSuffix("/") ? stateDir + "rules" : stateDir + "/rules"
    }

    public static func encode(_ patterns: Patterns) -> [UInt8] {
        var w = WireWriter(capacity: 256)
        patterns.encode(into: &w)
        let crc = CRC32C.checksum(w.bytes)
        var out = magic + [version]
        for i in 0..<4 { out.append(UInt8(truncatingIfNeeded: crc >> (8 * UInt32(i)))) }
        return out + w.bytes
    }

    /// The rules in `bytes`, or why they cannot be used.
    public static func decode(_ bytes: [UInt8]) -> Result<Patterns, RuleFileError> {
        guard bytes.count >= 9, Array(bytes[0..<4]) == magic, bytes[4] == version else { return .failure(.init("not a rules file")) }
        let crc = SegmentFormat.u32(bytes, 5)
        let body = Array(bytes[9...])
        guard CRC32C.checksum(body) == crc else { return .failure(.init("checksum mismatch")) }
        return body.withUnsafeBytes { raw in
            var r = WireReader(raw)
            do {
                return .success(try Patterns.decode(from: &r, limits: .default))
            } catch {
                return .failure(.init("cannot decode: \(error)"))
            }
        }
    }

    public struct RuleFileError: Error, CustomStringConvertible {
        public let description: String
        init(_ s: String) { description = s }
    }

    /// Writes `patterns` to `path` atomically; false (logged) on failure.
    @discardableResult
    public static func save(_ patterns: Patterns, to path: String) -> Bool {
        do {
            try SpoolFiles.replace(path, with: encode(patterns), sync: true)
            return true
        } catch {
            Log.warn("filter rules not saved in state_dir; a restart before the next session starts without them",
                     ["path": path, "error": "\(error)"])
            return false
        }
    }

    /// The saved rules, nil when there are none or they are unusable (logged).
    public static func load(from path: String) -> Patterns? {
        guard let bytes = SpoolFiles.readSmall(path, limit: 16 << 20) else { return nil }
        switch decode(bytes) {
        case .success(let p): return p
        case .failure(let e):
            Log.warn("saved filter rules ignored", ["path": path, "why": e.description])
            return nil
        }
    }
}
