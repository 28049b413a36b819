// monitors-bench: the synthetic monitors engine under load, for
// scripts/bench-monitors.sh.
//
//   monitors-bench run --url URL [--monitors 1000] [--interval 10] [--seconds 60] [--timeout 5]
//       One engine on the default loop running N HTTP monitors against URL
//       (jittered over the interval, as agents do). Prints runs and
//       outcomes, loop lag p50/p99/max, CPU (user+system, % of one core),
//       RSS now and peak, and request latency quantiles.
//   monitors-bench idle-rss [--seconds 1] [--load-curl | --no-engine]
//       An engine with no monitor (or, with --load-curl, one HTTP monitor
//       that never comes due, which loads libcurl; with --no-engine, no
//       engine at all: the binary's own floor) on an otherwise empty loop;
//       prints the resident set after SECONDS.
import MonitorModel
import MonitorRunners
import Reactor
#if canImport(Glibc)
import Glibc
#endif

func option(_ name: String, _ fallback: String) -> String {
    let args = CommandLine.arguments
    guard let i = args.firstIndex(of: "--\(name)"), i + 1 < args.count else { return fallback }
    return args[i + 1]
}

func flag(_ name: String) -> Bool { CommandLine.arguments.contains("--\(name)") }

/// Peak resident set (VmHWM), KiB.
func peakRSSKiB() -> UInt64 {
    guard let status = ProcessLimits.readSmallFile("/proc/self/status") else { return 0 }
    for line in status.split(separator: "\n") where line.hasPrefix("VmHWM:") {
        return UInt64(line.split(separator: " ").dropFirst().first.map(String.init) ?? "0") ?? 0
    }
    return 0
}

func run() {
    let url = option("url", "")
    guard !url.isEmpty else { print("usage: monitors-bench run --url URL [...]"); exit(2) }
    let count = Int(option("monitors", "1000"))!
    let interval = UInt32(option("interval", "10"))!
    let seconds = Double(option("seconds", "60"))!
    let timeout = UInt32(option("timeout", "5"))!
    _ = try? ProcessLimits.raiseDescriptorLimit()

    let loop = EventLoop.makeDefault()
    var outcomes: [String: Int] = [:]
    var latency = LogHistogram()
    var ttfb = LogHistogram()
    var options = MonitorEngine.Options()
    options.maxConcurrentRuns = count
    let engine = MonitorEngine(loop: loop, options: options) { r in
        outcomes[r.status.description, default: 0] += 1
        if r.status == .ok {
            latency.record(r.durationUs)
            if let t = r.phases.first(where: { $0.name == "ttfb" }) { ttfb.record(t.durationUs) }
        } else if outcomes[r.status.description] == 1 {
            print("first \(r.status): \(r.message)")
        }
    }
    let defs = (0..<count).map {
        MonitorDefinition(id: "bench-\($0)", name: "bench \($0)", intervalSecs: interval, timeoutSecs: timeout,
                          check: .http(HTTPCheck(url: url)))
    }
    let rssBefore = ProcessLimits.residentBytes() / 1024
    let cpu0 = ProcessLimits.cpuSeconds()
    let t0 = Clock.monotonic()
    engine.apply(definitions: defs)
    loop.resetLag()
    let stop = TimerWatcher(loop: loop) { _ in loop.stop() }
    stop.start(after: seconds)
    // The first interval holds libcurl's first use (resolver, TLS and
    // connection code paths faulted in); it is reported apart.
    var firstInterval = LogHistogram()
    let warm = TimerWatcher(loop: loop) { _ in
        firstInterval = loop.lag
        loop.resetLag()
    }
    if seconds > Double(interval) * 2 { warm.start(after: Double(interval)) }
    var samples: [UInt64] = []
    let sampler = TimerWatcher(loop: loop) { _ in samples.append(ProcessLimits.residentBytes() / 1024) }
    sampler.start(after: 1, repeat: 1)
    loop.run()
    sampler.stop()
    let wall = Clock.monotonic() - t0
    let cpu = ProcessLimits.cpuSeconds() - cpu0
    let lag = loop.lag
    let s = engine.stats
    engine.shutdown()

    print("monitors=\(count) interval_s=\(interval) seconds=\(Int(wall)) url=\(url)")
    print("libcurl=\(engine.httpLibraryVersion)")
    print("runs_started=\(s.runsStarted) runs_completed=\(s.runsCompleted) outcomes=\(outcomes.sorted { $0.key < $1.key }.map { "\($0.key):\($0.value)" }.joined(separator: ",")) overtime=\(s.overtime) late_skips=\(s.lateSkips)")
    print("runs_per_s=\(format1(Double(s.runsCompleted) / wall))")
    if firstInterval.count > 0 {
        print("loop_lag_us first_interval p50=\(firstInterval.quantile(0.5)) p99=\(firstInterval.quantile(0.99)) max=\(firstInterval.max) iterations=\(firstInterval.count)")
    }
    print("loop_lag_us\(firstInterval.count > 0 ? " after_first_interval" : "") p50=\(lag.quantile(0.5)) p99=\(lag.quantile(0.99)) p999=\(lag.quantile(0.999)) max=\(lag.max) iterations=\(lag.count)")
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    print("cpu_s=\(format1(cpu)) cpu_pct_of_one_core=\(format1(100 * cpu / wall)) involuntary_context_switches=\(usage.ru_nivcsw)")
    print("rss_kib before_apply=\(rssBefore) median=\(samples.sorted()[samples.count / 2]) last=\(samples.last ?? 0) peak=\(peakRSSKiB())")
    print("request_us p50=\(latency.quantile(0.5)) p99=\(latency.quantile(0.99)) max=\(latency.max) ttfb_p50=\(ttfb.quantile(0.5))")
}

func format1(_ v: Double) -> String {
    let scaled = (v * 10).rounded()
    return "\(Int(scaled) / 10).\(abs(Int(scaled)) % 10)"
}

func idleRSS() {
    let seconds = Double(option("seconds", "1"))!
    let loop = EventLoop.makeDefault()
    let engine: MonitorEngine? = flag("no-engine") ? nil : MonitorEngine(loop: loop) { _ in }
    if let engine, flag("load-curl") {
        // Due within a day: never during the probe, but scheduled, so libcurl loads.
        engine.apply(definitions: [MonitorDefinition(id: "probe", name: "probe", intervalSecs: 86_400, timeoutSecs: 5,
                                                     check: .http(HTTPCheck(url: "http://127.0.0.1:9/")))])
    }
    var rss: UInt64 = 0
    let sample = TimerWatcher(loop: loop) { _ in
        rss = ProcessLimits.residentBytes()
        loop.stop()
    }
    sample.start(after: seconds)
    loop.run()
    print("idle_rss_kib=\(rss / 1024) libcurl_loaded=\(engine?.isHTTPLoaded ?? false)")
    engine?.shutdown()
}

switch CommandLine.arguments.dropFirst().first {
case "run": run()
case "idle-rss": idleRSS()
default:
    print("usage: monitors-bench run --url URL [--monitors N] [--interval S] [--seconds S] [--timeout S]")
    print("       monitors-bench idle-rss [--seconds S] [--load-curl | --no-engine]")
    exit(2)
}
