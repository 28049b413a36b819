// HostResolver: literals answered without a thread, names off the loop,
// answers only on later iterations and on the loop thread, cancellation
// (answers dropped, waiting lookups skipped), the thread and waiting
// bounds, threads stopping when idle, and a dropped resolver. Lookups that
// must block use an injected lookup held at a gate.
import XCTest
import Synchronization
@testable import Reactor
#if canImport(Glibc)
import Glibc
#endif

final class HostResolverTests: XCTestCase {
    /// Holds injected lookups until opened; counts how many ran at once.
    final class Gate: @unchecked Sendable {
        let isOpen = Atomic<Bool>(false)
        let running = Atomic<Int>(0)
        let mostRunning = Atomic<Int>(0)
        let calls = Atomic<Int>(0)
        let lastHost = Mutex<[String]>([])

        func open() { isOpen.store(true, ordering: .sequentiallyConsistent) }

        var lookup: HostResolver.Lookup {
            { [self] host, port in
                calls.wrappingAdd(1, ordering: .sequentiallyConsistent)
                lastHost.withLock { $0.append(host) }
                let now = running.wrappingAdd(1, ordering: .sequentiallyConsistent).newValue
                var most = mostRunning.load(ordering: .sequentiallyConsistent)
                while now > most {
                    let (exchanged, original) = mostRunning.compareExchange(expected: most, desired: now, ordering: .sequentiallyConsistent)
                    if exchanged { break }
                    most = original
                }
                while !isOpen.load(ordering: .sequentiallyConsistent) { usleep(1000) }
                running.wrappingSubtract(1, ordering: .sequentiallyConsistent)
                return .success([try! SocketAddress(ip: "192.0.2.1", port: port)])
            }
        }
    }

    /// Runs the loop until `done` or a generous real-time bound.
    @discardableResult
    private func run(_ loop: EventLoop, timeout: Double = 10, until done: () -> Bool) -> Bool {
        let deadline = Clock.monotonic() + timeout
        while !done() && Clock.monotonic() < deadline { loop.runOnce() }
        return done()
    }

    func testLiteralAnswersOnALaterIterationWithoutAThread() {
        let loop = EventLoop()
        let r = HostResolver(loop: loop)
        var got: [SocketAddress]?
        r.resolve("127.0.0.1", port: 6600) { got = try? $0.get() }
        XCTAssertNil(got, "never calls back before returning")
        XCTAssertTrue(run(loop) { got != nil })
        XCTAssertEqual(got?.map(\.description), ["127.0.0.1:6600"])
        var v6: [SocketAddress]?
        r.resolve("::1", port: 1) { v6 = try? $0.get() }
        r.resolve("[::1]", port: 2) { _ in }
        XCTAssertTrue(run(loop) { v6 != nil })
        XCTAssertEqual(v6?.map(\.description), ["[::1]:1"])
        XCTAssertFalse(r.hasThreads, "literals start no thread")
        XCTAssertEqual(r.threadStarts, 0)
    }

    func testNameIsResolvedOffTheLoop() {
        let loop = EventLoop()
        let r = HostResolver(loop: loop)
        var result: Result<[SocketAddress], HostResolver.ResolveError>?
        r.resolve("localhost", port: 6600) { result = $0 }
        XCTAssertNil(result)
        XCTAssertTrue(run(loop) { result != nil })
        let first = (try? result?.get())?.first?.description
        XCTAssertTrue(first == "127.0.0.1:6600" || first == "[::1]:6600", "\(String(describing: result))")
        var bad: Result<[SocketAddress], HostResolver.ResolveError>?
        r.resolve("no-such-host.invalid", port: 1) { bad = $0 }
        XCTAssertTrue(run(loop, timeout: 20) { bad != nil })
        if case .failure(let e)? = bad { XCTAssertTrue(e.description.hasPrefix("cannot resolve no-such-host.invalid: ")) } else { XCTFail() }
    }

    func testCancelledLookupNeverAnswers() {
        let loop = EventLoop()
        let r = HostResolver(loop: loop)
        var called = false
        r.resolve("localhost", port: 1) { _ in called = true }.cancel()
        r.resolve("127.0.0.1", port: 1) { _ in called = true }.cancel()
        run(loop, timeout: 0.5) { false }
        XCTAssertFalse(called)
    }

    func testAnswersComeOnTheLoopThreadOnALaterIteration() {
        let loop = EventLoop()
        let gate = Gate()
        gate.open()
        let r = HostResolver(loop: loop, lookup: gate.lookup)
        let loopThread = pthread_self()
        var onLoopThread = false
        var got: [SocketAddress]?
        r.resolve("api.example", port: 443) { result in
            onLoopThread = pthread_equal(pthread_self(), loopThread) != 0
            got = try? result.get()
        }
        XCTAssertNil(got)
        XCTAssertTrue(run(loop) { got != nil })
        XCTAssertTrue(onLoopThread)
        XCTAssertEqual(got?.map(\.description), ["192.0.2.1:443"])
        XCTAssertEqual(r.pendingCount, 0)
    }

