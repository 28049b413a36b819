// HostInfo: what the agent says about the host it runs on — its name, a
// stable identity, and its network interfaces with addresses.
//
// Thread: any (no state; the runtime calls it on the loop thread).
import Reactor
import Wire
#if canImport(Glibc)
import Glibc
#endif

/// Host facts, read on demand (no state). Loop thread or any thread.
public enum HostInfo {
    public static func hostname() -> String {
        var buf = [CChar](repeating: 0, count: 256)
        guard gethostname(&buf, buf.count - 1) == 0 else { return "unknown" }
        return buf.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
    }

    /// /etc/machine-id (or the D-Bus copy), trimmed; nil when absent.
    public static func machineID() -> String? {
        for path in ["/etc/machine-id", "/var/lib/dbus/machine-id"] {
            if let s = ProcessLimits.readSmallFile(path, max: 128)?.trimmingSpaces(), !s.isEmpty { return s }
        }
        return nil
    }

    /// A stable agent id: a hex hash of the machine id and the agent name,
    /// so the same agent on the same host keeps its id across restarts and
    /// two named agents on one host differ.
    public static func agentID(name: String) -> String {
        let seed = (machineID() ?? hostname()) + "/" + name
        return fnv1a128Hex(seed)
    }

    /// Interfaces with at least one IPv4/IPv6 address, sorted by name, each
    /// address as "ip/prefix" ("127.0.0.1/8", "::1/128"), sorted; flags say
    /// up and loopback (`Wire.NetworkInterface`). Capturing is marked by the
    /// caller. getifaddrs(3) costs one netlink dump: cheap enough to poll
    /// once per status interval to notice changes.
    public static func interfaces() -> [Wire.NetworkInterface] {
        var head: UnsafeMutablePointer<ifaddrs>?
        guard getifaddrs(&head) == 0, let first = head else { return [] }
        defer { freeifaddrs(head) }
        var byName: [String: (flags: UInt32, addresses: [String])] = [:]
        var p: UnsafeMutablePointer<ifaddrs>? = first
        while let cur = p {
            defer { p = cur.pointee.ifa_next }
            guard let sa = cur.pointee.ifa_addr else { continue }
            let family = Int32(sa.pointee.sa_family)
            guard family == AF_INET || family == AF_INET6 else { continue }
            var host = [CChar](repeating: 0, count: Int(NI_MAXHOST))
            let len = socklen_t(family == AF_INET ? MemoryLayout<sockaddr_in>.size : MemoryLayout<sockaddr_in6>.size)
            guard getnameinfo(sa, len, &host, socklen_t(host.count), nil, 0, NI_NUMERICHOST) == 0 else { continue }
            let name = String(cString: cur.pointee.ifa_name)
            var text = host.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
            if let mask = cur.pointee.ifa_netmask { text += "/\(prefixLength(mask, family: family))" }
            let raw = cur.pointee.ifa_flags
            var flags: UInt32 = 0
            if raw & UInt32(IFF_UP) != 0 { flags |= Wire.NetworkInterface.flagUp }
            if raw & UInt32(IFF_LOOPBACK) != 0 { flags |= Wire.NetworkInterface.flagLoopback }
            byName[name, default: (flags, [])].addresses.append(text)
        }
        return byName.keys.sorted().map {
            Wire.NetworkInterface(name: $0, flags: byName[$0]!.flags, addresses: byName[$0]!.addresses.sorted())
        }
    }

    /// Counts the leading one bits of a netmask sockaddr.
    static func prefixLength(_ mask: UnsafeMutablePointer<sockaddr>, family: Int32) -> Int {
        var bits = 0
        let raw = UnsafeRawPointer(mask)
        let (offset, count) = family == AF_INET
            ? (MemoryLayout<sockaddr_in>.offset(of: \sockaddr_in.sin_addr)!, 4)
            : (MemoryLayout<sockaddr_in6>.offset(of: \sockaddr_in6.sin6_addr)!, 16)
        for i in 0..<count { bits += raw.load(fromByteOffset: offset + i, as: UInt8.self).nonzeroBitCount }
        return bits
    }

    /// 128-bit FNV-1a as 32 hex digits (an identifier, not a secret).
    static func fnv1a128Hex(_ s: String) -> String {
        var h1: UInt64 = 0xcbf29ce484222325, h2: UInt64 = 0x84222325cbf29ce4
        for b in s.utf8 {
            h1 = (h1 ^ UInt64(b)) &* 0x100000001b3
            h2 = (h2 ^ UInt64(b) ^ (h1 >> 29)) &* 0x100000001b3
        }
        func hex(_ v: UInt64) -> String {
            let s = String(v, radix: 16)
            return String(repeating: "0", count: 16 - s.count) + s
        }
        return hex(h1) + hex(h2)
    }
}
