// AccessKey: a project's credential, `<project-id>.<secret>`, where the
// secret is 32 bytes in base64url without padding (43 characters).
//
// The project id is the preamble's id and the secret is the Noise PSK. The
// text is shown once when created and never logged: `description` redacts
// the secret, and only `text` (asked for by name) reveals it.

/// Why an access key's text was refused. Never includes the secret.
public enum AccessKeyError: Error, Equatable, Sendable {
    case missingSeparator
    case badProjectID
    /// The secret part is not 43 characters of canonical base64url.
    case badSecret
}

/// A project id and its 32-byte secret. Immutable value.
public struct AccessKey: Equatable, Sendable, CustomStringConvertible {
    public static let secretTextLength = 43

    public let projectID: String
    public let secret: Key32

    public init(projectID: String, secret: Key32) throws(AccessKeyError) {
        guard ProjectID.isValid(projectID) else { throw .badProjectID }
        self.projectID = projectID
        self.secret = secret
    }

    /// A new key for `projectID` with a secret from libsodium's CSPRNG.
    public static func generate(projectID: String) throws(AccessKeyError) -> AccessKey {
        try AccessKey(projectID: projectID, secret: Key32.random())
    }

    /// Parses `<project-id>.<43 base64url characters>`. A project id may
    /// contain '.', the secret cannot: the secret follows the last '.'.
    public init(parsing text: String) throws(AccessKeyError) {
        let utf8 = Array(text.utf8)
        guard let dot = utf8.lastIndex(of: UInt8(ascii: ".")) else { throw .missingSeparator }
        let id = utf8[..<dot]
        let secretText = utf8[(dot + 1)...]
        guard ProjectID.isValid(id) else { throw .badProjectID }
        guard secretText.count == AccessKey.secretTextLength,
              let bytes = Base64URL.decode(secretText), let key = Key32(bytes: bytes) else { throw .badSecret }
        projectID = String(decoding: id, as: UTF8.self)
        secret = key
    }

    /// The full key text. Handle as a secret.
    public var text: String { projectID + "." + Base64URL.encode(secret.bytes) }

    public var description: String { "AccessKey(\(projectID).<redacted>)" }
}
