// statsd-bench: the agent's StatsD pipeline alone (parse → filter →
// aggregate), no sockets — the CPU cost per line, which the UDP figures of
// scripts/bench-statsd.sh add the kernel's to. Feeds prebuilt datagrams of
// LINES lines each, a realistic mix over SERIES series (timers, counters
// with a sample rate and tags, gauges, distributions, sets), for SECONDS,
// closing a window every 100,000 datagrams like the runtime would.
//
//   statsd-bench [SECONDS] [LINES] [SERIES]        (3, 1 and 1000 by default)
//
// Prints one key=value line: lines, seconds, lines_per_s, lines_per_cpu_s
// (process CPU time: the figure that survives a busy machine), series.
//
// Thread: main (one thread, no loop).
#if canImport(Glibc)
import Glibc
#endif
import Agent
import Reactor

func cpuSeconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

let args = CommandLine.arguments
let seconds = args.count > 1 ? Double(args[1]) ?? 3 : 3
let linesPerDatagram = args.count > 2 ? Int(args[2]) ?? 1 : 1
let series = args.count > 3 ? Int(args[3]) ?? 1000 : 1000

func line(_ n: Int) -> String {
    let s = n % series
    switch n % 5 {
    case 0: return "api.request.\(s):\(n % 100).5|ms"
    case 1: return "api.calls.\(s):1|c|@0.5|#env:prod,region:eu"
    case 2: return "queue.depth.\(s):\(n % 1000)|g"
    case 3: return "payload.bytes.\(s):\(n % 4096)|d|#service:web"
    default: return "users.\(s):u\(n % 500)|s"
    }
}

// 4096 distinct datagrams, cycled.
var datagrams: [[UInt8]] = []
var n = 0
for _ in 0..<4096 {
    var text = ""
    for i in 0..<linesPerDatagram {
        text += line(n) + (i + 1 < linesPerDatagram ? "\n" : "")
        n += 1
    }
    datagrams.append(Array(text.utf8))
}

let pipeline = StatsDPipeline(aggregationIntervalMs: 10_000)
let start = Clock.monotonic()
let cpuStart = cpuSeconds()
var fed = 0
var deadline = start + seconds
var now = start
while now < deadline {
    for _ in 0..<1000 {
        datagrams[fed & 4095].withUnsafeBytes { pipeline.ingest($0) }
        fed += 1
        if fed % 100_000 == 0 { _ = pipeline.aggregator.flush(windowStartMs: Int64(fed)) }
    }
    now = Clock.monotonic()
}
let elapsed = now - start
let cpu = cpuSeconds() - cpuStart
let c = pipeline.counters
precondition(c.drops.total == 0 && c.lines == UInt64(fed * linesPerDatagram), "lines dropped: \(c.drops.total)")
let rate = Double(c.lines) / elapsed
print("statsd-bench lines=\(c.lines) seconds=\(String(Int(elapsed * 1000)))ms lines_per_s=\(Int(rate)) lines_per_cpu_s=\(Int(Double(c.lines) / cpu)) series=\(pipeline.aggregator.seriesCount) lines_per_datagram=\(linesPerDatagram)")
