// reactor-bench: figures for scripts/bench-reactor.sh (release build).
//
//   reactor-bench udp-recv PORT [--batch 64] [--budget 256] [--max 2048]
//                 [--rcvbuf 8388608] [--idle-ms 300] [--max-s 30]
//   reactor-bench loop-overhead [--iterations 1000000] [--watchers 100]
//   reactor-bench idle-rss [--seconds 1]
//
// Each prints one line of key=value figures on stdout.
#if canImport(Glibc)
import Glibc
#endif

let args = Array(CommandLine.arguments.dropFirst())

/// The value after `--name`, as a number, or `fallback`.
func option(_ name: String, _ fallback: Double) -> Double {
    guard let i = args.firstIndex(of: "--\(name)"), i + 1 < args.count, let v = Double(args[i + 1]) else { return fallback }
    return v
}

func usage() -> Never {
    print("""
    usage: reactor-bench udp-recv PORT [--batch N] [--budget N] [--max BYTES] [--rcvbuf BYTES] [--idle-ms MS] [--max-s S]
           reactor-bench loop-overhead [--iterations N] [--watchers N]
           reactor-bench idle-rss [--seconds S]
    """)
    exit(2)
}

switch args.first {
case "udp-recv":
    guard args.count > 1, let port = UInt16(args[1]) else { usage() }
    UDPReceiveBench(port: port,
                    batch: Int(option("batch", 64)), budget: Int(option("budget", 256)),
                    maxDatagram: Int(option("max", 2048)), receiveBuffer: Int(option("rcvbuf", 8 * 1024 * 1024)),
                    idleSeconds: option("idle-ms", 300) / 1000, maxSeconds: option("max-s", 30)).run()
case "loop-overhead":
    LoopOverheadBench(iterations: Int(option("iterations", 1_000_000)), watchers: Int(option("watchers", 100))).run()
case "idle-rss":
    IdleRSSBench(seconds: option("seconds", 1)).run()
default:
    usage()
}
