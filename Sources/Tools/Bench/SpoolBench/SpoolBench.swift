// spool-bench: the agent's disk spool on this machine's disk — how fast
// batches are appended (write-through, as the uplink does) and read back
// (replay after an outage), in batches/s, items/s and MB/s.
//   spool-bench [directory] [batches] [sync]   (run via scripts/bench-spool.sh)
// Two workloads: batches of 64 aggregates (queue 1) and of 256 raw events
// (queue 2, ~60-byte paths). Writes use `spool_sync` (default interval:
// fdatasync every 1,000 ms of wall time, as the uplink's tick does);
// replay reads every batch through the cursor and acknowledges as it goes.
import Agent
import IPAPipeline
import Reactor
#if canImport(Glibc)
import Glibc
#endif

let args = CommandLine.arguments
if args.count > 1 && (args[1] == "-h" || args[1] == "--help") {
    print("usage: spool-bench [directory] [batches] [interval|always|never]")
    exit(0)
}
let base = args.count > 1 ? args[1] : "/tmp/vigil-spool-bench-\(getpid())"
let batches = args.count > 2 ? Int(args[2]) ?? 2000 : 2000
let sync = args.count > 3 ? SpoolSettings.Sync(rawValue: args[3]) ?? .interval : .interval

func aggregates(_ n: Int) -> [OutboundItem] {
    (0..<64).map { i in
        .aggregate(LatencyAggregate(windowStartMs: 1_700_000_000_000 + Int64(n) * 10_000, windowMs: 10_000,
                                    monitor: "api-\(i % 8)", check: "get-user-\(i)", source: "ipa", count: 1000,
                                    sumUs: 12_345_678, minUs: 900, maxUs: 250_000, p50Us: 11_000, p95Us: 80_000, p99Us: 200_000))
    }
}

func events(_ n: Int) -> [OutboundItem] {
    (0..<256).map { i in
        .event(ForwardedEvent(timestampUs: 1_700_000_000_000_000 + UInt64(n * 256 + i), method: "GET", host: "api.example.com",
                              path: "/v1/users/:id/orders/:id/items/:id/details-\(i % 10)", durationUs: 12_345,
                              monitor: "api", check: "get-user"))
    }
}

func run(_ name: String, _ make: (Int) -> [OutboundItem]) {
    let dir = "\(base)/\(name)"
    let settings = SpoolSettings(directory: dir, maxBytes: 1 << 40, sync: sync, syncIntervalMs: 1000)
    guard let spool = try? Spool.open(settings) else { print("cannot open \(dir)"); exit(1) }
    let prepared = (0..<16).map(make)
    let items = prepared[0].count
    var start = Clock.monotonicNanos()
    var lastTick = start
    for n in 0..<batches {
        spool.append(prepared[n % 16], nowMs: Clock.wallMillis())
        let now = Clock.monotonicNanos()
        if now - lastTick >= 1_000_000_000 { spool.tick(); lastTick = now }
    }
    spool.close()
    var seconds = Double(Clock.monotonicNanos() - start) / 1e9
    let bytes = Double(spool.bytes)
    func line(_ what: String) {
        let b = Double(batches)
        let rate = "\(Int(b / seconds)) batches/s, \(Int(b * Double(items) / seconds)) items/s, \(fixed(bytes / 1e6 / seconds)) MB/s"
        print("\(name) \(what): \(rate) (\(batches) batches of \(items), \(fixed(bytes / 1e6)) MB, \(fixed(seconds)) s)")
    }
    line("write (spool_sync \(sync.rawValue))")
    // Replay as after a restart: a fresh open (scans every segment), then
    // the cursor oldest first, acknowledging as the collector would.
    start = Clock.monotonicNanos()
    guard let again = try? Spool.open(settings) else { exit(1) }
    var last: UInt64 = 0, read = 0
    while let b = again.batch(after: last) {
        last = b.sequence
        read += b.items.count
        if b.sequence % 64 == 0 { again.acknowledge(upTo: b.sequence) }
    }
    again.acknowledge(upTo: last)
    again.close()
    seconds = Double(Clock.monotonicNanos() - start) / 1e9
    precondition(read == batches * items, "replay read \(read) items of \(batches * items)")
    line("replay (open + read + ack)")
    for n in (try? listDirectory(dir)) ?? [] { unlink(dir + "/" + n) }
    rmdir(dir)
}

/// `x` with one decimal.
func fixed(_ x: Double) -> String {
    let tenths = Int((x * 10).rounded())
    return "\(tenths / 10).\(tenths % 10)"
}

func listDirectory(_ dir: String) throws -> [String] {
    guard let d = opendir(dir) else { return [] }
    defer { closedir(d) }
    var names: [String] = []
    while let e = readdir(d) {
        let name = withUnsafeBytes(of: e.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        if name != "." && name != ".." { names.append(name) }
    }
    return names
}

print("# spool-bench: \(batches) batches per workload in \(base), spool_sync \(sync.rawValue)")
run("aggregates", aggregates)
run("events", events)
rmdir(base)
