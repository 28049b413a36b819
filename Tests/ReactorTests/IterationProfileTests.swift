import XCTest
import Glibc
@testable import Reactor

/// The slow-iteration report: which callbacks ran in an iteration that took
/// at least the threshold, and for how long.
final class IterationProfileTests: XCTestCase {
    /// Keeps the thread busy for `micros` (a stand-in for a long callback).
    private func spin(_ micros: UInt64) {
        let end = Clock.monotonicNanos() + micros * 1000
        while Clock.monotonicNanos() < end {}
    }

    func testSlowIterationNamesTheCallbacksThatRanAndTheirTimes() throws {
        let loop = EventLoop()
        var reports: [SlowIteration] = []
        loop.profile.report = { reports.append($0) }
        loop.profile.thresholdMicros = 5_000

        let (a, b) = try Syscalls.socketpair()
        defer { close(a); close(b) }
        let io = IOWatcher(loop: loop, fd: a, events: .read, label: "busy reader") { w, _ in
            var b = [UInt8](repeating: 0, count: 16)
            _ = read(w.fd, &b, 16)
            self.spin(8_000)
        }
        io.start()
        defer { io.stop() }
        let quick = TimerWatcher(loop: loop, label: "quick") { _ in }
        quick.start(after: 0)
        loop.defer(label: "slice") { self.spin(3_000) }
        loop.defer(label: "slice") { self.spin(1_000) }
        XCTAssertEqual(write(b, "x", 1), 1)

        loop.runOnce(wait: true)
        // An iteration ends when the loop comes back to poll: in the next call.
        loop.runOnce()

        XCTAssertEqual(loop.profile.slowIterations, 1)
        let r = try XCTUnwrap(reports.first)
        XCTAssertEqual(reports.count, 1)
        XCTAssertGreaterThanOrEqual(r.micros, 12_000)
        XCTAssertEqual(r.sites.first?.name, "io busy reader")
        XCTAssertEqual(r.sites.first?.runs, 1)
        XCTAssertGreaterThanOrEqual(r.sites.first?.micros ?? 0, 8_000)
        let slice = try XCTUnwrap(r.sites.first { $0.name == "deferred slice" })
        XCTAssertEqual(slice.runs, 2, "two slices of one site are added up")
        XCTAssertGreaterThanOrEqual(slice.micros, 4_000)
        XCTAssertEqual(r.sites.first { $0.name == "timer quick" }?.runs, 1)
        XCTAssertLessThan(r.unattributedMicros, r.micros)
        XCTAssertNotNil(r.cpuMicros, "the thread's CPU time over the iteration")
        XCTAssertTrue(r.summary.hasPrefix("io busy reader 1x "), r.summary)

        // The next iteration is quick: not reported, and nothing carried over.
        loop.runOnce()
        loop.runOnce()
        XCTAssertEqual(reports.count, 1)
        XCTAssertEqual(loop.profile.slowIterations, 1)
    }

    func testThresholdZeroTimesNothingAndReportsNothing() {
        let loop = EventLoop()
        var reports = 0
        loop.profile.report = { _ in reports += 1 }
        XCTAssertFalse(loop.profile.enabled)
        XCTAssertEqual(loop.profile.begin(), 0)
        loop.defer { self.spin(3_000) }
        loop.runOnce()
        loop.runOnce()
        XCTAssertEqual(reports, 0)
        XCTAssertEqual(loop.profile.slowIterations, 0)

        loop.profile.thresholdMicros = 1_000
        loop.defer { self.spin(3_000) }
        loop.runOnce()
        loop.runOnce()
        XCTAssertEqual(reports, 1)
        XCTAssertEqual(loop.profile.slowIterations, 1)
    }

