// FuzzSupport: what every fuzz target shares — the hand-over to libFuzzer's
// driver and the replay of saved inputs.
//
// SwiftPM links an executable with `--defsym main=<module>_main`, so
// libFuzzer's own `main` is never pulled in: each target exports
// `<module>_main` (built with -D FUZZING by scripts/fuzz.sh) and calls
// `runFuzzer` with its body, which enters LLVMFuzzerRunDriver: a target is
// its body and two lines,
//
//     #if FUZZING
//     @_cdecl("fuzz_NAME_main") public func fuzzMain(_ argc: CInt, _ argv: FuzzArgv) -> CInt { runFuzzer(argc, argv, body) }
//     #else
//     @main enum Replay { static func main() { replayFuzzInputs(body) } }
//     #endif A plain build of the same
// target is a replay tool: `fuzz-NAME FILE...` runs saved inputs (a crash
// file, the seeds) through the same code.
#if canImport(Glibc)
import Glibc
#endif

/// What a fuzz target tests: one input, valid only during the call.
public typealias FuzzBody = (UnsafeRawBufferPointer) -> Void
/// The argv libFuzzer's driver takes.
public typealias FuzzArgv = UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?

#if FUZZING
@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(_ argc: UnsafeMutablePointer<CInt>,
                         _ argv: UnsafeMutablePointer<FuzzArgv>,
                         _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt) -> CInt

/// The target's body while libFuzzer runs (a C callback cannot capture it).
private var activeBody: FuzzBody?

/// Runs libFuzzer with the process's arguments, feeding every input to
/// `body` through LLVMFuzzerTestOneInput.
public func runFuzzer(_ argc: CInt, _ argv: FuzzArgv, _ body: @escaping FuzzBody) -> CInt {
    activeBody = body
    var argc = argc
    var argv = argv
    return LLVMFuzzerRunDriver(&argc, &argv, fuzzerTestOneInput)
}

/// libFuzzer's entry (its runtime refers to the symbol): the body given to `runFuzzer`.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzerTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    activeBody?(UnsafeRawBufferPointer(start: data, count: size))
    return 0
}
#endif

/// The replay tool's main: runs each file named on the command line through `body`.
public func replayFuzzInputs(_ body: FuzzBody) {
    replayFuzzInputs(CommandLine.arguments.dropFirst(), body)
}

/// Runs each file named in `paths` through `body`; exits 2 naming a file
/// that cannot be read.
public func replayFuzzInputs<S: Sequence>(_ paths: S, _ body: (UnsafeRawBufferPointer) -> Void) where S.Element == String {
    for path in paths {
        guard let f = fopen(path, "rb") else { print("cannot open \(path)"); exit(2) }
        var bytes: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = fread(&buf, 1, buf.count, f)
            if n <= 0 { break }
            bytes += buf[0..<n]
        }
        fclose(f)
        bytes.withUnsafeBytes { body($0) }
        print("\(path): ok (\(bytes.count) bytes)")
    }
}
