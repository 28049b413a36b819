// fuzz-apijson: libFuzzer target for the collector's JSON parser, which reads
// every HTTP API request body (patterns, monitor definitions, configuration
// updates, control requests).
//
// Invariants: parsing never traps; whatever parses serializes to text that
// parses back to the same value and serializes identically.
//
// Built with -D FUZZING it exports LLVMFuzzerTestOneInput; a normal build
// replays files: `fuzz-apijson FILE...`.
import Collector
import FuzzSupport

func fuzzAPIJSON(_ data: UnsafeRawBufferPointer) {
    guard let value = try? JSON.parse(Array(data)) else { return }
    let text = value.serialized
    guard let again = try? JSON.parse(text) else { preconditionFailure("serialized JSON failed to parse: \(text)") }
    precondition(again == value, "round trip changed the value")
    precondition(again.serialized == text, "serialization is not stable")
}

#if FUZZING
@_cdecl("fuzz_apijson_main")
public func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runFuzzer(argc, argv, fuzzerTestOneInput)
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzerTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    fuzzAPIJSON(UnsafeRawBufferPointer(start: data, count: size))
    return 0
}
#else
@main
enum Replay {
    static func main() { replayFuzzInputs(CommandLine.arguments.dropFirst(), fuzzAPIJSON) }
}
#endif
