// ScheduleDirectory: each project's monitor definitions, parsed, as agents
// ask for them (`ScheduleRequest` every `schedule_sync_interval_ms`).
//
// Like PatternDirectory: the stored document is read and validated once per
// project and kept in memory; `PUT /api/v1/projects/{p}/monitors` is the
// only writer and updates the entry, so it is never stale. Concurrent first
// reads share one store read; past `maxProjects` entries the cache starts
// over. A stored document that no longer validates (a newer collector wrote
// it) serves an empty schedule and is counted, never a crash.
//
// Thread: loop thread.
import CollectorStore
import Monitors
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

    private let loop: EventLoop
    private let store: MeasurementStore
    private var cache: [String: Entry] = [:]
    private var loading: [String: [Completion]] = [:]
    private(set) var reads: UInt64 = 0
    /// Stored documents that failed validation when read back.
    private(set) var invalidStored: UInt64 = 0

    init(loop: EventLoop, store: MeasurementStore) {
        self.loop = loop
        self.store = store
    }

    /// The project's definitions, from memory or the store. Completes on a
    /// later iteration, never inside this call.
    func definitions(project: String, _ completion: @escaping Completion) {
        if let e = cache[project] {
            loop.defer { completion(.success(e)) }
            return
        }
        if loading[project] != nil {
            loading[project]!.append(completion)
            return
        }
        loading[project] = [completion]
        reads &+= 1
        store.monitorDefinitions(project: project) { [weak self] result in
            guard let self else { return }
            let mapped = result.map { self.entry($0) }
            if case .success(let e) = mapped { self.remember(project, e) }
            for c in self.loading.removeValue(forKey: project) ?? [] { c(mapped) }
        }
    }

    /// A replacement committed: returns the parsed entry, kept for later requests.
    @discardableResult
    func replaced(project: String, with stored: MonitorDefinitions) -> Entry {
        let e = entry(stored)
        remember(project, e)
        return e
    }

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

    private func remember(_ project: String, _ e: Entry) {
        if cache[project] == nil && cache.count >= ScheduleDirectory.maxProjects { cache.removeAll() }
        cache[project] = e
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
