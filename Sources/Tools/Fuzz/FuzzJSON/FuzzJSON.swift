// fuzz-json: libFuzzer target for the JSON module — the parser every HTTP
// API request body goes through, and the writer every answer, monitor
// definition and JSON log line comes out of — and for the monitor
// definitions built on it.
//
// Invariants: parsing never traps; whatever parses writes text that parses
// back to the same value and writes identically; tighter limits (size,
// depth) refuse exactly the documents beyond them, with an error, never a
// trap; the escaper's output for any string parses back to that string;
// validation of any parsed document never traps; and valid definitions
// survive the trip through Schedule records (ScheduleCodec) unchanged; an
// alert rule that validates reads back from its stored form unchanged, and
// its redacted form validates too.
//
// Built with -D FUZZING it hands its body to libFuzzer; a normal build
// replays files: `fuzz-json FILE...`.
import Alerts
import FuzzSupport
import JSON
import MonitorModel
import Wire

/// The nesting depth of a parsed value (a scalar is 0).
func depth(_ v: JSON) -> Int {
    switch v {
    case .array(let a): return 1 + (a.map(depth).max() ?? 0)
    case .object(let o): return 1 + (o.members.map { depth($0.value) }.max() ?? 0)
    default: return 0
    }
}

func fuzzJSON(_ data: UnsafeRawBufferPointer) {
    // Any bytes, as a string through the escaper (what Log writes).
    let s = String(decoding: data, as: UTF8.self)
    let quoted = JSON.quoted(s)
    guard case .string(let back)? = try? JSON.parse(quoted) else { preconditionFailure("quoted string failed to parse: \(quoted)") }
    precondition(back == s, "escaping changed the string")

    let parsed: JSON
    do {
        parsed = try JSON.parse(data, limits: JSONLimits(maxBytes: 1 << 16, maxDepth: 64))
    } catch {
        precondition(error.offset >= 0 && error.offset <= data.count, "error offset outside the input")
        precondition(error.line >= 1 && error.column >= 1, "error without a place")
        return
    }
    let text = parsed.serialized
    guard let again = try? JSON.parse(text) else { preconditionFailure("serialized JSON failed to parse: \(text)") }
    precondition(again == parsed, "round trip changed the value")
    precondition(again.serialized == text, "serialization is not stable")

    // Limits: a document deeper or larger than allowed is refused; one
    // within them parses to the same value.
    let d = depth(parsed)
    let shallow = max(0, d - 1)
    precondition((try? JSON.parse(data, limits: JSONLimits(maxBytes: 1 << 16, maxDepth: shallow))) == nil || d == 0,
                 "a document of depth \(d) passed a depth limit of \(shallow)")
    precondition((try? JSON.parse(data, limits: JSONLimits(maxBytes: 1 << 16, maxDepth: d))) == parsed, "depth limit refused a document within it")
    precondition((try? JSON.parse(data, limits: JSONLimits(maxBytes: data.count - 1, maxDepth: 64))) == nil, "size limit let a larger document through")

    if case .success(let rule) = AlertRuleDocument.validate(parsed) {
        precondition(AlertRuleDocument.decode(rule.json.serialized) == rule, "a valid alert rule changed through its stored form")
        guard case .success(let shown) = AlertRuleDocument.validate(rule.redactedJSON) else {
            preconditionFailure("a valid alert rule's redacted form does not validate")
        }
        precondition(shown.keepingSecrets(of: rule) == rule, "secrets sent back redacted were not kept")
    }

    guard case .success(let defs) = MonitorDocument.validate(parsed) else { return }
    var out: [MonitorDefinition] = []
    for record in ScheduleCodec.records(version: 1, definitions: defs) {
        let bytes = Record.schedule(record).encoded
        guard case .schedule(let decoded)? = try? Record.decodeAll(bytes).first else {
            preconditionFailure("schedule record failed to decode")
        }
        let (d, _, errors) = ScheduleCodec.definitions(from: decoded)
        precondition(errors.isEmpty, "valid definitions refused after the wire: \(errors)")
        out += d
    }
    precondition(out == defs, "definitions changed through the Schedule record")
}

#if FUZZING
@_cdecl("fuzz_json_main") public func fuzzMain(_ argc: CInt, _ argv: FuzzArgv) -> CInt { runFuzzer(argc, argv, fuzzJSON) }
#else
@main enum Replay { static func main() { replayFuzzInputs(fuzzJSON) } }
#endif