    func testReportsAreRateLimitedAndTheLeftOutOnesCounted() {
        let loop = EventLoop()
        let p = loop.profile
        var reports: [SlowIteration] = []
        p.report = { reports.append($0) }
        p.thresholdMicros = 10_000
        p.minReportInterval = 1
        let site = p.site("timer", label: "wheel", file: #fileID, line: #line)

        p.add(site, 20_000_000)
        p.iterationEnded(busyNanos: 21_000_000, iteration: 1, now: 100.0)
        p.add(site, 19_000_000)
        p.iterationEnded(busyNanos: 19_000_000, iteration: 2, now: 100.5)   // within the second, not the longest
        p.iterationEnded(busyNanos: 5_000_000, iteration: 3, now: 100.7)    // fast
        p.add(site, 15_000_000)
        p.iterationEnded(busyNanos: 16_000_000, iteration: 4, now: 101.1)

        XCTAssertEqual(p.slowIterations, 3)
        XCTAssertEqual(p.reportsSuppressed, 1)
        XCTAssertEqual(reports.map(\.iteration), [1, 4])
        XCTAssertEqual(reports.map(\.suppressedBefore), [0, 1])
        XCTAssertEqual(reports[0].sites, [SlowIteration.Site(name: "timer wheel", runs: 1, micros: 20_000)])
        XCTAssertEqual(reports[0].unattributedMicros, 1_000)
        XCTAssertEqual(reports[1].sites, [SlowIteration.Site(name: "timer wheel", runs: 1, micros: 15_000)],
                       "an iteration's figures do not carry into the next")
        XCTAssertEqual(p.longestMicros, 21_000)
        XCTAssertNil(reports[0].cpuMicros, "no iteration start seen")
    }

    /// An iteration longer than all before it is reported within the rate
    /// limit; every slow iteration's CPU time is read, reported or not, and
    /// those the thread itself spent the threshold in are counted.
    func testTheLongestIterationIsAlwaysReportedAndEverySlowOnesCPUIsCounted() {
        let loop = EventLoop()
        let p = loop.profile
        var reports: [SlowIteration] = []
        p.report = { reports.append($0) }
        p.thresholdMicros = 1_000
        p.minReportInterval = 1
        var cpu: UInt64 = 1_000_000_000   // nanoseconds
        p.cpuClock = { cpu }
        // (wall µs, CPU µs) of four slow iterations within one second.
        let iterations: [(UInt64, UInt64)] = [(2_000, 1_900), (1_500, 200), (9_000, 600), (3_000, 2_500)]
        for (i, (wall, used)) in iterations.enumerated() {
            p.iterationStarted()
            cpu += used * 1000
            p.iterationEnded(busyNanos: wall * 1000, iteration: UInt(i), now: 50.0 + Double(i) * 0.1)
        }
        XCTAssertEqual(reports.map(\.iteration), [0, 2], "the first, then a new longest despite the rate limit")
        XCTAssertEqual(reports.map(\.longest), [true, true])
        XCTAssertEqual(reports.last?.cpuMicros, 600)
        XCTAssertEqual(p.reportsSuppressed, 2)
        XCTAssertEqual(p.slowIterations, 4)
        XCTAssertEqual(p.slowIterationsOnCPU, 2, "1.9 and 2.5 ms of CPU; the others waited for a core")
        XCTAssertEqual(p.mostCPUMicros, 2_500)
    }

    func testSitesAreInternedOnceAndUnlabelledOnesNamedByWhereTheyWereMade() {
        let loop = EventLoop()
        let a = TimerWatcher(loop: loop, label: "retention") { _ in }
        let b = TimerWatcher(loop: loop, label: "retention") { _ in }
        XCTAssertEqual(a.site, b.site)
        XCTAssertEqual(loop.profile.name(of: a.site), "timer retention")
        let line = #line + 1
        let c = TimerWatcher(loop: loop) { _ in }
        XCTAssertNotEqual(c.site, a.site)
        XCTAssertEqual(loop.profile.name(of: c.site), "timer ReactorTests/IterationProfileTests.swift:\(line)")
        let once = DeferOnce(loop: loop, label: "flush") {}
        _ = once
        let io = IOWatcher(loop: loop, fd: 0, events: .read, label: "flush") { _, _ in }
        XCTAssertEqual(loop.profile.name(of: io.site), "io flush", "the kind is part of the site")
    }

    func testManySitesAreCutToTheCostliest() {
        let loop = EventLoop()
        let p = loop.profile
        var reports: [SlowIteration] = []
        p.report = { reports.append($0) }
        p.thresholdMicros = 1
        p.maxSitesReported = 3
        for i in 0..<5 { p.add(p.site("timer", label: "t\(i)", file: #fileID, line: #line), UInt64(i + 1) * 1_000_000) }
        p.iterationEnded(busyNanos: 15_000_000, iteration: 7, now: 1)
        XCTAssertEqual(reports.first?.sites.map(\.name), ["timer t4", "timer t3", "timer t2"])
        XCTAssertEqual(reports.first?.sitesLeftOut, 2)
        XCTAssertTrue(reports.first?.summary.hasSuffix(", 2 more") ?? false)
    }
}
