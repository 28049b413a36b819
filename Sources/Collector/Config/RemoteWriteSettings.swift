// RemoteWriteSettings: the `remote_write_*` keys as typed values, their
// checks (a URL the sender can use; username and password file together;
// not both basic auth and a bearer token), and the Authorization header
// read from the credential files at start, and the TLS CAs for an https
// URL (`remote_write_tls_ca_file`, or the system trust store). The credentials are never
// logged and never shown by the configuration API (the files' paths are,
// their contents are not).
//
// Thread: any (values); `authorization()` reads files, once, at start.
import ConfigFile
import Reactor
import RemoteWrite

public struct RemoteWriteSettings: Sendable {
    public var url: RemoteWriteURL
    public var username: String
    public var passwordFile: String
    public var bearerTokenFile: String
    /// PEM CAs for an https URL; empty: the system trust store.
    public var tlsCAFile: String
    public var maxSamplesPerRequest: Int
    public var queueSamples: Int
    public var maxSeries: Int
    public var flushInterval: Double
    public var timeout: Double

    public struct Failure: Error, CustomStringConvertible {
        public let description: String
    }

    static let checks: [ConfigCheck] = [
        ConfigCheck(keys: ["remote_write_url"]) { c in
            let url = c.string("remote_write_url")
            guard !url.isEmpty else { return [] }
            switch Result(catching: { () throws(RemoteWriteURL.ParseError) in try RemoteWriteURL(parsing: url) }) {
            case .success: return []
            case .failure(let e): return [c.invalid("remote_write_url", expected: e.description, got: url)]
            }
        },
        ConfigCheck(keys: ["remote_write_username", "remote_write_password_file", "remote_write_bearer_token_file"]) { c in
            let user = c.string("remote_write_username"), password = c.string("remote_write_password_file")
            let bearer = c.string("remote_write_bearer_token_file")
            if user.isEmpty != password.isEmpty {
                let key = user.isEmpty ? "remote_write_username" : "remote_write_password_file"
                return [c.invalid(key, expected: "remote_write_username and remote_write_password_file set together",
                                  got: c.value(key)?.description)]
            }
            if !user.isEmpty && !bearer.isEmpty {
                return [c.invalid("remote_write_bearer_token_file", expected: "either basic auth or a bearer token, not both",
                                  got: bearer)]
            }
            return []
        },
    ]

    /// The CAs for an https URL (nil for http), loaded at start: a file
    /// that cannot be read or holds no certificate is an error naming the key.
    public func tlsCredentials() throws(Failure) -> TLSCredentials? {
        guard url.tls else { return nil }
        do {
            return try TLSCredentials(caFile: tlsCAFile)
        } catch {
            throw Failure(description: (tlsCAFile.isEmpty ? "" : "remote_write_tls_ca_file: ") + error.description)
        }
    }

    /// The Authorization header value from the credential files, or nil.
    public func authorization() throws(Failure) -> String? {
        func secret(_ path: String, _ key: String) throws(Failure) -> String {
            guard let text = ProcessLimits.readSmallFile(path, max: 8192) else {
                throw Failure(description: "\(key): cannot read \(path)")
            }
            let s = text.filter { $0 != "\n" && $0 != "\r" }
            guard !s.isEmpty else { throw Failure(description: "\(key): \(path) is empty") }
            return s
        }
        if !bearerTokenFile.isEmpty { return "Bearer " + (try secret(bearerTokenFile, "remote_write_bearer_token_file")) }
        if !username.isEmpty {
            let password = try secret(passwordFile, "remote_write_password_file")
            return "Basic " + Base64.encode(Array((username + ":" + password).utf8))
        }
        return nil
    }
}
