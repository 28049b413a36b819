// WorkerThread: work that cannot be cut into loop slices (an fsync, a
// getaddrinfo that blocks for seconds) runs on helper threads, and only
// its hand-off touches the loop — the way Redis's bio threads take fsync
// off its event loop.
//
// Hand-off. The loop appends jobs to `incoming` under one mutex and
// signals; a worker takes up to `batchLimit` of them, runs `process` with
// that batch, and hands finished jobs back with `finish`, which appends
// them to `finished` and wakes the loop through an AsyncWatcher (ev_async,
// the loop's one thread-safe entry). `completed` then runs on the loop
// thread, in the order the jobs were finished, always on a later iteration
// than the submit.
//
// The loop never waits for that mutex. A worker holds it only for a few
// appends, but a worker thread can lose its core while holding it — the
// store's writer runs at nice 10, behind every other thread on its CPU —
// and a loop blocked in pthread_mutex_lock then waited the scheduler's
// slices out (iterations of 2–5 ms with no CPU used, `async store
// completions` or `deferred store hand-off` alone in them). So the loop
// only tries the lock: when a worker holds it, jobs to submit wait in a
// loop-side list and finished jobs wait where they are, and both are tried
// again `lockRetrySeconds` later (`contended` counts the retries). The
// retry is a timer, not the next iteration: the loop sleeps in epoll_wait
// meanwhile. Retried at once, a loop thread with a real-time priority that
// shares its core with the worker spun without letting the worker run and
// release the lock, until the kernel's real-time throttling stopped it for
// 20–50 ms.
//
// Memory. Finished jobs come back in the array the loop handed over the
// time before (`finished` and `delivered` swap), so neither thread frees
// an array the other allocated: freeing another thread's allocation takes
// that thread's allocator lock, which a worker at nice 10 can hold while
// it waits for its core — the loop then waited as long.
//
// Lifetime. Threads start lazily, on the first submit (an agent that never
// resolves a name never pays for a thread), or with `start()`. The async
// watcher is active only while jobs are outstanding (submitted and not yet
// completed), so an idle worker keeps no `run()` alive. `stop()` lets the
// queued jobs run (or discards them) and joins every thread.
//
// Threading contract: `submit`, `start`, `stop` and the `completed`
// callback belong to the loop thread; `process` runs on a worker thread and
// may call `finish` only. A worker thread touches no Reactor object.
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import CSystem

public final class WorkerThread<Job>: @unchecked Sendable {
    public typealias Process = (_ worker: WorkerThread<Job>, _ batch: [Job]) -> Void
    public typealias Completed = (_ jobs: [Job]) -> Void

    public let name: String
    public let threadCount: Int
    public let batchLimit: Int
    public let nice: Int32
    private let process: Process
    private let completed: Completed

    // Shared with the worker threads, under `mutex`.
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let wakeWorkers = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    private var incoming = RingBuffer<Job>(capacity: 16, overflow: .grow)
    private var finished: [Job] = []
    private var stopping = false
    private var discardQueued = false

    // Loop thread only.
    private var wake: AsyncWatcher!
    /// Submitted while a worker held the mutex: handed over, in order, on a
    /// later try (`retry`).
    private var unsent: [Job] = []
    /// Swapped with `finished` under the mutex: the finished jobs, handed
    /// to `completed`, then emptied with its capacity kept.
    private var delivered: [Job] = []
    private var retry: TimerWatcher!
    /// How long the loop leaves the mutex to a worker that holds it before
    /// trying again (libev waits at least a millisecond in epoll_wait).
    public static var lockRetrySeconds: Double { 0.001 }
    /// Times the loop found the mutex held and tried again on a later
    /// iteration instead of waiting for it.
    public private(set) var contended: UInt64 = 0
    private var threads: [pthread_t] = []
    /// Submitted and not yet handed to `completed` (or discarded).
    public private(set) var outstanding = 0

    /// `threads` workers, each taking at most `batchLimit` queued jobs at a
    /// time; `nice` above 0 lets the loop thread win a shared core.
    /// `label` names the completions in slow-iteration reports
    /// (IterationProfile); by default "NAME completions".
    public init(loop: EventLoop, name: String, threads: Int = 1, batchLimit: Int = .max, nice: Int32 = 0,
                label: String? = nil, process: @escaping Process, completed: @escaping Completed) {
        precondition(threads >= 1 && batchLimit >= 1)
        self.name = name
        self.threadCount = threads
        self.batchLimit = batchLimit
        self.nice = nice
        self.process = process
        self.completed = completed
        mutex.initialize(to: pthread_mutex_t())
        pthread_mutex_init(mutex, nil)
        wakeWorkers.initialize(to: pthread_cond_t())
        pthread_cond_init(wakeWorkers, nil)
        // The watcher holds the worker weakly: the loop's retain on an
        // active watcher must not keep a dropped worker alive.
        wake = AsyncWatcher(loop: loop, label: label ?? "\(name) completions") { [weak self] _ in self?.deliver() }
        retry = TimerWatcher(loop: loop, label: "\(name) lock retry") { [weak self] _ in
            self?.handOverUnsent()
            self?.deliver()
        }
    }

    deinit {
        pthread_cond_destroy(wakeWorkers)
        pthread_mutex_destroy(mutex)
        wakeWorkers.deallocate()
        mutex.deallocate()
    }

    public var isStarted: Bool { !threads.isEmpty }

