// Log: leveled, line-oriented logging to stderr in text or JSON, shared by
// every Vigil program. One write(2) per line, so lines from a crash are not
// interleaved; no buffering to lose at exit.
//
// Thread: loop thread (the level and format are plain variables).
import JSON
#if canImport(Glibc)
import Glibc
#endif

public enum LogLevel: Int, Comparable, Sendable, CaseIterable {
    case debug = 0, info, warn, error

    public static func < (a: LogLevel, b: LogLevel) -> Bool { a.rawValue < b.rawValue }

    public var name: String {
        switch self { case .debug: return "debug"; case .info: return "info"; case .warn: return "warn"; case .error: return "error" }
    }

    public init?(name: String) {
        guard let l = LogLevel.allCases.first(where: { $0.name == name }) else { return nil }
        self = l
    }
}

public enum LogFormat: String, Sendable {
    case text, json
}

public enum Log {
    public static var level: LogLevel = .info
    public static var format: LogFormat = .text
    /// Where lines go; tests may point it at a pipe.
    public static var fd: Int32 = 2
    /// Lines written per level, for self-monitoring.
    public private(set) static var written = [UInt64](repeating: 0, count: 4)

    public static func debug(_ msg: @autoclosure () -> String, _ fields: KeyValuePairs<String, String> = [:]) {
        if level <= .debug { emit(.debug, msg(), fields) }
    }
    public static func info(_ msg: @autoclosure () -> String, _ fields: KeyValuePairs<String, String> = [:]) {
        if level <= .info { emit(.info, msg(), fields) }
    }
    public static func warn(_ msg: @autoclosure () -> String, _ fields: KeyValuePairs<String, String> = [:]) {
        if level <= .warn { emit(.warn, msg(), fields) }
    }
    public static func error(_ msg: @autoclosure () -> String, _ fields: KeyValuePairs<String, String> = [:]) {
        emit(.error, msg(), fields)
    }

    static func emit(_ lvl: LogLevel, _ msg: String, _ fields: KeyValuePairs<String, String>) {
        written[lvl.rawValue] &+= 1
        let ts = timestamp()
        var line: String
        switch format {
        case .text:
            line = "\(ts) \(lvl.name) \(msg)"
            for (k, v) in fields { line += " \(k)=\(quoteIfNeeded(v))" }
        case .json:
            line = "{\"ts\":\"\(ts)\",\"level\":\"\(lvl.name)\",\"msg\":\(jsonString(msg))"
            for (k, v) in fields { line += ",\(jsonString(k)):\(jsonString(v))" }
            line += "}"
        }
        line += "\n"
        line.withCString { p in
            var off = 0
            let n = strlen(p)
            while off < n {
                let w = Glibc.write(fd, p + off, n - off)
                if w < 0 && errno == EINTR { continue }
                if w <= 0 { break }
                off += w
            }
        }
    }

    /// UTC time as RFC 3339 with milliseconds.
    public static func timestamp(millis: Int64 = Clock.wallMillis()) -> String {
        var t = time_t(millis / 1000)
        var tmv = tm()
        gmtime_r(&t, &tmv)
        func pad(_ v: Int32, _ w: Int) -> String {
            let s = String(v)
            return String(repeating: "0", count: max(0, w - s.count)) + s
        }
        return "\(pad(tmv.tm_year + 1900, 4))-\(pad(tmv.tm_mon + 1, 2))-\(pad(tmv.tm_mday, 2))T"
            + "\(pad(tmv.tm_hour, 2)):\(pad(tmv.tm_min, 2)):\(pad(tmv.tm_sec, 2)).\(pad(Int32(millis % 1000), 3))Z"
    }

    private static func quoteIfNeeded(_ v: String) -> String {
        if v.isEmpty { return "\"\"" }
        if v.utf8.contains(where: { $0 == 0x20 || $0 == 0x22 || $0 == 0x3D || $0 < 0x20 }) { return jsonString(v) }
        return v
    }

    /// A JSON string literal for `s`: JSON's one escaper (quotes,
    /// backslashes, controls and DEL escaped), so a log line and an API
    /// answer quote a string the same way.
    public static func jsonString(_ s: String) -> String { JSON.quoted(s) }
}

/// Rate-limits log lines per key (e.g. per source address): at most one
/// line per key per `interval` seconds, counting what was suppressed. The
/// table is bounded; when full, the oldest entries are forgotten.
public struct LogLimiter {
    public let interval: Double
    public let maxKeys: Int
    private var lastLogged: [String: Double] = [:]
    public private(set) var suppressed: UInt64 = 0

    public init(interval: Double = 60, maxKeys: Int = 4096) {
        self.interval = interval
        self.maxKeys = maxKeys
    }

    /// True when a line for `key` may be written at time `now` (seconds).
    public mutating func allow(_ key: String, now: Double) -> Bool {
        if let last = lastLogged[key], now - last < interval {
            suppressed &+= 1
            return false
        }
        if lastLogged.count >= maxKeys {
            lastLogged = lastLogged.filter { now - $0.value < interval }
            if lastLogged.count >= maxKeys { suppressed &+= 1; return false }
        }
        lastLogged[key] = now
        return true
    }
}
