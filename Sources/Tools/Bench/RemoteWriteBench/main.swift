// remote-write-bench: samples per second the remote-write sender encodes
// (protobuf WriteRequest) and compresses (snappy) on one core — the CPU a
// collector spends per sample it forwards. Series look like the collector's
// (five labels plus __name__, one sample each), in requests of
// `--per-request` samples (default 2000, remote_write_max_samples_per_request).
//
// Usage: remote-write-bench [--samples N] [--per-request N]
// (scripts/bench-remote-write.sh builds it in release mode and runs it).
//
// Thread: main only.
import Reactor
#if canImport(Glibc)
import Glibc
#endif
import RemoteWrite

var total = 2_000_000
var perRequest = 2000
var args = CommandLine.arguments.dropFirst()
while let a = args.popFirst() {
    switch a {
    case "--samples": total = Int(args.popFirst() ?? "") ?? total
    case "--per-request": perRequest = Int(args.popFirst() ?? "") ?? perRequest
    default:
        print("usage: remote-write-bench [--samples N] [--per-request N]")
        exit(2)
    }
}

let names = ["vigil_request_duration_seconds_count", "vigil_request_duration_seconds_sum", "vigil_request_errors_total",
             "vigil_request_duration_min_seconds"]
var series: [Series] = []
for i in 0..<perRequest {
    series.append(Series(name: names[i % names.count],
                         labels: [("project", "acme"), ("agent", "agent-\(i % 50)"), ("monitor", "shop-\(i % 20)"),
                                  ("check", "GET /cart/\(i % 7)"), ("source", "ipa")],
                         samples: [(Double(i) * 1.5, 1_765_000_000_000 + Int64(i))]))
}
let requests = max(1, total / perRequest)
var rawBytes = 0, compressedBytes = 0
let start = Clock.monotonic()
for r in 0..<requests {
    series[r % perRequest].samples[0].value += 1
    let raw = WriteRequestEncoder.encode(series)
    let body = Snappy.compress(raw)
    rawBytes += raw.count
    compressedBytes += body.count
}
let secs = Clock.monotonic() - start
let samples = requests * perRequest
print("remote-write-bench: \(samples) samples in \(requests) requests of \(perRequest): "
      + "\(Int(Double(samples) / secs)) samples/s encoded+compressed on one core, "
      + "\(rawBytes / samples) B/sample protobuf, \(compressedBytes / samples) B/sample snappy")