    func testEveryQuickAnswerArrives() {
        // An answer finished before the loop armed its wake-up would be
        // lost (ev_async_start clears a pending send): one at a time, each
        // to a thread already waiting for work, answered at once.
        let loop = EventLoop()
        let gate = Gate()
        gate.open()
        let r = HostResolver(loop: loop, threadLimit: 1, lookup: gate.lookup)
        var answered = 0
        for i in 0..<300 {
            r.resolve("quick\(i).example", port: 1) { _ in answered += 1 }
            guard run(loop, timeout: 5, until: { answered == i + 1 }) else { return XCTFail("answer \(i) lost") }
        }
        XCTAssertEqual(r.threadStarts, 1)
    }

    func testAWaitingCancelledLookupIsSkipped() {
        let loop = EventLoop()
        let gate = Gate()
        let r = HostResolver(loop: loop, threadLimit: 1, lookup: gate.lookup)
        var answers: [String] = []
        r.resolve("first.example", port: 1) { _ in answers.append("first") }
        XCTAssertTrue(run(loop) { gate.calls.load(ordering: .sequentiallyConsistent) == 1 }, "the one thread took the first")
        let second = r.resolve("second.example", port: 1) { _ in answers.append("second") }
        r.resolve("third.example", port: 1) { _ in answers.append("third") }
        second.cancel()
        gate.open()
        XCTAssertTrue(run(loop) { answers.count == 2 })
        XCTAssertEqual(answers, ["first", "third"])
        XCTAssertEqual(gate.lastHost.withLock { $0 }, ["first.example", "third.example"], "the cancelled lookup never ran")
        XCTAssertEqual(r.pendingCount, 0)
    }

    func testThreadsAndWaitingLookupsAreBounded() {
        let loop = EventLoop()
        let gate = Gate()
        let r = HostResolver(loop: loop, threadLimit: 2, waitingLimit: 5, idleSeconds: 0, lookup: gate.lookup)
        var answers: [Result<[SocketAddress], HostResolver.ResolveError>] = []
        for i in 0..<6 { r.resolve("h\(i).example", port: 1) { answers.append($0) } }
        XCTAssertEqual(r.pendingCount, 5)
        XCTAssertEqual(r.threadStarts, 1)
        // The sixth is refused at once (on a later iteration), while the
        // five wait behind two threads that never return until the gate opens.
        XCTAssertTrue(run(loop) { answers.count == 1 })
        guard case .failure(let refusal) = answers[0] else { return XCTFail("\(answers)") }
        XCTAssertEqual(refusal.description, "cannot resolve h5.example: too many lookups (5) waiting")
        XCTAssertEqual(r.refused, 1)
        XCTAssertTrue(run(loop) { gate.running.load(ordering: .sequentiallyConsistent) == 2 })
        run(loop, timeout: 0.2) { false }
        XCTAssertEqual(gate.mostRunning.load(ordering: .sequentiallyConsistent), 2, "never more lookups at once than threads")
        gate.open()
        XCTAssertTrue(run(loop) { answers.count == 6 })
        XCTAssertEqual(gate.mostRunning.load(ordering: .sequentiallyConsistent), 2)
        // Idle: the threads stop, and no watcher is left.
        XCTAssertTrue(run(loop) { !r.hasThreads })
        XCTAssertTrue(run(loop) { loop.activeWatchers == 0 })
        // The next name starts them again.
        var again = false
        r.resolve("later.example", port: 1) { _ in again = true }
        XCTAssertTrue(run(loop) { again })
        XCTAssertEqual(r.threadStarts, 2)
    }

    func testDroppedResolverDropsAnswersAndItsThreadsStop() {
        let loop = EventLoop()
        let gate = Gate()
        var called = false
        var r: HostResolver? = HostResolver(loop: loop, threadLimit: 1, lookup: gate.lookup)
        r!.resolve("busy.example", port: 1) { _ in called = true }
        r!.resolve("waiting.example", port: 1) { _ in called = true }
        XCTAssertTrue(run(loop) { gate.running.load(ordering: .sequentiallyConsistent) == 1 })
        r!.resolve("10.0.0.1", port: 1) { _ in called = true }
        let resolverAlive = { [weak resolver = r] in resolver != nil }
        r = nil
        XCTAssertFalse(resolverAlive())
        gate.open()
        XCTAssertTrue(run(loop) { loop.activeWatchers == 0 }, "the thread finished its lookup and stopped")
        XCTAssertFalse(called, "no answer after the resolver went away")
        XCTAssertEqual(gate.calls.load(ordering: .sequentiallyConsistent), 1, "the waiting lookup was skipped")
    }
}
