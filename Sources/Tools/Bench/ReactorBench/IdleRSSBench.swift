// Resident memory of a process that only runs an empty loop: the floor every
// Vigil process starts from (Swift runtime, libev, the loop's own watchers).
import Reactor
#if canImport(Glibc)
import Glibc
#endif

struct IdleRSSBench {
    let seconds: Double

    func run() {
        let loop = EventLoop.makeDefault()
        var rss: UInt64 = 0
        let sample = TimerWatcher(loop: loop) { _ in
            rss = ProcessLimits.residentBytes()
            loop.stop()
        }
        sample.start(after: seconds)
        loop.run()
        print("idle_rss_kb=\(rss / 1024) iterations=\(loop.iteration)")
    }
}