    /// Starts the threads now rather than on the first submit.
    public func start() throws(SyscallError) {
        guard threads.isEmpty else { return }
        for _ in 0..<threadCount {
            // Each thread holds the worker until it exits.
            let entry = Unmanaged.passRetained(ThreadEntry { [self] in runThread() }).toOpaque()
            var thread = pthread_t()
            let rc = pthread_create(&thread, nil, { raw in
                Unmanaged<ThreadEntry>.fromOpaque(raw!).takeRetainedValue().body()
                return nil
            }, entry)
            guard rc == 0 else {
                Unmanaged<ThreadEntry>.fromOpaque(entry).release()
                if threads.isEmpty { throw SyscallError(call: "pthread_create(\(name))", errno: rc) }
                Log.warn("\(name): started \(threads.count) of \(threadCount) threads: \(SyscallError(call: "pthread_create", errno: rc))")
                return
            }
            threads.append(thread)
        }
    }

    // MARK: loop thread

    public func submit(_ job: Job) {
        submit(contentsOf: CollectionOfOne(job))
    }

    /// Queues jobs in order. When the threads cannot be started the jobs
    /// stay queued and the error is logged; `start()` reports it to callers
    /// that must know.
    public func submit<S: Sequence>(contentsOf jobs: S) where S.Element == Job {
        if threads.isEmpty {
            do { try start() } catch { Log.error("\(name): \(error)") }
        }
        let batch = Array(jobs)
        guard !batch.isEmpty else { return }
        // Active before a worker can see the jobs: ev_async_start clears a
        // send that came first (`w->sent = 0`), which would lose the wake-up.
        outstanding += batch.count
        wake.start()
        unsent.append(contentsOf: batch)
        handOverUnsent()
    }

    /// Moves `unsent` to the workers if the mutex is free now; otherwise
    /// tries again once the retry is due (`tryLock`).
    private func handOverUnsent() {
        guard !unsent.isEmpty else { return }
        guard tryLock() else { return }
        for job in unsent { _ = incoming.append(job) }
        // Several jobs for several threads: wake them all, not one.
        if unsent.count > 1 && threadCount > 1 { pthread_cond_broadcast(wakeWorkers) } else { pthread_cond_signal(wakeWorkers) }
        pthread_mutex_unlock(mutex)
        unsent.removeAll(keepingCapacity: true)
    }

    /// Jobs queued and not yet taken by a thread.
    public var queued: Int {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return incoming.count
    }

    /// Ends the threads after the queued jobs ran (or, with
    /// `discardingQueued`, after the jobs being run now), and joins them.
    /// Jobs finished before the threads exited are still delivered, later,
    /// on the loop.
    public func stop(discardingQueued: Bool = false) {
        pthread_mutex_lock(mutex)
        stopping = true
        var discarded = 0
        if discardingQueued {
            discarded = incoming.count + unsent.count
            incoming.removeAll()
        } else {
            for job in unsent { _ = incoming.append(job) }
        }
        unsent.removeAll()
        pthread_cond_broadcast(wakeWorkers)
        pthread_mutex_unlock(mutex)
        for thread in threads { pthread_join(thread, nil) }
        threads = []
        outstanding -= discarded
        retry.stop()
        deliver()
    }

    /// The loop's only way to the mutex: takes it if it is free, and
    /// otherwise counts the try and arms the retry.
    private func tryLock() -> Bool {
        if pthread_mutex_trylock(mutex) == 0 { return true }
        contended &+= 1
        if !retry.isActive { retry.start(after: Self.lockRetrySeconds) }
        return false
    }

    private func deliver() {
        guard tryLock() else { return }
        swap(&finished, &delivered)
        pthread_mutex_unlock(mutex)
        // Out of `delivered` while `completed` runs: a completion that
        // stops the worker delivers again, into an empty array.
        var jobs: [Job] = []
        swap(&jobs, &delivered)
        outstanding -= jobs.count
        if outstanding == 0 && wake.isActive { wake.stop() }
        if !jobs.isEmpty { completed(jobs) }
        jobs.removeAll(keepingCapacity: true)
        if delivered.capacity < jobs.capacity { delivered = jobs }
    }

    // MARK: worker threads

    /// Hands finished jobs back to the loop. Worker threads only.
    public func finish(_ jobs: [Job]) {
        guard !jobs.isEmpty else { return }
        pthread_mutex_lock(mutex)
        finished.append(contentsOf: jobs)
        pthread_mutex_unlock(mutex)
        wake.send()
    }

    public func finish(_ job: Job) { finish([job]) }

    /// Holds the hand-off's mutex around `body`, as a worker between two
    /// jobs would (tests: the loop must not wait for it).
    func withMutexHeld(_ body: () -> Void) {
        pthread_mutex_lock(mutex)
        body()
        pthread_mutex_unlock(mutex)
    }

    private func runThread() {
        csys_set_thread_name(name)
        if nice != 0 {
            do { try Syscalls.setThreadNice(nice) } catch {
                Log.warn("\(name): cannot change the thread's priority: \(error)")
            }
        }
        var batch: [Job] = []
        while true {
            pthread_mutex_lock(mutex)
            while incoming.isEmpty && !stopping { pthread_cond_wait(wakeWorkers, mutex) }
            if incoming.isEmpty {       // stopping, and nothing left to run
                pthread_mutex_unlock(mutex)
                return
            }
            while batch.count < batchLimit, let job = incoming.popFirst() { batch.append(job) }
            pthread_mutex_unlock(mutex)
            process(self, batch)
            batch.removeAll(keepingCapacity: true)
        }
    }
}

/// A thread's body, handed to pthread_create as its argument (a C function
/// pointer cannot capture the worker's generic parameter).
private final class ThreadEntry {
    let body: () -> Void
    init(_ body: @escaping () -> Void) { self.body = body }
}
