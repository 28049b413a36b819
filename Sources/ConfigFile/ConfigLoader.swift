// ConfigLoader: the layering every Vigil program uses —
//   defaults < file < environment `VIGIL_<KEY>` (when the schema has a prefix) < `--set`
// — collecting every error of every layer, and of the program's own checks
// (`ConfigCheck`) on the keys that passed, before giving up, so the process
// can print them all and exit non-zero before opening any socket.
#if canImport(Glibc)
import Glibc
#endif

extension ConfigSchema {
    /// Reads `path` (if any) and resolves the layers. `environment` is
    /// consulted only when the schema has an `environmentPrefix`; empty
    /// variables count as unset (container tools often pass `X=`).
    public func load(file path: String?, environment: [String: String] = [:],
                     overrides: [(key: String, value: String)] = [], checks: [ConfigCheck] = []) throws(ConfigErrors) -> Configuration {
        var text: String?
        if let path {
            switch ConfigFileReader.read(path) {
            case .success(let t): text = t
            case .failure(let e): throw ConfigErrors([e])
            }
        }
        return try load(text: text, path: path ?? "", environment: environment, overrides: overrides, checks: checks)
    }

    /// As `load(file:…)` with the file's text already in hand (`path` names
    /// it in messages); `text` nil means no file. `checks` run on the keys
    /// that loaded without an error of their own (`ConfigCheck`).
    public func load(text: String?, path: String, environment: [String: String] = [:],
                     overrides: [(key: String, value: String)] = [], checks: [ConfigCheck] = []) throws(ConfigErrors) -> Configuration {
        var config = Configuration(defaultsOf: self)
        var errors: [ConfigError] = []
        var attempted = Set<String>()       // keys that had a value, valid or not

        if let text {
            let (lines, syntax) = ConfigFileParser.parse(text, path: path)
            errors += syntax
            for e in syntax { if let k = e.key { attempted.insert(k) } }
            var firstLine: [String: Int] = [:]
            for l in lines {
                let at = ConfigLocation.file(path: path, line: l.line)
                if let first = firstLine[l.key] {
                    errors.append(ConfigError(location: at, key: l.key, problem: .duplicateKey(firstLine: first)))
                    continue
                }
                firstLine[l.key] = l.line
                attempted.insert(l.key)
                if let e = config.set(l.key, text: l.value, origin: .file(path: path, line: l.line), location: at) {
                    errors.append(e)
                }
            }
        }

        if environmentPrefix != nil {
            for k in keys {
                guard let name = environmentVariable(for: k.name), let v = environment[name], !v.isEmpty else { continue }
                attempted.insert(k.name)
                if let e = config.set(k.name, text: v, origin: .environment(variable: name), location: .environment(variable: name)) {
                    errors.append(e)
                }
            }
        }

        var given = Set<String>()
        for (key, value) in overrides {
            if !given.insert(key).inserted {
                errors.append(ConfigError(location: .commandLine, key: key, problem: .givenTwice))
                continue
            }
            attempted.insert(key)
            if let e = config.set(key, text: value, origin: .commandLine, location: .commandLine) { errors.append(e) }
        }

        // A key with an error of its own keeps an earlier layer's value (or
        // none): checks that read it would judge a value nobody meant.
        let failed = Set(errors.compactMap(\.key)).union(config.missingRequired)
        errors += config.errors(of: checks, skipping: failed)

        for k in config.missingRequired where !attempted.contains(k) {
            var hint = "set it in the configuration file"
            if let v = environmentVariable(for: k) { hint += ", in \(v)" }
            hint += " or with --set \(k)=…"
            let at: ConfigLocation = path.isEmpty ? .update : .file(path: path, line: nil)
            errors.append(ConfigError(location: at, key: k, problem: .missingRequired(hint: hint)))
        }

        if !errors.isEmpty { throw ConfigErrors(errors) }
        return config
    }
}

/// The process environment as a dictionary (no Foundation: walks `environ`).
public enum ConfigEnvironment {
    public static func current() -> [String: String] {
        var env: [String: String] = [:]
        var p = environ
        while let entry = p.pointee {
            let s = String(cString: entry)
            if let eq = s.firstIndex(of: "=") { env[String(s[..<eq])] = String(s[s.index(after: eq)...]) }
            p += 1
        }
        return env
    }
}

/// Reads a configuration file whole, refusing files above `limit` bytes
/// (memory is bounded even when pointed at the wrong file).
public enum ConfigFileReader {
    public static let defaultLimit = 1 << 20

    public static func read(_ path: String, limit: Int = defaultLimit) -> Result<String, ConfigError> {
        let at = ConfigLocation.file(path: path, line: nil)
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 { return .failure(ConfigError(location: at, key: nil, problem: .unreadable(reason: errnoText(errno)))) }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 16384)
        while true {
            let n = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                return .failure(ConfigError(location: at, key: nil, problem: .unreadable(reason: errnoText(errno))))
            }
            if n == 0 { break }
            bytes += chunk[0..<n]
            if bytes.count > limit { return .failure(ConfigError(location: at, key: nil, problem: .tooLarge(limit: limit))) }
        }
        return .success(String(decoding: bytes, as: UTF8.self))
    }

    static func errnoText(_ e: Int32) -> String {
        String(cString: strerror(e))
    }
}
