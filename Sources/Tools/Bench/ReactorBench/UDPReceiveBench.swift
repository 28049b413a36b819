// The Reactor side of the UDP receive comparison: a UDPReceiver doing the
// same per-datagram work as scripts/bench/udp_recv.c (read each datagram's
// first 8 bytes), timed the same way: from the first datagram to the last,
// with getrusage CPU time over that window.
import Reactor
#if canImport(Glibc)
import Glibc
#endif

struct UDPReceiveBench {
    let port: UInt16
    let batch: Int
    let budget: Int
    let maxDatagram: Int
    let receiveBuffer: Int
    let idleSeconds: Double
    let maxSeconds: Double

    func run() {
        do { try measure() } catch {
            print("reactor-bench udp-recv: \(error)")
            exit(1)
        }
    }

    private func measure() throws {
        let loop = EventLoop()
        let socket = try UDPSocket.loopback(port: port, options: .init(receiveBufferBytes: receiveBuffer))
        var x: UInt64 = 0
        var t0: UInt64 = 0, tLast: UInt64 = 0
        var c0 = CPUTime()
        let receiver = try UDPReceiver(socket: socket, loop: loop,
                                       config: .init(batchSize: batch, budget: budget, maxDatagramSize: maxDatagram)) { b in
            if t0 == 0 {
                t0 = Clock.monotonicNanos()
                c0 = CPUTime()
            }
            for d in b where d.bytes.count >= 8 { x ^= d.bytes.loadUnaligned(as: UInt64.self) }
            tLast = Clock.monotonicNanos()
        }
        let idle = UInt64(idleSeconds * 1e9), limit = UInt64(maxSeconds * 1e9)
        let watchdog = TimerWatcher(loop: loop) { _ in
            guard t0 != 0 else { return }
            let now = Clock.monotonicNanos()
            if now - tLast > idle || now - t0 > limit { loop.stop() }
        }
        watchdog.start(after: 0.05, repeat: 0.05)
        receiver.start()
        print("ready port=\(port)")
        fflush(stdout)
        loop.run()
        let c1 = CPUTime()
        receiver.stop()
        watchdog.stop()
        try? receiver.refreshKernelDrops()
        let secs = Double(tLast &- t0) / 1e9
        print("receiver=reactor datagrams=\(receiver.datagrams) bytes=\(receiver.bytes) seconds=\(fmt(secs)) cpu_s=\(fmt(c1.user + c1.system - c0.user - c0.system))"
            + " user_s=\(fmt(c1.user - c0.user)) sys_s=\(fmt(c1.system - c0.system))"
            + " wakeups=\(receiver.wakeups) budget_exhaustions=\(receiver.budgetExhaustions) kernel_drops=\(receiver.kernelDrops)"
            + " truncated=\(receiver.truncated) x=\(String(x, radix: 16))")
    }
}

func fmt(_ v: Double, _ digits: Int = 4) -> String {
    var buf = [CChar](repeating: 0, count: 64)
    _ = withVaList([v]) { vsnprintf(&buf, 64, "%.\(digits)f", $0) }
    return String(cString: buf)
}

/// User and system CPU seconds of this process (getrusage).
struct CPUTime {
    let user: Double
    let system: Double

    init() {
        var ru = rusage()
        getrusage(RUSAGE_SELF.rawValue, &ru)
        user = Double(ru.ru_utime.tv_sec) + Double(ru.ru_utime.tv_usec) / 1e6
        system = Double(ru.ru_stime.tv_sec) + Double(ru.ru_stime.tv_usec) / 1e6
    }
}
