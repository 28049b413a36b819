// LoadArguments: the command line of vigil-load, parsed into a
// LoadCommand. Pure except for reading a --key-file through the given
// reader; every refusal is a UsageError that names the option and says
// what was expected.
import Reactor
import Wire

/// What the command line asks for.
public enum LoadCommand: Equatable, Sendable {
    case run(LoadOptions)
    case verify(VerifyOptions)
    case e2e(E2EOptions)
    case help
}

public struct UsageError: Error, Equatable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

public enum LoadArguments {
    /// Options that take a value, per command.
    static let runOptions = [
        "--collector", "--key", "--key-file", "--agents", "--rate", "--max-pending", "--sources", "--duration",
        "--ramp-timeout", "--status-interval", "--batch-interval", "--items", "--inflight", "--silence",
        "--connect-timeout", "--reconnect-min", "--reconnect-max", "--drain", "--ledger", "--prefix",
        "--report-interval", "--json", "--seed",
    ]
    static let verifyOptions = ["--ledger", "--db", "--shared-db"]
    static let e2eOptions = ["--udp", "--db", "--rate", "--duration", "--window-ms", "--monitor", "--check", "--settle"]

    /// Parses `arguments` (without the program name). `readFile` returns a
    /// file's text or nil (for --key-file).
    public static func parse(_ arguments: [String], readFile: (String) -> String? = { ProcessLimits.readSmallFile($0) })
        throws(UsageError) -> LoadCommand {
        guard let first = arguments.first else { throw UsageError("no command given (density, ingest, verify or e2e); see --help") }
        if first == "--help" || first == "-h" || first == "help" { return .help }
        if arguments.contains("--help") || arguments.contains("-h") { return .help }
        let allowed = first == "verify" ? verifyOptions : first == "e2e" ? e2eOptions : runOptions
        let pairs = try split(Array(arguments.dropFirst()), allowed: allowed)
        switch first {
        case "e2e":
            return .e2e(try e2eOptions(pairs))
        case "verify":
            var ledger: String?
            var dbs: [String] = []
            var shared: [String] = []
            for (name, value) in pairs {
                switch name {
                case "--ledger": ledger = value
                case "--shared-db": shared.append(value)
                default: dbs.append(value)
                }
            }
            guard let ledger else { throw UsageError("verify needs --ledger FILE") }
            if !shared.isEmpty {
                guard shared.count == 1, dbs.isEmpty else {
                    throw UsageError("verify takes either one --shared-db PATH (every collector's database) or --db PATH per collector")
                }
                return .verify(VerifyOptions(ledgerPath: ledger, databases: shared, shared: true))
            }
            guard !dbs.isEmpty else { throw UsageError("verify needs at least one --db PATH (in collector-list order)") }
            return .verify(VerifyOptions(ledgerPath: ledger, databases: dbs))
        default:
            guard let mode = LoadMode(rawValue: first) else {
                let known = LoadMode.allCases.map(\.rawValue) + ["verify", "e2e"]
                throw UsageError("unknown command '\(first)'" + suggestion(first, known) + "; expected density, ingest, verify or e2e")
            }
            return .run(try runOptions(mode, pairs, readFile: readFile))
        }
    }

    /// `--name value` and `--name=value` pairs, in order; refuses unknown
    /// names (with a suggestion), missing values and stray words.
    static func split(_ args: [String], allowed: [String]) throws(UsageError) -> [(String, String)] {
        var out: [(String, String)] = []
        var i = 0
        while i < args.count {
            let a = args[i]
            guard a.hasPrefix("--") else { throw UsageError("unexpected argument '\(a)' (options start with --)") }
            var name = a, value: String?
            if let eq = a.firstIndex(of: "=") {
                name = String(a[..<eq])
                value = String(a[a.index(after: eq)...])
            }
            guard allowed.contains(name) else { throw UsageError("unknown option '\(name)'" + suggestion(name, allowed)) }
            if value == nil {
                guard i + 1 < args.count else { throw UsageError("\(name) needs a value") }
                i += 1
                value = args[i]
            }
            out.append((name, value!))
            i += 1
        }
        return out
    }

