// SocketAddress: an IPv4 or IPv6 address and port, as a value.
#if canImport(Glibc)
import Glibc
#endif

public enum SocketAddress: Equatable, Hashable, CustomStringConvertible, Sendable {
    case v4(sockaddr_in)
    case v6(sockaddr_in6)

    public static func == (a: SocketAddress, b: SocketAddress) -> Bool { a.description == b.description }
    public func hash(into h: inout Hasher) { h.combine(description) }

    public enum ParseError: Error, CustomStringConvertible, Equatable {
        case invalid(String)
        public var description: String {
            switch self {
            case .invalid(let s): return "'\(s)' is not an address: expected IPv4:port, [IPv6]:port or a bare IP with a default port"
            }
        }
    }

    /// Parses a literal IP address ("127.0.0.1", "::1", "[::1]") with a port.
    public init(ip: String, port: UInt16) throws {
        var host = ip
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        var a4 = in_addr()
        if inet_pton(AF_INET, host, &a4) == 1 {
            var sa = sockaddr_in()
            sa.sin_family = sa_family_t(AF_INET)
            sa.sin_port = port.bigEndian
            sa.sin_addr = a4
            self = .v4(sa)
            return
        }
        var a6 = in6_addr()
        if inet_pton(AF_INET6, host, &a6) == 1 {
            var sa = sockaddr_in6()
            sa.sin6_family = sa_family_t(AF_INET6)
            sa.sin6_port = port.bigEndian
            sa.sin6_addr = a6
            self = .v6(sa)
            return
        }
        throw ParseError.invalid(ip)
    }

    /// Parses "ip:port", "[ipv6]:port", or a bare IP using `defaultPort`.
    public init(parsing text: String, defaultPort: UInt16? = nil) throws {
        let s = text.trimmingSpaces()
        if s.hasPrefix("[") {
            guard let close = s.firstIndex(of: "]") else { throw ParseError.invalid(text) }
            let host = String(s[s.index(after: s.startIndex)..<close])
            let rest = s[s.index(after: close)...]
            if rest.isEmpty, let p = defaultPort { try self.init(ip: host, port: p); return }
            guard rest.first == ":", let p = UInt16(rest.dropFirst()) else { throw ParseError.invalid(text) }
            try self.init(ip: host, port: p)
            return
        }
        let colons = s.filter { $0 == ":" }.count
        if colons == 1, let i = s.lastIndex(of: ":") {
            guard let p = UInt16(s[s.index(after: i)...]) else { throw ParseError.invalid(text) }
            try self.init(ip: String(s[..<i]), port: p)
            return
        }
        guard let p = defaultPort else { throw ParseError.invalid(text) }
        try self.init(ip: s, port: p)
    }

    init(storage: sockaddr_storage) {
        var st = storage
        if Int32(st.ss_family) == AF_INET6 {
            self = .v6(withUnsafeBytes(of: &st) { $0.load(as: sockaddr_in6.self) })
        } else {
            self = .v4(withUnsafeBytes(of: &st) { $0.load(as: sockaddr_in.self) })
        }
    }

    public var family: Int32 {
        switch self { case .v4: return AF_INET; case .v6: return AF_INET6 }
    }

    public var port: UInt16 {
        switch self {
        case .v4(let a): return UInt16(bigEndian: a.sin_port)
        case .v6(let a): return UInt16(bigEndian: a.sin6_port)
        }
    }

    public func withPort(_ port: UInt16) -> SocketAddress {
        switch self {
        case .v4(var a): a.sin_port = port.bigEndian; return .v4(a)
        case .v6(var a): a.sin6_port = port.bigEndian; return .v6(a)
        }
    }

    /// The address without the port, as text.
    public var ip: String {
        var buf = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        switch self {
        case .v4(var a): inet_ntop(AF_INET, &a.sin_addr, &buf, socklen_t(buf.count))
        case .v6(var a): inet_ntop(AF_INET6, &a.sin6_addr, &buf, socklen_t(buf.count))
        }
        return buf.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
    }

    public var description: String {
        switch self {
        case .v4: return "\(ip):\(port)"
        case .v6: return "[\(ip)]:\(port)"
        }
    }

    public func withSockaddr<R>(_ body: (UnsafePointer<sockaddr>, socklen_t) -> R) -> R {
        switch self {
        case .v4(var a):
            return withUnsafePointer(to: &a) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
        case .v6(var a):
            return withUnsafePointer(to: &a) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_in6>.size)) }
            }
        }
    }
}

extension String {
    /// Drops leading and trailing spaces and tabs (no Foundation here).
    public func trimmingSpaces() -> String {
        var s = Substring(self)
        while let c = s.first, c == " " || c == "\t" || c == "\r" || c == "\n" { s = s.dropFirst() }
        while let c = s.last, c == " " || c == "\t" || c == "\r" || c == "\n" { s = s.dropLast() }
        return String(s)
    }
}
