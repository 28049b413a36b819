import XCTest
@testable import Reactor
#if canImport(Glibc)
import Glibc
#endif

final class WorkerThreadTests: XCTestCase {
    /// Runs the loop until `done` or a generous real-time bound.
    private func run(_ loop: EventLoop, until done: () -> Bool) {
        let deadline = Clock.monotonicNanos() + 10_000_000_000
        while !done() && Clock.monotonicNanos() < deadline { loop.runOnce() }
    }

    func testJobsRunOffTheLoopThreadAndCompleteOnItInOrder() {
        let loop = EventLoop()
        let loopThread = pthread_self()
        final class Box: @unchecked Sendable { var ranOnLoopThread = false }
        let box = Box()
        var results: [Int] = []
        let worker = WorkerThread<Int>(loop: loop, name: "test-worker", process: { w, batch in
            if pthread_equal(pthread_self(), loopThread) != 0 { box.ranOnLoopThread = true }
            w.finish(batch.map { $0 * 2 })
        }, completed: { jobs in
            XCTAssertNotEqual(pthread_equal(pthread_self(), loopThread), 0)
            results.append(contentsOf: jobs)
        })
        XCTAssertFalse(worker.isStarted, "threads start on the first submit")
        worker.submit(contentsOf: 1...100)
        XCTAssertTrue(worker.isStarted)
        XCTAssertEqual(results, [], "never completes before the submit returns")
        run(loop) { results.count == 100 }
        XCTAssertEqual(results, (1...100).map { $0 * 2 })
        XCTAssertFalse(box.ranOnLoopThread)
        XCTAssertEqual(worker.outstanding, 0)
        worker.stop()
        XCTAssertEqual(loop.activeWatchers, 0, "an idle worker holds no watcher")
    }

    /// The loop never waits for the hand-off's mutex: while a worker (here
    /// the test) holds it, submitted jobs and finished ones wait, the loop's
    /// iterations go on, and both are handed over, in order, once it is free.
    func testTheLoopTriesTheMutexAndNeverWaitsForIt() {
        let loop = EventLoop()
        final class Flag: @unchecked Sendable {
            let done = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
            var finished = 0
            init() { pthread_mutex_init(done, nil) }
            deinit { pthread_mutex_destroy(done); done.deallocate() }
            func add(_ n: Int) { pthread_mutex_lock(done); finished += n; pthread_mutex_unlock(done) }
            var count: Int { pthread_mutex_lock(done); defer { pthread_mutex_unlock(done) }; return finished }
        }
        let flag = Flag()
        var results: [Int] = []
        let worker = WorkerThread<Int>(loop: loop, name: "test-worker", process: { w, batch in
            w.finish(batch)
            flag.add(batch.count)
        }, completed: { results.append(contentsOf: $0) })
        try? worker.start()

        // Submitted while the mutex is held: nothing reaches the worker, and
        // every iteration returns.
        worker.withMutexHeld {
            worker.submit(contentsOf: 1...10)
            for _ in 0..<5 { loop.runOnce(wait: true) }     // each returns once the retry is due
        }
        XCTAssertGreaterThanOrEqual(worker.contended, 5)
        XCTAssertEqual(flag.count, 0)
        run(loop) { results.count == 10 }
        XCTAssertEqual(results, Array(1...10))

        // Finished while the mutex is held: delivered once it is free.
        worker.submit(contentsOf: 11...20)
        let deadline = Clock.monotonicNanos() + 10_000_000_000
        while flag.count < 20 && Clock.monotonicNanos() < deadline { usleep(1_000) }
        XCTAssertEqual(flag.count, 20)
        let before = worker.contended
        worker.withMutexHeld {
            for _ in 0..<3 { loop.runOnce() }
        }
        XCTAssertEqual(results.count, 10, "not delivered while the mutex was held")
        XCTAssertGreaterThan(worker.contended, before)
        run(loop) { results.count == 20 }
        XCTAssertEqual(results, Array(1...20))
        worker.stop()
        XCTAssertEqual(worker.outstanding, 0)
    }

