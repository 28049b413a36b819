// FuzzSupport: what every fuzz target shares — the hand-over to libFuzzer's
// driver and the replay of saved inputs.
//
// SwiftPM links an executable with `--defsym main=<module>_main`, so
// libFuzzer's own `main` is never pulled in: each target exports
// `<module>_main` (built with -D FUZZING by scripts/fuzz.sh) and calls
// `runFuzzer`, which enters LLVMFuzzerRunDriver. A plain build of the same
// target is a replay tool: `fuzz-NAME FILE...` runs saved inputs (a crash
// file, the seeds) through the same code.
#if canImport(Glibc)
import Glibc
#endif

public typealias FuzzCallback = @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt

#if FUZZING
@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(_ argc: UnsafeMutablePointer<CInt>,
                         _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
                         _ callback: FuzzCallback) -> CInt

/// Runs libFuzzer with the process's arguments and `callback` as
/// LLVMFuzzerTestOneInput.
public func runFuzzer(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?,
                      _ callback: FuzzCallback) -> CInt {
    var argc = argc
    var argv = argv
    return LLVMFuzzerRunDriver(&argc, &argv, callback)
}
#endif

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
