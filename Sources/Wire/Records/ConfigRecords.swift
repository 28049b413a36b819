// EffectiveConfig: the configuration an agent runs, key by key with where
// each value came from, so the collector can show what the agent really
// uses rather than what it would compute from defaults and its own
// overrides. Sent after the handshake and whenever the configuration
// changes. Secret keys are never in it (the agent leaves them out).
//
// A value type with no thread affinity. Byte layout in docs/PROTOCOL.md.

/// Where an agent took a key's value from. Unknown codes are kept (a newer
/// agent may know more origins); the collector shows them as `default`.
public struct ConfigValueOrigin: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt64
    public init(rawValue: UInt64) { self.rawValue = rawValue }

    public static let `default` = ConfigValueOrigin(rawValue: 0)
    /// The configuration file (`detail`: `path:line`).
    public static let file = ConfigValueOrigin(rawValue: 1)
    /// A `VIGIL_<KEY>` variable (`detail`: its name).
    public static let environment = ConfigValueOrigin(rawValue: 2)
    /// A `--set key=value` argument.
    public static let commandLine = ConfigValueOrigin(rawValue: 3)
    /// A control request from the collector (a configuration update, capture start/stop).
    public static let collector = ConfigValueOrigin(rawValue: 4)

    public var description: String {
        switch self {
        case .default: return "default"
        case .file: return "file"
        case .environment: return "environment"
        case .commandLine: return "command_line"
        case .collector: return "collector"
        default: return "origin_\(rawValue)"
        }
    }
}

/// One key of an EffectiveConfig.
public struct ConfigEntry: Equatable, Sendable {
    public var key: String
    /// Canonical text of the value the agent runs.
    public var value: String
    public var origin: ConfigValueOrigin
    /// `path:line` for a file, the variable's name for the environment; else empty.
    public var detail: String

    public init(key: String, value: String, origin: ConfigValueOrigin, detail: String = "") {
        self.key = key
        self.value = value
        self.origin = origin
        self.detail = detail
    }
}

/// 0x24 EffectiveConfig (agent → collector): every non-secret key the
/// agent runs, in its schema's order. Bounded by `maxListCount` entries of
/// `maxStringLength` strings like every list.
public struct EffectiveConfig: RecordBody {
    public static let recordType = RecordType.effectiveConfig
    public var entries: [ConfigEntry]
    public init(_ entries: [ConfigEntry]) { self.entries = entries }

    public func encode(into w: inout WireWriter) {
        w.list(entries) { w, e in
            w.string(e.key)
            w.string(e.value)
            w.varint(e.origin.rawValue)
            w.string(e.detail)
        }
    }

    public static func decode(from r: inout WireReader, limits: WireLimits) throws(WireError) -> EffectiveConfig {
        let max = limits.maxStringLength
        return EffectiveConfig(try r.list("effective_config", max: limits.maxListCount) { (r) throws(WireError) -> ConfigEntry in
            ConfigEntry(key: try r.string("effective_config.key", maxLength: max),
                        value: try r.string("effective_config.value", maxLength: max),
                        origin: ConfigValueOrigin(rawValue: try r.varint()),
                        detail: try r.string("effective_config.detail", maxLength: max))
        })
    }
}