    /// While a worker holds the mutex the loop sleeps until the retry is
    /// due rather than trying again on an immediate next iteration: a loop
    /// thread that shares its core with the worker (and outranks it) must
    /// leave the worker the core to release the lock.
    func testTheLoopSleepsUntilTheRetryWhileTheMutexIsHeld() {
        let loop = EventLoop()
        var results: [Int] = []
        let worker = WorkerThread<Int>(loop: loop, name: "test-worker", process: { w, batch in w.finish(batch) },
                                       completed: { results.append(contentsOf: $0) })
        try? worker.start()
        var elapsed: UInt64 = 0
        worker.withMutexHeld {
            worker.submit(contentsOf: 1...3)
            let start = Clock.monotonicNanos()
            for _ in 0..<5 { loop.runOnce(wait: true) }
            elapsed = Clock.monotonicNanos() - start
        }
        // Each iteration slept until the retry timer (1 ms) was due; with
        // the retry on the next iteration, the five took microseconds.
        XCTAssertGreaterThanOrEqual(elapsed, 4 * UInt64(WorkerThread<Int>.lockRetrySeconds * 1e9))
        XCTAssertGreaterThanOrEqual(worker.contended, 6, "the submit's try and at least one per iteration")
        run(loop) { results.count == 3 }
        XCTAssertEqual(results, [1, 2, 3])
        worker.stop()
        XCTAssertEqual(loop.activeWatchers, 0, "no retry left armed")
    }

    /// The finished jobs come back in the array the loop handed over the
    /// time before: after the first round trips, no array is allocated by
    /// one thread and freed by the other.
    func testFinishedJobsComeBackInTheArrayHandedOverBefore() {
        let loop = EventLoop()
        var buffers: [UInt] = []
        var results = 0
        let worker = WorkerThread<Int>(loop: loop, name: "test-worker", process: { w, batch in w.finish(batch) },
                                       completed: { jobs in
                                           jobs.withUnsafeBufferPointer { buffers.append(UInt(bitPattern: $0.baseAddress)) }
                                           results += jobs.count
                                       })
        for round in 0..<20 {
            worker.submit(contentsOf: (0..<8).map { round * 8 + $0 })
            run(loop) { results == (round + 1) * 8 }
        }
        XCTAssertEqual(results, 160)
        XCTAssertEqual(buffers.count, 20, "one hand-back per round")
        // Two buffers, in turn, from the third round on (each is allocated
        // once, by whichever thread first filled it).
        XCTAssertEqual(Set(buffers[2...]).count, 2, "\(buffers)")
        for i in 4..<buffers.count { XCTAssertEqual(buffers[i], buffers[i - 2]) }
        worker.stop()
    }

    func testIdleWorkerLetsRunReturn() {
        let loop = EventLoop()
        var done = 0
        let worker = WorkerThread<Int>(loop: loop, name: "test-worker", process: { w, batch in w.finish(batch) },
                                       completed: { done += $0.count })
        worker.submit(1)
        loop.run()      // returns once the job completed: the watcher is active only while jobs are out
        XCTAssertEqual(done, 1)
        worker.stop()
    }

    func testBatchLimitAndSeveralThreads() {
        let loop = EventLoop()
        final class Box: @unchecked Sendable {
            let lock = NSLockless()
            var largestBatch = 0
        }
        let box = Box()
        var completed = Set<Int>()
        let worker = WorkerThread<Int>(loop: loop, name: "test-pool", threads: 3, batchLimit: 2, process: { w, batch in
            box.lock.with { box.largestBatch = max(box.largestBatch, batch.count) }
            usleep(1000)
            w.finish(batch)
        }, completed: { completed.formUnion($0) })
        worker.submit(contentsOf: 0..<50)
        run(loop) { completed.count == 50 }
        XCTAssertEqual(completed, Set(0..<50))
        XCTAssertLessThanOrEqual(box.largestBatch, 2)
        worker.stop()
    }

