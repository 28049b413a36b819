// ConfigFileParser: `key = value` lines into (line, key, value) entries —
// syntax only; the schema judges keys and values.
//
// Grammar, line by line (LF or CRLF):
//   blank lines and lines whose first non-space character is `#` are skipped;
//   `key = value`, spaces around both optional;
//   a value may be quoted with "…" or '…' (taken verbatim, `#` included,
//   no escapes); an unquoted value ends at a `#` that starts the value or
//   follows a space or tab (a trailing comment), so `abc#def` keeps its `#`.

/// One `key = value` line.
public struct ConfigLine: Equatable, Sendable {
    public let line: Int
    public let key: String
    public let value: String
}

public enum ConfigFileParser {
    public static func parse(_ text: String, path: String) -> (lines: [ConfigLine], errors: [ConfigError]) {
        var lines: [ConfigLine] = []
        var errors: [ConfigError] = []
        var number = 0
        // "\r\n" is one Character in Swift, so both separators are named.
        for raw in text.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" }) {
            number += 1
            let line = ConfigText.trimmed(raw)
            if line.isEmpty || line.hasPrefix("#") { continue }
            let at = ConfigLocation.file(path: path, line: number)
            guard let eq = line.firstIndex(of: "=") else {
                errors.append(ConfigError(location: at, key: nil, problem: .syntax(got: line)))
                continue
            }
            let key = ConfigText.trimmed(line[..<eq])
            guard !key.isEmpty, key.utf8.allSatisfy(isKeyByte) else {
                errors.append(ConfigError(location: at, key: nil, problem: key.isEmpty ? .syntax(got: line) : .badKeyName(key)))
                continue
            }
            switch value(line[line.index(after: eq)...]) {
            case .success(let v): lines.append(ConfigLine(line: number, key: key, value: v))
            case .failure(let p): errors.append(ConfigError(location: at, key: key, problem: p))
            }
        }
        return (lines, errors)
    }

    // Letters of either case pass here so `Server_Port` reaches the schema
    // and gets a "did you mean"; anything else is not a key name at all.
    private static func isKeyByte(_ b: UInt8) -> Bool {
        (b >= 0x61 && b <= 0x7A) || (b >= 0x41 && b <= 0x5A) || (b >= 0x30 && b <= 0x39) || b == 0x5F || b == 0x2D || b == 0x2E
    }

    /// The value after `=`: unquoted, or quoted, with a trailing comment removed.
    static func value(_ rest: Substring) -> Result<String, ConfigProblem> {
        var s = rest
        while let c = s.first, c == " " || c == "\t" { s = s.dropFirst() }
        if let q = s.first, q == "\"" || q == "'" {
            let body = s.dropFirst()
            guard let close = body.firstIndex(of: q) else { return .failure(.unterminatedQuote) }
            let after = ConfigText.trimmed(body[body.index(after: close)...])
            if !after.isEmpty && !after.hasPrefix("#") { return .failure(.textAfterQuote(after)) }
            return .success(String(body[..<close]))
        }
        var end = s.endIndex
        var previous: Character = " "          // a `#` first in the value is a comment
        for i in s.indices {
            if s[i] == "#" && (previous == " " || previous == "\t") { end = i; break }
            previous = s[i]
        }
        return .success(ConfigText.trimmed(s[..<end]))
    }
}
