// PatternDirectory: each project's filter rules as agents ask for them
// (`PatternsRequest` every `schedule_sync_interval_ms`, 10 s by default).
//
// Ten thousand agents asking every ten seconds is a thousand requests a
// second for data that changes when an operator edits it, so the rules are
// kept in memory per project after the first read. This process updates
// the entry when it changes them (`PUT /api/v1/projects/{p}/patterns`); a
// change made elsewhere drops or replaces it when the change log shows it
// (ChangeFollower; ProjectCache: shared first reads, bounded).
//
// Thread: loop thread.
import CollectorStore
import Reactor
import Wire

final class PatternDirectory {
    typealias Completion = (Result<PatternSet, StoreError>) -> Void

    static let maxProjects = 10_000

    private let cache: ProjectCache<PatternSet>
    var reads: UInt64 { cache.reads }

    init(loop: EventLoop, store: MeasurementStore) {
        cache = ProjectCache(loop: loop, maxProjects: PatternDirectory.maxProjects) { project, done in
            store.patterns(project: project, completion: done)
        }
    }

    /// The project's current rules, from memory or the store. Completes on
    /// a later iteration either way, never inside this call.
    func rules(project: String, _ completion: @escaping Completion) {
        cache.get(project, completion)
    }

    /// The version held in memory, or 0.
    func cachedVersion(project: String) -> UInt64 { cache.cached(project).map { UInt64(max(0, $0.version)) } ?? 0 }

    /// A replacement committed: later requests get it without a read.
    func replaced(project: String, with set: PatternSet) {
        cache.put(project, set)
    }

    /// Changed elsewhere: the next request reads the store.
    func forget(project: String) { cache.forget(project) }
    func forgetAll() { cache.forgetAll() }

    /// The rules as the agent's `Patterns` record carries them.
    static func record(_ set: PatternSet) -> Patterns {
        Patterns(version: UInt64(max(0, set.version)), rules: set.patterns.map {
            PatternRule(method: $0.method, hostGlob: $0.host, pathGlob: $0.path, monitor: $0.monitor, check: $0.check,
                        exclude: $0.exclude)
        })
    }
}