    func testStopRunsQueuedJobsOrDiscardsThem() {
        let loop = EventLoop()
        var completed: [Int] = []
        let gate = NSLockless()
        gate.lock()     // holds the first job until the test lets go
        let worker = WorkerThread<Int>(loop: loop, name: "test-stop", batchLimit: 1, process: { w, batch in
            if batch == [0] { gate.lock(); gate.unlock() }
            w.finish(batch)
        }, completed: { completed.append(contentsOf: $0) })
        worker.submit(contentsOf: 0..<5)
        // Until the thread took job 0 and waits on the gate. The submit may
        // have found the mutex held by the starting thread: the loop hands
        // the jobs over on its retry.
        while worker.queued != 4 { loop.runOnce(); usleep(100) }
        gate.unlock()
        worker.stop(discardingQueued: true)
        // Job 0 was running and finished; some of 1..<5 may have been taken
        // before the stop; the rest were discarded. Nothing is outstanding.
        XCTAssertEqual(completed.first, 0)
        XCTAssertEqual(completed, Array(0..<completed.count))
        XCTAssertEqual(worker.outstanding, 0)
        XCTAssertEqual(loop.activeWatchers, 0)

        var all: [Int] = []
        let drain = WorkerThread<Int>(loop: loop, name: "test-drain", process: { w, b in w.finish(b) },
                                      completed: { all.append(contentsOf: $0) })
        drain.submit(contentsOf: 0..<20)
        drain.stop()
        XCTAssertEqual(all, Array(0..<20), "a plain stop runs every queued job and delivers it")
    }

    func testDroppedWorkerIsFreedAfterItsThreadsEnd() {
        let loop = EventLoop()
        weak var weakWorker: WorkerThread<Int>?
        do {
            let worker = WorkerThread<Int>(loop: loop, name: "test-free", process: { w, b in w.finish(b) }, completed: { _ in })
            weakWorker = worker
            worker.submit(1)
            run(loop) { worker.outstanding == 0 }
            worker.stop()
        }
        XCTAssertNil(weakWorker)
    }
}

/// A pthread mutex for the tests' shared boxes (no Foundation).
final class NSLockless: @unchecked Sendable {
    private let m = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    init() { m.initialize(to: pthread_mutex_t()); pthread_mutex_init(m, nil) }
    deinit { pthread_mutex_destroy(m); m.deallocate() }
    func lock() { pthread_mutex_lock(m) }
    func unlock() { pthread_mutex_unlock(m) }
    func with<T>(_ body: () -> T) -> T { lock(); defer { unlock() }; return body() }
}

final class DeferOnceTests: XCTestCase {
    func testManySchedulesRunTheWorkOnceOnALaterTurn() {
        let loop = EventLoop()
        var runs = 0
        let once = DeferOnce(loop: loop) { runs += 1 }
        for _ in 0..<10 { once.schedule() }
        XCTAssertTrue(once.isScheduled)
        XCTAssertEqual(runs, 0)
        loop.runOnce()
        XCTAssertEqual(runs, 1)
        XCTAssertFalse(once.isScheduled)
        loop.runOnce()
        XCTAssertEqual(runs, 1)
    }

    func testScheduleFromInsideTheWorkRunsAgainNextIteration() {
        let loop = EventLoop()
        var runs = 0
        var once: DeferOnce!
        once = DeferOnce(loop: loop) {
            runs += 1
            if runs == 1 { once.schedule() }
        }
        once.schedule()
        loop.runOnce()
        XCTAssertEqual(runs, 1)
        loop.runOnce()
        XCTAssertEqual(runs, 2)
        loop.runOnce()
        XCTAssertEqual(runs, 2)
        once = nil      // the work captured `once`: let the cycle go
    }

    func testAnOwnerGoneWhileARunIsPendingIsNotCalled() {
        let loop = EventLoop()
        final class Owner {
            var runs = 0
            var flush: DeferOnce!
            init(loop: EventLoop) { flush = DeferOnce(loop: loop) { [weak self] in self?.runs += 1 } }
        }
        var owner: Owner? = Owner(loop: loop)
        weak let weakOwner = owner
        owner!.flush.schedule()
        owner = nil
        XCTAssertNil(weakOwner, "a pending run does not keep its owner alive")
        loop.runOnce()
        XCTAssertEqual(loop.deferred.count, 0)
    }
}
