// PatternDirectory: each project's filter rules as agents ask for them
// (`PatternsRequest` every `schedule_sync_interval_ms`, 10 s by default).
//
// Ten thousand agents asking every ten seconds is a thousand requests a
// second for data that changes when an operator edits it, so the rules are
// kept in memory per project after the first read. Only this process
// changes them (`PUT /api/v1/projects/{p}/patterns`), and it updates the
// entry when it does, so the cache is never stale. Concurrent first reads
// of one project share one store read. Bounded: past `maxProjects`
// entries the cache starts over.
//
// Thread: loop thread.
import CollectorStore
import Reactor
import Wire

final class PatternDirectory {
    typealias Completion = (Result<PatternSet, StoreError>) -> Void

    static let maxProjects = 10_000

    private let loop: EventLoop
    private let store: MeasurementStore
    private var cache: [String: PatternSet] = [:]
    private var loading: [String: [Completion]] = [:]
    private(set) var reads: UInt64 = 0

    init(loop: EventLoop, store: MeasurementStore) {
        self.loop = loop
        self.store = store
    }

    /// The project's current rules, from memory or the store. Completes on
    /// a later iteration either way, never inside this call.
    func rules(project: String, _ completion: @escaping Completion) {
        if let set = cache[project] {
            loop.defer { completion(.success(set)) }
            return
        }
        if loading[project] != nil {
            loading[project]!.append(completion)
            return
        }
        loading[project] = [completion]
        reads &+= 1
        store.patterns(project: project) { [weak self] result in
            guard let self else { return }
            if case .success(let set) = result { self.remember(project, set) }
            for c in self.loading.removeValue(forKey: project) ?? [] { c(result) }
        }
    }

    /// The version held in memory, or 0.
    func cachedVersion(project: String) -> UInt64 { cache[project].map { UInt64(max(0, $0.version)) } ?? 0 }

    /// A replacement committed: later requests get it without a read.
    func replaced(project: String, with set: PatternSet) {
        remember(project, set)
    }

    private func remember(_ project: String, _ set: PatternSet) {
        if cache[project] == nil && cache.count >= PatternDirectory.maxProjects { cache.removeAll() }
        cache[project] = set
    }

    /// The rules as the agent's `Patterns` record carries them.
    static func record(_ set: PatternSet) -> Patterns {
        Patterns(version: UInt64(max(0, set.version)), rules: set.patterns.map {
            PatternRule(method: $0.method, hostGlob: $0.host, pathGlob: $0.path, monitor: $0.monitor, check: $0.check)
        })
    }
}
