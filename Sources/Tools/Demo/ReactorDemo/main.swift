// reactor-demo: an empty loop with a one-second heartbeat and a deferred
// work chain, for trying the Reactor and measuring idle RSS.
//   reactor-demo [seconds]   run for that long (default 3), then exit
import Reactor
#if canImport(Glibc)
import Glibc
#endif

let args = CommandLine.arguments
if args.count > 1 && (args[1] == "--help" || args[1] == "-h") {
    print("usage: reactor-demo [seconds]\n  Runs an event loop with a heartbeat timer and prints loop lag, RSS and CPU.")
    exit(0)
}
let seconds = args.count > 1 ? Double(args[1]) ?? 3 : 3
let loop = EventLoop.makeDefault()
var ticks = 0
let heartbeat = TimerWatcher(loop: loop) { t in
    ticks += 1
    print("tick \(ticks): iteration=\(loop.iteration) lag_p99_us=\(loop.lag.quantile(0.99)) rss_kb=\(ProcessLimits.residentBytes() / 1024)")
}
heartbeat.start(after: 1, repeat: 1)
let end = TimerWatcher(loop: loop) { _ in loop.stop() }
end.start(after: seconds)
let sigint = SignalWatcher(loop: loop, signal: SIGINT) { _ in loop.stop() }
sigint.start()
loop.run()
print("done: iterations=\(loop.iteration) cpu_s=\(ProcessLimits.cpuSeconds()) rss_kb=\(ProcessLimits.residentBytes() / 1024)")
