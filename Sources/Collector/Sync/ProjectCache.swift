// ProjectCache: one value per project, read from the store once and kept in
// memory, for data that agents ask for every sync interval but that changes
// only when an operator edits it: through this process (which then calls
// `put`) or through another collector or process on the same database
// (ChangeFollower sees it in the change log within a poll and calls
// `forget`). Concurrent first reads of one project share one store read;
// completions always run on a later iteration, never inside `get`. A read
// that was in flight when its project was forgotten answers its waiters but
// is not kept (it may predate the change). Bounded: past `maxProjects`
// entries the cache starts over.
//
// Thread: loop thread.
import CollectorStore
import Reactor

final class ProjectCache<Value> {
    typealias Completion = (Result<Value, StoreError>) -> Void
    /// Reads one project's value from the store.
    typealias Load = (_ project: String, _ done: @escaping Completion) -> Void

    let maxProjects: Int
    private let loop: EventLoop
    private let load: Load
    private var cache: [String: Value] = [:]
    private var loading: [String: [Completion]] = [:]
    /// Store reads made (a joined read counts once).
    private(set) var reads: UInt64 = 0
    /// Bumped by every `forget`: a read started before one is not kept.
    private var generation: UInt64 = 0

    init(loop: EventLoop, maxProjects: Int = 10_000, load: @escaping Load) {
        self.loop = loop
        self.maxProjects = maxProjects
        self.load = load
    }

    /// The project's value, from memory or the store.
    func get(_ project: String, _ completion: @escaping Completion) {
        if let v = cache[project] {
            loop.defer { completion(.success(v)) }
            return
        }
        if loading[project] != nil {
            loading[project]!.append(completion)
            return
        }
        loading[project] = [completion]
        reads &+= 1
        let started = generation
        load(project) { [weak self] result in
            guard let self else { return }
            if case .success(let v) = result, self.generation == started { self.put(project, v) }
            for c in self.loading.removeValue(forKey: project) ?? [] { c(result) }
        }
    }

    /// The value held in memory, if any.
    func cached(_ project: String) -> Value? { cache[project] }

    /// A new value committed by this process.
    func put(_ project: String, _ value: Value) {
        if cache[project] == nil && cache.count >= maxProjects { cache.removeAll() }
        cache[project] = value
    }

    /// Changed elsewhere: the next `get` reads the store again.
    func forget(_ project: String) {
        generation &+= 1
        cache.removeValue(forKey: project)
    }

    /// Everything may have changed (a gap in the change log).
    func forgetAll() {
        generation &+= 1
        cache.removeAll()
    }
}
