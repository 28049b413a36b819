// ScheduleDirectory: each project's monitor definitions, parsed, as agents
// ask for them (`ScheduleRequest` every `schedule_sync_interval_ms`).
//
// Like PatternDirectory: the stored document is read and validated once per
// project and kept in memory; `PUT /api/v1/projects/{p}/monitors` on this
// collector updates the entry, and a change made elsewhere drops or
// replaces it when the change log shows it (ChangeFollower; ProjectCache:
// shared first reads, bounded). A stored document that no longer validates (a newer collector wrote
// it) serves an empty schedule and is counted, never a crash.
//
// Thread: loop thread.
import CollectorStore
import MonitorModel
import Reactor
import Wire

final class ScheduleDirectory {
    /// One project's definitions at a version.
    struct Entry {
        var version: UInt64
        var definitions: [MonitorDefinition]
    }

    typealias Completion = (Result<Entry, StoreError>) -> Void

    static let maxProjects = 10_000

    private var cache: ProjectCache<Entry>!
    var reads: UInt64 { cache.reads }
    /// Stored documents that failed validation when read back.
    private(set) var invalidStored: UInt64 = 0

    init(loop: EventLoop, store: MeasurementStore) {
        cache = ProjectCache(loop: loop, maxProjects: ScheduleDirectory.maxProjects) { [weak self] project, done in
            store.monitorDefinitions(project: project) { result in
                guard let self else { return }   // torn down while the read was in flight
                done(result.map { self.entry($0) })
            }
        }
    }

    /// The project's definitions, from memory or the store. Completes on a
    /// later iteration, never inside this call.
    func definitions(project: String, _ completion: @escaping Completion) {
        cache.get(project, completion)
    }

    /// A replacement committed: returns the parsed entry, kept for later requests.
    @discardableResult
    func replaced(project: String, with stored: MonitorDefinitions) -> Entry {
        let e = entry(stored)
        cache.put(project, e)
        return e
    }

    /// The version held in memory, or nil.
    func cachedVersion(project: String) -> UInt64? { cache.cached(project)?.version }

    /// Changed elsewhere: the next request reads the store.
    func forget(project: String) { cache.forget(project) }
    func forgetAll() { cache.forgetAll() }

    /// Parses a stored document (the normalised array PUT wrote).
    func entry(_ stored: MonitorDefinitions) -> Entry {
        let version = UInt64(max(0, stored.version))
        switch MonitorDocument.validate(json: Array("{\"monitors\":\(stored.json)}".utf8)) {
        case .success(let defs):
            return Entry(version: version, definitions: defs)
        case .failure(let e):
            invalidStored &+= 1
            Log.warn("stored monitor definitions do not validate", ["version": "\(version)", "error": "\(e)"])
            return Entry(version: version, definitions: [])
        }
    }

    /// The monitors an agent of `groups` runs (an agent without groups is in `default`).
    static func select(_ defs: [MonitorDefinition], groups: [String]) -> [MonitorDefinition] {
        let mine = Set(groups.isEmpty ? ["default"] : groups)
        return defs.filter { $0.groups.contains(where: mine.contains) }
    }

    /// The Schedule record(s) for one agent; `lastRuns` maps the stored
    /// monitor name (the numeric id as text) to the agent's last run in ms.
    static func records(_ e: Entry, groups: [String], lastRuns: [String: Int64]) -> [Schedule] {
        let mine = select(e.definitions, groups: groups)
        var last: [UInt64: UInt64] = [:]
        for d in mine {
            if let t = lastRuns[String(d.numericID)], t > 0 { last[d.numericID] = UInt64(t) }
        }
        return ScheduleCodec.records(version: e.version, definitions: mine, lastRunMs: last)
    }
}
