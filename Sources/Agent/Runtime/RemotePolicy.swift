// RemotePolicy: what a collector may change on this agent, decided by the
// agent's own configuration — never by the collector (docs/AGENT.md,
// "Agent-local policy"). A remote update (configuration update, capture
// start/stop) passes three gates, key by key:
//
//  - the policy keys themselves (`exec_monitors`, `monitor_env`,
//    `remote_config`) and secret keys are never remote;
//  - a key must be listed in `remote_config`;
//  - a remote value may not exceed what a collector should be able to make
//    the agent hold (`AgentSchema.remoteMaxima`), and `ipa_bind` may name
//    loopback addresses only (a remote change must not expose the
//    instrumentation port to the network).
//
// Each refused key gets its own error naming the rule; the update is then
// applied not at all (the runtime's all-or-nothing discipline).
//
// Thread: a value; used on the loop thread.
#if canImport(Glibc)
import Glibc
#endif
import ConfigFile

/// The agent's rules for remote updates, read from its configuration. A value.
public struct RemotePolicy: Equatable, Sendable {
    /// Keys the collector may change (`remote_config`).
    public var allowed: Set<String>

    public init(allowed: Set<String>) { self.allowed = allowed }

    public init(_ config: Configuration) { allowed = Set(config.list("remote_config")) }

    /// One error per key of `update` the policy refuses, in the order given.
    public func refusals(_ update: [(key: String, value: String)]) -> [ConfigError] {
        var out: [ConfigError] = []
        for (key, value) in update {
            guard let k = AgentSchema.schema.key(key) else { continue }  // the schema check names it
            func refuse(_ reason: String) { out.append(ConfigError(location: .update, key: key, problem: .refusedRemotely(reason: reason))) }
            if k.localOnly {
                out.append(ConfigError(location: .update, key: key, problem: .localOnly))
            } else if k.secret {
                refuse("cannot be changed remotely")
            } else if !allowed.contains(key) {
                refuse("not changeable by the collector on this agent (not in its remote_config)")
            } else if let max = AgentSchema.remoteMaxima[key], case .success(.integer(let v)) = k.type.parse(value), v > max {
                refuse("at most \(max) when set remotely (got \(v)); a larger value only in the agent's own configuration")
            } else if key == "ipa_bind", case .success(.list(let items)) = k.type.parse(value),
                      let open = items.map(\.description).first(where: { !RemotePolicy.isLoopback($0) }) {
                refuse("only loopback addresses when set remotely (got \(open)); other addresses only in the agent's own configuration")
            }
        }
        return out
    }

    /// 127.0.0.0/8, ::1 and IPv4-mapped loopback.
    static func isLoopback(_ ip: String) -> Bool {
        var a4 = in_addr()
        if inet_pton(AF_INET, ip, &a4) == 1 { return UInt32(bigEndian: a4.s_addr) >> 24 == 127 }
        var a6 = in6_addr()
        guard inet_pton(AF_INET6, ip, &a6) == 1 else { return false }
        let b = withUnsafeBytes(of: a6) { Array($0) }
        if b[0..<15].allSatisfy({ $0 == 0 }) && b[15] == 1 { return true }
        return b[0..<10].allSatisfy { $0 == 0 } && b[10] == 0xFF && b[11] == 0xFF && b[12] == 127
    }
}
