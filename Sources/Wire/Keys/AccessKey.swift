// AccessKey: a project's credential, `<project-id>.<secret>.<collector-key>`,
// where the secret (32 bytes) and the collector's static public key (32
// bytes) are each 43 characters of base64url without padding.
//
// The project id is the preamble's id, the secret is the Noise PSK, and the
// collector key is what the agent pins: it talks to no collector that
// cannot prove it holds the matching secret key. One string, so a user
// still copies one thing. The text is shown once when created and never
// logged: `description` redacts the secret, and only `text` (asked for by
// name) reveals it.

/// Why an access key's text was refused. Never includes the secret.
public enum AccessKeyError: Error, Equatable, Sendable, CustomStringConvertible {
    case missingSeparator
    case badProjectID
    /// The secret part is not 43 characters of canonical base64url.
    case badSecret
    /// The collector-key part is not 43 characters of canonical base64url.
    case badCollectorKey
    /// A two-part key (`<project>.<secret>`) from before collectors were
    /// authenticated: it lacks the collector's public key.
    case missingCollectorKey

    public var description: String {
        switch self {
        case .missingSeparator: return "not of the form <project>.<secret>.<collector-key>"
        case .badProjectID: return "bad project id"
        case .badSecret: return "the secret is not 43 base64url characters"
        case .badCollectorKey: return "the collector key is not 43 base64url characters"
        case .missingCollectorKey:
            return "the key has no collector public key (an old two-part key): create a new one with `vigil-collector keys create`"
        }
    }
}

/// A project id, its 32-byte secret and the collector's public key.
/// Immutable value.
public struct AccessKey: Equatable, Sendable, CustomStringConvertible {
    public static let secretTextLength = 43

    public let projectID: String
    public let secret: Key32
    /// The collector installation's static public key (pinned).
    public let collectorKey: Key32

    public init(projectID: String, secret: Key32, collectorKey: Key32) throws(AccessKeyError) {
        guard ProjectID.isValid(projectID) else { throw .badProjectID }
        self.projectID = projectID
        self.secret = secret
        self.collectorKey = collectorKey
    }

    /// A new key for `projectID` with a secret from libsodium's CSPRNG.
    public static func generate(projectID: String, collectorKey: Key32) throws(AccessKeyError) -> AccessKey {
        try AccessKey(projectID: projectID, secret: Key32.random(), collectorKey: collectorKey)
    }

    /// Parses `<project-id>.<43 base64url>.<43 base64url>`. A project id
    /// may contain '.', the other two parts cannot: they follow the last
    /// two dots.
    public init(parsing text: String) throws(AccessKeyError) {
        let utf8 = Array(text.utf8)
        guard let dot2 = utf8.lastIndex(of: UInt8(ascii: ".")) else { throw .missingSeparator }
        let keyText = utf8[(dot2 + 1)...]
        guard let dot1 = utf8[..<dot2].lastIndex(of: UInt8(ascii: ".")) else {
            // `<project>.<secret>`: the form before collector keys.
            if keyText.count == AccessKey.secretTextLength, ProjectID.isValid(utf8[..<dot2]) { throw .missingCollectorKey }
            throw .missingSeparator
        }
        let secretText = utf8[(dot1 + 1)..<dot2]
        let id = utf8[..<dot1]
        guard ProjectID.isValid(id), secretText.count == AccessKey.secretTextLength else {
            // `a.b.<secret>`: a two-part key whose project id holds a dot
            // (its middle part is no secret-sized text).
            let secretSized = abs(secretText.count - AccessKey.secretTextLength) <= 3
            if !secretSized, AccessKey.decode32(keyText) != nil, ProjectID.isValid(utf8[..<dot2]) { throw .missingCollectorKey }
            throw ProjectID.isValid(id) ? .badSecret : .badProjectID
        }
        guard let secret = AccessKey.decode32(secretText) else { throw .badSecret }
        guard let key = AccessKey.decode32(keyText) else { throw .badCollectorKey }
        projectID = String(decoding: id, as: UTF8.self)
        self.secret = secret
        collectorKey = key
    }

    private static func decode32(_ text: ArraySlice<UInt8>) -> Key32? {
        guard text.count == secretTextLength, let bytes = Base64URL.decode(text) else { return nil }
        return Key32(bytes: bytes)
    }

    /// The full key text. Handle as a secret.
    public var text: String {
        projectID + "." + Base64URL.encode(secret.bytes) + "." + Base64URL.encode(collectorKey.bytes)
    }

    public var description: String { "AccessKey(\(projectID).<redacted>.\(Base64URL.encode(collectorKey.bytes)))" }
}