    static func runOptions(_ mode: LoadMode, _ pairs: [(String, String)], readFile: (String) -> String?) throws(UsageError) -> LoadOptions {
        var keyText: String?
        for (name, value) in pairs {
            if name == "--key" { keyText = value }
            if name == "--key-file" {
                guard let text = readFile(value) else { throw UsageError("--key-file: cannot read '\(value)'") }
                keyText = text.trimmingSpaces()
            }
        }
        guard let keyText else { throw UsageError("an access key is required: --key PROJECT.SECRET or --key-file FILE (from `vigil-collector keys create`)") }
        let key: AccessKey
        do { key = try AccessKey(parsing: keyText) } catch {
            throw UsageError("--key: not an access key (\(error)); expected <project-id>.<43 base64url characters>.<43 base64url characters>")
        }
        var o = LoadOptions(mode: mode, accessKey: key)
        for (name, v) in pairs {
            switch name {
            case "--collector": o.collectors = try addresses(name, v, defaultPort: 6600)
            case "--agents": o.agents = try int(name, v, 1...1_000_000)
            case "--rate": o.rate = try number(name, v, 0.1...1_000_000)
            case "--max-pending": o.maxPending = try int(name, v, 1...100_000)
            case "--sources": o.sources = v == "auto" ? .auto : .list(try sourceList(v))
            case "--duration": o.duration = try number(name, v, 0...86_400 * 7)
            case "--ramp-timeout": o.rampTimeout = try number(name, v, 1...86_400)
            case "--status-interval": o.statusInterval = try number(name, v, 0.05...3600)
            case "--batch-interval": o.batchInterval = try number(name, v, 0.05...3600)
            case "--items": o.items = try int(name, v, 1...1000)
            case "--inflight": o.inflight = try int(name, v, 1...4096)
            case "--silence": o.silence = try number(name, v, 0.5...3600)
            case "--connect-timeout": o.connectTimeout = try number(name, v, 0.1...600)
            case "--reconnect-min": o.reconnectMin = try number(name, v, 0...3600)
            case "--reconnect-max": o.reconnectMax = try number(name, v, 0...3600)
            case "--drain": o.drain = try number(name, v, 0...600)
            case "--ledger": o.ledgerPath = try nonEmpty(name, v)
            case "--prefix":
                guard !v.isEmpty, v.utf8.count <= 64, !v.utf8.contains(where: { $0 <= 0x20 || $0 >= 0x7F }) else {
                    throw UsageError("--prefix: expected 1 to 64 printable characters without spaces, got '\(v)'")
                }
                o.prefix = v
            case "--report-interval": o.reportInterval = try number(name, v, 0...3600)
            case "--json": o.jsonPath = try nonEmpty(name, v)
            case "--seed":
                guard let s = UInt64(v) else { throw UsageError("--seed: expected a non-negative integer, got '\(v)'") }
                o.seed = s
            default: break  // --key, --key-file: above
            }
        }
        guard o.reconnectMin <= o.reconnectMax else {
            throw UsageError("--reconnect-min (\(o.reconnectMin)) is above --reconnect-max (\(o.reconnectMax))")
        }
        return o
    }

    static func e2eOptions(_ pairs: [(String, String)]) throws(UsageError) -> E2EOptions {
        var udp: SocketAddress?, db: String?
        for (name, v) in pairs {
            if name == "--udp" { udp = try addresses(name, v, defaultPort: 51712).first }
            if name == "--db" { db = try nonEmpty(name, v) }
        }
        guard let udp else { throw UsageError("e2e needs --udp IP:PORT (the agent's ipa_port)") }
        guard let db else { throw UsageError("e2e needs --db PATH (the collector's vigil.db)") }
        var o = E2EOptions(udp: udp, database: db)
        for (name, v) in pairs {
            switch name {
            case "--rate": o.rate = try number(name, v, 1...100_000)
            case "--duration": o.duration = try number(name, v, 0.1...3600)
            case "--window-ms": o.windowMs = Int64(try int(name, v, 100...3_600_000))
            case "--monitor": o.monitor = try nonEmpty(name, v)
            case "--check": o.check = try nonEmpty(name, v)
            case "--settle": o.settle = try number(name, v, 0...3600)
            default: break
            }
        }
        return o
    }

