// MonitorScheduler: when each monitor runs, in virtual time.
//
// The rules (docs/MONITORS.md, "Scheduling"):
//  - First run of a monitor: max(last_run + interval − now, 0), plus a jitter
//    drawn uniformly from [0, interval) so agents sharing a schedule do not
//    fire together. `last_run` is this agent's last reported run from the
//    Schedule (wall clock); a last run in the future (clock skew) counts as
//    now, so the wait never exceeds two intervals.
//  - Then a fixed cadence: due += interval, independent of how long a run
//    took. If the loop fell behind by whole intervals (a suspended process),
//    the missed slots are skipped, not run in a burst.
//  - A run still going when the next is due is not started again: the slot
//    is skipped and counted as overtime (an `.overtime` action).
//  - Definition changes (`apply`): an unchanged monitor keeps its cadence; a
//    changed one is rescheduled by the first-run rule, with its own last
//    start as last run, and a run in flight finishes and is reported (it ran
//    the old definition); a removed monitor's in-flight run is returned in
//    `Changes.cancelled` so the engine cancels it and drops its result.
//
// Pure state: no watchers, no I/O. The engine arms one timer for
// `nextDueMs` and calls `takeDue()` when it fires. Loop thread only.
import MonitorModel
import Reactor

public final class MonitorScheduler {
    /// What to do now.
    public enum Action: Equatable, Sendable {
        /// Start a run with this id.
        case start(monitorID: UInt64, runID: UInt64)
        /// The slot came while `runningRunID` was still going: skipped.
        case overtime(monitorID: UInt64, runningRunID: UInt64)
    }

    /// The effect of `apply`, by numeric id.
    public struct Changes: Equatable, Sendable {
        public var added: [UInt64] = []
        public var changed: [UInt64] = []
        public var removed: [UInt64] = []
        /// In-flight runs of removed monitors: cancel them, drop their results.
        public var cancelled: [(monitorID: UInt64, runID: UInt64)] = []

        public static func == (a: Changes, b: Changes) -> Bool {
            a.added == b.added && a.changed == b.changed && a.removed == b.removed
                && a.cancelled.map(\.monitorID) == b.cancelled.map(\.monitorID)
                && a.cancelled.map(\.runID) == b.cancelled.map(\.runID)
        }
    }

    struct Entry {
        var definition: MonitorDefinition
        var dueMs: Int64
        var generation: UInt64
        var runningRunID: UInt64?
        var lastStartWallMs: Int64?
    }

    public let clock: MonitorClock
    private var random: any RandomSource
    private var entries: [UInt64: Entry] = [:]
    private var heap = DueHeap()
    private var generation: UInt64 = 0
    private var nextRunID: UInt64

    /// Slots skipped because the previous run was still going.
    public private(set) var overtimeSkips: UInt64 = 0
    /// Slots skipped because the loop fell behind by a whole interval or more.
    public private(set) var lateSkips: UInt64 = 0

    public init(clock: MonitorClock, random: any RandomSource) {
        self.clock = clock
        self.random = random
        // Unique across restarts of the agent: runs are numbered from the
        // start time in ms × 1000.
        nextRunID = UInt64(max(clock.wallMs, 1)) &* 1000
    }

    public var count: Int { entries.count }
    public var monitorIDs: [UInt64] { entries.keys.sorted() }
    public func definition(_ id: UInt64) -> MonitorDefinition? { entries[id]?.definition }
    /// Monotonic ms at which the monitor is next due.
    public func dueMs(_ id: UInt64) -> Int64? { entries[id]?.dueMs }
    public func runningRunID(_ id: UInt64) -> UInt64? { entries[id]?.runningRunID }
    public var runningCount: Int { entries.values.reduce(0) { $0 + ($1.runningRunID == nil ? 0 : 1) } }

    /// The earliest due time (monotonic ms), nil with nothing scheduled.
    public var nextDueMs: Int64? {
        dropStale()
        return heap.top?.dueMs
    }

