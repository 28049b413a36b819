// fuzz-config: libFuzzer target for configuration text from outside the
// process: files (`key = value` lines, SIGHUP re-reads) and the updates an
// agent receives from its collector (key → value text, validated before
// anything is applied).
//
// Invariants: parsing a file never traps and reports bad lines as errors;
// validating an update never traps; an update that validates applies, and
// applying it again changes nothing.
//
// Built with -D FUZZING it hands its body to libFuzzer; a normal build
// replays files: `fuzz-config FILE...`.
import ConfigFile
import FuzzSupport

func fuzzConfig(_ data: UnsafeRawBufferPointer) {
    let text = String(decoding: data, as: UTF8.self)
    _ = ConfigFileParser.parse(text, path: "fuzz.conf")

    // The same bytes as an update: one `key=value` per line.
    var update: [(key: String, value: String)] = []
    for line in text.split(separator: "\n", omittingEmptySubsequences: true) {
        let parts = line.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
        update.append((key: String(parts[0]), value: parts.count > 1 ? String(parts[1]) : ""))
    }
    var config = Configuration(defaultsOf: AgentSchema.schema)
    let errors = config.validate(update, requireLive: false)
    guard errors.isEmpty else {
        for e in errors { _ = e.description }
        return
    }
    do {
        _ = try config.apply(update, requireLive: false)
        let again = try config.apply(update, requireLive: false)
        precondition(again.isEmpty, "applying the same update twice changed \(again)")
    } catch {
        preconditionFailure("a validated update failed to apply: \(error)")
    }
}

#if FUZZING
@_cdecl("fuzz_config_main") public func fuzzMain(_ argc: CInt, _ argv: FuzzArgv) -> CInt { runFuzzer(argc, argv, fuzzConfig) }
#else
@main enum Replay { static func main() { replayFuzzInputs(fuzzConfig) } }
#endif