    /// "127.0.0.1:6600,127.0.0.1:6601" (a bare IP takes `defaultPort`).
    static func addresses(_ name: String, _ v: String, defaultPort: UInt16) throws(UsageError) -> [SocketAddress] {
        var out: [SocketAddress] = []
        for part in v.split(separator: ",", omittingEmptySubsequences: false) {
            do { out.append(try SocketAddress(parsing: String(part), defaultPort: defaultPort)) } catch {
                throw UsageError("\(name): '\(part)' is not an IP address with a port (e.g. 127.0.0.1:6600; host names are not resolved)")
            }
        }
        return out
    }

    /// "127.0.0.1-127.0.0.4" (a range of the last octet) or a comma list of
    /// IP addresses; every address is bound with port 0.
    static func sourceList(_ v: String) throws(UsageError) -> [SocketAddress] {
        let bad = UsageError("--sources: expected auto, A.B.C.X-A.B.C.Y or a comma list of IP addresses, got '\(v)'")
        if let dash = v.firstIndex(of: "-") {
            let lo = String(v[..<dash]), hi = String(v[v.index(after: dash)...])
            let a = lo.split(separator: "."), b = hi.split(separator: ".")
            guard a.count == 4, b.count == 4, a[0..<3] == b[0..<3], let x = Int(a[3]), let y = Int(b[3]), x <= y, y <= 255,
                  (try? SocketAddress(ip: lo, port: 0)) != nil else { throw bad }
            let stem = a[0..<3].joined(separator: ".")
            return (x...y).map { try! SocketAddress(ip: "\(stem).\($0)", port: 0) }
        }
        var out: [SocketAddress] = []
        for part in v.split(separator: ",") {
            guard let a = try? SocketAddress(ip: String(part), port: 0) else { throw bad }
            out.append(a)
        }
        guard !out.isEmpty else { throw bad }
        return out
    }

    static func int(_ name: String, _ v: String, _ range: ClosedRange<Int>) throws(UsageError) -> Int {
        let digits = v.filter { $0 != "_" && $0 != "," }
        guard let n = Int(digits), range.contains(n) else {
            throw UsageError("\(name): expected an integer \(range.lowerBound)...\(range.upperBound), got '\(v)'")
        }
        return n
    }

    static func number(_ name: String, _ v: String, _ range: ClosedRange<Double>) throws(UsageError) -> Double {
        guard let n = Double(v), n.isFinite, range.contains(n) else {
            throw UsageError("\(name): expected a number \(format(range.lowerBound))...\(format(range.upperBound)), got '\(v)'")
        }
        return n
    }

    static func nonEmpty(_ name: String, _ v: String) throws(UsageError) -> String {
        guard !v.isEmpty else { throw UsageError("\(name): expected a path") }
        return v
    }

    static func format(_ d: Double) -> String {
        d == d.rounded() && abs(d) < 1e15 ? String(Int(d)) : String(d)
    }

    /// " (did you mean 'x'?)" for the closest known word within two edits.
    static func suggestion(_ word: String, _ known: [String]) -> String {
        let best = known.map { ($0, editDistance(word, $0)) }.min { $0.1 < $1.1 }
        guard let (k, d) = best, d <= 2 else { return "" }
        return " (did you mean '\(k)'?)"
    }

    static func editDistance(_ a: String, _ b: String) -> Int {
        let a = Array(a.utf8), b = Array(b.utf8)
        var row = Array(0...b.count)
        for i in 1...max(1, a.count) where !a.isEmpty {
            var prev = row[0]
            row[0] = i
            for j in 1...max(1, b.count) where !b.isEmpty {
                let cur = row[j]
                row[j] = min(row[j] + 1, row[j - 1] + 1, prev + (a[i - 1] == b[j - 1] ? 0 : 1))
                prev = cur
            }
        }
        return a.isEmpty ? b.count : row[b.count]
    }
}
