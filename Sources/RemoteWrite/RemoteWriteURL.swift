// RemoteWriteURL: `remote_write_url` checked and taken apart — scheme,
// host, port, path — with an error that names the bad part.
//
// `http://` (port 80 by default) and `https://` (port 443; TLS with GnuTLS,
// `TLSClient`). Credentials in the URL are refused:
// they would show in logs and in the configuration API; they come from
// files (`remote_write_password_file`, `remote_write_bearer_token_file`).
//
// Thread: any (a value).

public struct RemoteWriteURL: Equatable, Sendable, CustomStringConvertible {
    public var host: String
    public var port: UInt16
    /// Starts with "/"; includes a query, if any.
    public var path: String
    /// https: the request goes through TLS.
    public var tls: Bool

    public var description: String {
        (tls ? "https://" : "http://") + "\(host.contains(":") ? "[\(host)]" : host):\(port)\(path)"
    }

    /// The Host header's value.
    var hostHeader: String { (host.contains(":") ? "[\(host)]" : host) + (port == defaultPort ? "" : ":\(port)") }

    var defaultPort: UInt16 { tls ? 443 : 80 }

    public struct ParseError: Error, Equatable, CustomStringConvertible {
        public let description: String
    }

    public init(parsing text: String) throws(ParseError) {
        let lower = text.lowercased()
        let tls = lower.hasPrefix("https://")
        guard tls || lower.hasPrefix("http://") else {
            throw ParseError(description: "expected an http:// or https:// URL, got \"\(text)\"")
        }
        let rest = text.dropFirst(tls ? "https://".count : "http://".count)
        let authority = rest.prefix { $0 != "/" && $0 != "?" && $0 != "#" }
        var p = String(rest.dropFirst(authority.count))
        if let hash = p.firstIndex(of: "#") { p = String(p[..<hash]) }
        if p.isEmpty || p.first == "?" { p = "/" + p }
        guard p.unicodeScalars.allSatisfy({ $0.value > 0x20 && $0.value < 0x7F }) else {
            throw ParseError(description: "the path of \(text) has spaces or characters that need %-encoding")
        }
        if authority.contains("@") {
            throw ParseError(description: "credentials in remote_write_url are not allowed (they would be logged): "
                                 + "use remote_write_username with remote_write_password_file, or remote_write_bearer_token_file")
        }
        var host: Substring, portText: Substring?
        if authority.hasPrefix("[") {
            guard let close = authority.firstIndex(of: "]") else { throw ParseError(description: "unclosed [ in \(text)") }
            host = authority[authority.index(after: authority.startIndex)..<close]
            let after = authority[authority.index(after: close)...]
            if !after.isEmpty {
                guard after.first == ":" else { throw ParseError(description: "unexpected \"\(after)\" after the address in \(text)") }
                portText = after.dropFirst()
            }
        } else if let colon = authority.lastIndex(of: ":") {
            host = authority[..<colon]
            portText = authority[authority.index(after: colon)...]
        } else {
            host = authority
        }
        guard !host.isEmpty, host.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "." || $0 == "-" || $0 == ":") }) else {
            throw ParseError(description: "bad host \"\(host)\" in \(text)")
        }
        var port: UInt16 = tls ? 443 : 80
        if let portText {
            guard let v = UInt16(portText), v > 0 else { throw ParseError(description: "bad port \"\(portText)\" in \(text)") }
            port = v
        }
        self.host = String(host)
        self.port = port
        self.path = p
        self.tls = tls
    }
}
