// fuzz-json: libFuzzer target for the JSON parser and the monitor
// definitions built on it.
//
// Invariants: parsing never traps; whatever parses serializes to text that
// parses back to the same value and serializes identically; validation of
// any parsed document never traps; and valid definitions survive the trip
// through Schedule records (ScheduleCodec) unchanged.
//
// Built with -D FUZZING it exports LLVMFuzzerTestOneInput; a normal build
// replays files: `fuzz-json FILE...`.
import FuzzSupport
import Monitors
import Wire
#if canImport(Glibc)
import Glibc
#endif

func fuzzJSON(_ data: UnsafeRawBufferPointer) {
    guard let value = try? JSONValue.parse(data, limits: JSONLimits(maxBytes: 1 << 16, maxDepth: 64)) else { return }
    let text = value.serialized
    guard let again = try? JSONValue.parse(text) else { preconditionFailure("serialized JSON failed to parse: \(text)") }
    precondition(again == value, "round trip changed the value")
    precondition(again.serialized == text, "serialization is not stable")
    guard case .success(let defs) = MonitorDocument.validate(value) else { return }
    var back: [MonitorDefinition] = []
    for record in ScheduleCodec.records(version: 1, definitions: defs) {
        let bytes = Record.schedule(record).encoded
        guard case .schedule(let decoded)? = try? Record.decodeAll(bytes).first else {
            preconditionFailure("schedule record failed to decode")
        }
        let (d, _, errors) = ScheduleCodec.definitions(from: decoded)
        precondition(errors.isEmpty, "valid definitions refused after the wire: \(errors)")
        back += d
    }
    precondition(back == defs, "definitions changed through the Schedule record")
}

#if FUZZING
@_cdecl("fuzz_json_main")
public func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runFuzzer(argc, argv, fuzzerTestOneInput)
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzerTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    fuzzJSON(UnsafeRawBufferPointer(start: data, count: size))
    return 0
}
#else
@main
enum Replay {
    static func main() { replayFuzzInputs(CommandLine.arguments.dropFirst(), fuzzJSON) }
}
#endif
