// Preamble: the only cleartext bytes of a session, sent by the client.
//
//   "V" "G" "L"  0x02  L  project-id (L bytes, 1 ≤ L ≤ 64, [A-Za-z0-9._-])
//
// 0x02 is the protocol version: XKpsk3 (docs/PROTOCOL.md). Version 0x01
// (NNpsk0) still parses, as `legacyVersion`, only so that a collector can
// tell such an agent in words it understands that it must be upgraded.
//
// The whole preamble is also the Noise prologue, so a preamble altered in
// transit makes message 1 fail to decrypt. `parse` works on however many
// bytes have arrived and rejects at the first wrong byte, so a stray HTTP
// request or port scan is turned away after one read.

/// Why a preamble was refused.
public enum PreambleError: Error, Equatable, Sendable {
    /// Byte `offset` of "VGL" was `byte`.
    case badMagic(offset: Int, byte: UInt8)
    case unsupportedVersion(UInt8)
    /// L was 0 or above 64.
    case badLength(UInt8)
    /// The project id holds a byte outside [A-Za-z0-9._-].
    case badProjectID
}

/// A parsed or to-be-sent preamble. Immutable value.
public struct Preamble: Equatable, Sendable {
    public static let magic: [UInt8] = [0x56, 0x47, 0x4C]  // "VGL"
    public static let version: UInt8 = 0x02
    /// The NNpsk0 protocol: parsed, answered only with an Error record.
    public static let legacyVersion: UInt8 = 0x01
    public static let headerLength = 5
    public static let maxLength = headerLength + ProjectID.maxLength

    public let projectID: String
    /// `version` or `legacyVersion`.
    public let version: UInt8

    /// Nil when `projectID` is not a valid project id.
    public init?(projectID: String, version: UInt8 = Preamble.version) {
        guard ProjectID.isValid(projectID) else { return nil }
        self.projectID = projectID
        self.version = version
    }

    public var isLegacy: Bool { version == Preamble.legacyVersion }

    /// The exact bytes on the wire (and the Noise prologue).
    public var bytes: [UInt8] {
        var out = Preamble.magic
        out.append(version)
        out.append(UInt8(projectID.utf8.count))
        out.append(contentsOf: projectID.utf8)
        return out
    }

    public enum ParseResult: Equatable, Sendable {
        /// Every byte so far is valid; more are needed.
        case needMore
        /// A complete preamble of `length` bytes.
        case complete(Preamble, length: Int)
        case invalid(PreambleError)
    }

    /// Parses the start of a connection's byte stream.
    public static func parse(_ input: UnsafeRawBufferPointer) -> ParseResult {
        for i in 0..<min(input.count, magic.count) where input[i] != magic[i] {
            return .invalid(.badMagic(offset: i, byte: input[i]))
        }
        guard input.count > 3 else { return .needMore }
        guard input[3] == version || input[3] == legacyVersion else { return .invalid(.unsupportedVersion(input[3])) }
        guard input.count > 4 else { return .needMore }
        let length = Int(input[4])
        guard length >= 1 && length <= ProjectID.maxLength else { return .invalid(.badLength(input[4])) }
        let available = min(input.count, headerLength + length)
        for i in headerLength..<available where !ProjectID.isAllowed(input[i]) {
            return .invalid(.badProjectID)
        }
        guard input.count >= headerLength + length else { return .needMore }
        // All bytes are ASCII, so this decoding is exact.
        let id = String(decoding: UnsafeRawBufferPointer(rebasing: input[headerLength..<headerLength + length]), as: UTF8.self)
        return .complete(Preamble(projectID: id, version: input[3])!, length: headerLength + length)
    }

    public static func parse(_ input: [UInt8]) -> ParseResult {
        input.withUnsafeBytes { parse($0) }
    }
}
