// ExecProtocol: the line protocol between the agent and a custom monitor
// (docs/MONITORS.md, "The exec protocol", version 1).
//
//   agent → monitor (stdin)            monitor → agent (stdout)
//   VIGIL-MONITOR 1                    VIGIL-MONITOR 1        (version it speaks)
//   config {"compact":"json"}
//   run step NAME                      timing PHASE MS        (optional, repeated)
//                                      log TEXT               (any time)
//                                      ok [MS] | error TEXT   (ends the step)
//   ...                                ...
//   exit                               (exits; stdin is closed after "exit")
//
// Lines end with "\n" (a "\r" before it is dropped), are UTF-8 and at most
// `maxLineBytes` long. stderr is free text, logged (bounded).

enum ExecProtocol {
    /// The highest protocol version this agent speaks.
    static let version = 1
    static let magic = "VIGIL-MONITOR"
    static let maxLineBytes = 4096

    /// One line from the monitor's stdout.
    enum Message: Equatable {
        /// The handshake answer; nil version when it is not a number.
        case hello(version: Int?)
        case log(String)
        case timing(name: String, ms: Double)
        /// `ok` with the monitor's own measurement of the step, if given.
        case ok(ms: Double?)
        case error(String)
        /// A well-formed line this version does not know (ignored, counted).
        case unknown(String)
        /// A known keyword with bad arguments.
        case malformed(String)
    }

    static func parse(_ line: String) -> Message {
        let (word, rest) = split(line)
        switch word {
        case magic:
            return .hello(version: Int(rest))
        case "log":
            return .log(rest)
        case "timing":
            let (name, value) = split(rest)
            guard !name.isEmpty, let ms = milliseconds(value) else {
                return .malformed("expected 'timing NAME MS', got '\(clip(line))'")
            }
            return .timing(name: name, ms: ms)
        case "ok":
            if rest.isEmpty { return .ok(ms: nil) }
            guard let ms = milliseconds(rest) else { return .malformed("expected 'ok' or 'ok MS', got '\(clip(line))'") }
            return .ok(ms: ms)
        case "error":
            return .error(rest.isEmpty ? "step failed" : rest)
        default:
            return .unknown(word)
        }
    }

    /// A non-negative finite number of milliseconds ("12", "3.5").
    static func milliseconds(_ s: String) -> Double? {
        guard !s.isEmpty, s.utf8.allSatisfy({ ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x2E }), let v = Double(s),
              v.isFinite, v >= 0 else { return nil }
        return v
    }

    /// The first word and the rest after one space.
    static func split(_ s: String) -> (String, String) {
        guard let sp = s.firstIndex(of: " ") else { return (s, "") }
        return (String(s[..<sp]), String(s[s.index(after: sp)...]))
    }

    /// At most 80 characters of a line, for messages.
    static func clip(_ s: String) -> String {
        s.count <= 80 ? s : String(s.prefix(80)) + "…"
    }
}

/// Splits a byte stream into lines without per-line allocation until a line
/// is complete; a line longer than `maxLine` is reported as an overflow
/// (and its bytes discarded up to the next newline).
struct LineBuffer {
    let maxLine: Int
    private var bytes: [UInt8] = []
    private var overflowing = false

    init(maxLine: Int) { self.maxLine = maxLine }

    enum Piece: Equatable {
        case line(String)
        case tooLong
    }

    /// Appends `chunk` and returns the lines it completed, in order.
    mutating func feed(_ chunk: UnsafeRawBufferPointer) -> [Piece] {
        var out: [Piece] = []
        for b in chunk {
            if b == 0x0A {
                if overflowing {
                    overflowing = false
                } else {
                    if bytes.last == 0x0D { bytes.removeLast() }
                    out.append(.line(String(decoding: bytes, as: UTF8.self)))
                }
                bytes.removeAll(keepingCapacity: bytes.count <= 1024)
                continue
            }
            if overflowing { continue }
            if bytes.count >= maxLine {
                overflowing = true
                bytes.removeAll()
                out.append(.tooLong)
                continue
            }
            bytes.append(b)
        }
        return out
    }

    /// A last line without a newline, at end of stream.
    mutating func finish() -> String? {
        defer { bytes.removeAll(); overflowing = false }
        return bytes.isEmpty || overflowing ? nil : String(decoding: bytes, as: UTF8.self)
    }
}
