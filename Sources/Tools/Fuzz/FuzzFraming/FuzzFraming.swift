// fuzz-framing: libFuzzer target for FrameDecoder.
//
// Byte 0 picks the limits, byte 1 the read sizes; the rest is the stream.
// Invariants (a violation traps, which is what the fuzzer looks for):
// every byte is consumed exactly once, each frame is within the limits,
// and re-framing the frames reproduces the consumed prefix of the stream.
//
// Built with -D FUZZING (scripts/fuzz.sh) it hands its body to libFuzzer;
// a normal build replays files: `fuzz-framing FILE...`.
import FuzzSupport
import Wire
#if canImport(Glibc)
import Glibc
#endif

func fuzzFraming(_ data: UnsafeRawBufferPointer) {
    guard data.count >= 2 else { return }
    let minLength = Int(data[0] & 0x1F)
    let maxLength = data[0] & 0x80 != 0 ? FrameDecoder.maxFrameLength : minLength + Int(data[0] >> 5) * 97
    let chunk = Int(data[1]) + 1
    let stream = UnsafeRawBufferPointer(rebasing: data[2...])
    let decoder = FrameDecoder(minLength: minLength, maxLength: maxLength, initialCapacity: 16)
    var reframed: [UInt8] = []
    var offset = 0
    outer: while offset < stream.count {
        let end = min(stream.count, offset + chunk)
        while offset < end {
            let (used, step) = decoder.consume(UnsafeRawBufferPointer(rebasing: stream[offset..<end]))
            precondition(used > 0 && used <= end - offset, "consume must make progress within its input")
            offset += used
            switch step {
            case .needMore:
                precondition(offset == end, "needMore with input left")
            case .frame:
                let f = decoder.frame
                precondition(f.count >= minLength && f.count <= maxLength, "frame outside limits")
                reframed.append(UInt8(f.count >> 8))
                reframed.append(UInt8(f.count & 0xFF))
                reframed.append(contentsOf: f)
            case .invalid(let e):
                switch e {
                case .tooLong(let n): precondition(n > maxLength)
                case .tooShort(let n): precondition(n < minLength)
                }
                break outer
            }
        }
    }
    precondition(reframed.count <= offset, "more output than input")
    precondition(reframed.elementsEqual(stream[0..<reframed.count]), "frames do not reproduce the stream")
    precondition(reframed.count + decoder.bufferedBytes <= offset)
}

#if FUZZING
@_cdecl("fuzz_framing_main") public func fuzzMain(_ argc: CInt, _ argv: FuzzArgv) -> CInt { runFuzzer(argc, argv, fuzzFraming) }
#else
@main enum Replay { static func main() { replayFuzzInputs(fuzzFraming) } }
#endif