    /// Replaces the monitor set. `lastRunMs`: numeric id → wall ms of the
    /// agent's last reported run (from the Schedule); absent = never.
    @discardableResult
    public func apply(_ definitions: [MonitorDefinition], lastRunMs: [UInt64: UInt64] = [:]) -> Changes {
        var changes = Changes()
        var incoming: [UInt64: MonitorDefinition] = [:]
        for d in definitions { incoming[d.numericID] = d }
        for id in entries.keys.sorted() where incoming[id] == nil {
            let e = entries.removeValue(forKey: id)!
            changes.removed.append(id)
            if let run = e.runningRunID { changes.cancelled.append((id, run)) }
        }
        for id in incoming.keys.sorted() {
            let d = incoming[id]!
            if var e = entries[id] {
                guard e.definition != d else { continue }
                changes.changed.append(id)
                e.definition = d
                let last = max(e.lastStartWallMs ?? 0, Int64(clamping: lastRunMs[id] ?? 0))
                schedule(&e, lastRunWallMs: last)
                entries[id] = e
            } else {
                changes.added.append(id)
                var e = Entry(definition: d, dueMs: 0, generation: 0, runningRunID: nil, lastStartWallMs: nil)
                schedule(&e, lastRunWallMs: Int64(clamping: lastRunMs[id] ?? 0))
                entries[id] = e
            }
        }
        if heap.count > 2 * entries.count + 64 { compact() }
        return changes
    }

    /// The actions due at the clock's now, in due order. Marks started runs
    /// as running until `finished`.
    public func takeDue() -> [Action] {
        let now = clock.monotonicMs
        var actions: [Action] = []
        while let top = heap.top, top.dueMs <= now {
            heap.pop()
            guard var e = entries[top.monitorID], e.generation == top.generation else { continue }
            let id = top.monitorID
            if let running = e.runningRunID {
                overtimeSkips &+= 1
                actions.append(.overtime(monitorID: id, runningRunID: running))
            } else {
                nextRunID &+= 1
                e.runningRunID = nextRunID
                e.lastStartWallMs = clock.wallMs
                actions.append(.start(monitorID: id, runID: nextRunID))
            }
            let interval = Int64(e.definition.intervalMs)
            var next = e.dueMs + interval
            if next <= now {
                let behind = (now - next) / interval + 1
                lateSkips &+= UInt64(behind)
                next += behind * interval
            }
            e.dueMs = next
            heap.push(.init(dueMs: next, monitorID: id, generation: e.generation))
            entries[id] = e
        }
        return actions
    }

    /// A run ended. Returns false when it is not the monitor's current run
    /// (the monitor was removed meanwhile): drop its result then.
    @discardableResult
    public func finished(monitorID: UInt64, runID: UInt64) -> Bool {
        guard var e = entries[monitorID], e.runningRunID == runID else { return false }
        e.runningRunID = nil
        entries[monitorID] = e
        return true
    }

    // MARK: internals

    private func schedule(_ e: inout Entry, lastRunWallMs: Int64) {
        let interval = Int64(e.definition.intervalMs)
        let nowWall = clock.wallMs
        var wait: Int64 = 0
        if lastRunWallMs > 0 {
            wait = min(max(lastRunWallMs + interval - nowWall, 0), interval)
        }
        let jitter = min(Int64(random.nextUnit() * Double(interval)), interval - 1)
        generation &+= 1
        e.generation = generation
        e.dueMs = clock.monotonicMs + wait + max(jitter, 0)
        heap.push(.init(dueMs: e.dueMs, monitorID: e.definition.numericID, generation: e.generation))
    }

    private func dropStale() {
        while let top = heap.top, entries[top.monitorID]?.generation != top.generation { heap.pop() }
    }

    private func compact() {
        heap.rebuild(entries.map { .init(dueMs: $0.value.dueMs, monitorID: $0.key, generation: $0.value.generation) })
    }
}
