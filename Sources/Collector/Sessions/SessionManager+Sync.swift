// SessionManager+Sync: keeping connected agents in step with what the
// operator set — filter rules and monitor schedules, answered when an agent
// asks and pushed when they change (a slice of sessions per iteration), and
// stored configuration overrides sent to an agent when it connects and
// project-level changes pushed to the project's connected agents; and the
// same for changes other collectors or processes made, as the change log
// shows them (ChangeFollower, docs/COLLECTOR.md "Changes between collectors").
//
// Thread: loop thread.
import CollectorStore
import ConfigFile
import Reactor
import Wire

extension SessionManager {
    // MARK: filter rules

    func patternsRequested(by s: AgentSession, have: UInt64) {
        patterns.rules(project: s.projectName) { [weak self] result in
            switch result {
            case .success(let set): self?.sendPatterns(set, to: s, have: have)
            case .failure(.notFound): self?.sendPatterns(PatternSet(version: 0, updated: 0, patterns: []), to: s, have: have)
            case .failure(let e): self?.storeTrouble("reading filter rules", e)
            }
        }
    }

    private func sendPatterns(_ set: PatternSet, to s: AgentSession, have: UInt64?) {
        let version = UInt64(max(0, set.version))
        if let have, have == version {
            stats.patternsUnchanged &+= 1
            s.send(.patternsUnchanged(PatternsUnchanged(version: version)))
        } else {
            stats.patternsSent &+= 1
            s.send(.patterns(PatternDirectory.record(set)))
        }
    }

    /// A new rule set committed: every connected agent of the project gets
    /// it now, a slice of sessions per loop iteration.
    public func pushPatterns(project: String, set: PatternSet) {
        patterns.replaced(project: project, with: set)
        let targets = agents.values.filter { $0.projectName == project }
        pushSlice(targets[...], set)
    }

    private func pushSlice(_ targets: ArraySlice<AgentSession>, _ set: PatternSet) {
        for s in targets.prefix(SessionManager.pushSlice) {
            stats.patternsPushed &+= 1
            sendPatterns(set, to: s, have: nil)
        }
        let rest = targets.dropFirst(SessionManager.pushSlice)
        if !rest.isEmpty { loop.defer { [weak self] in self?.pushSlice(rest, set) } }
    }

    // MARK: monitor schedules

    /// `ScheduleRequest(have)`: "unchanged" when the agent holds the
    /// current version, else the monitors of its groups with its last run
    /// of each (from the stored runs). `answered` gets what the answer was
    /// made of (nil where a read failed or no schedule was sent), so a
    /// request that waited for this one can be answered from it
    /// (SessionManager+Limits.swift).
    func scheduleRequested(by s: AgentSession, have: UInt64?,
                           answered: @escaping (ScheduleDirectory.Entry?, [String: Int64]?) -> Void = { _, _ in }) {
        schedules.definitions(project: s.projectName) { [weak self] result in
            switch result {
            case .success(let e): self?.sendSchedule(e, to: s, have: have, answered: answered)
            case .failure(.notFound):
                self?.sendSchedule(ScheduleDirectory.Entry(version: 0, definitions: []), to: s, have: have, answered: answered)
            case .failure(let e):
                self?.storeTrouble("reading monitor definitions", e)
                answered(nil, nil)
            }
        }
    }

    private func sendSchedule(_ e: ScheduleDirectory.Entry, to s: AgentSession, have: UInt64?,
                              answered: @escaping (ScheduleDirectory.Entry?, [String: Int64]?) -> Void = { _, _ in }) {
        guard s.phase == .established else { return answered(e, nil) }
        if let have, have == e.version {
            stats.scheduleAnswers &+= 1
            s.send(.scheduleUnchanged(ScheduleUnchanged(version: e.version)))
            return answered(e, nil)
        }
        guard let agent = s.agentID else { return answered(e, nil) }
        store.lastMonitorRuns(project: s.projectName, agent: agent) { [weak self] result in
            guard let self, s.phase == .established else { return answered(e, nil) }
            let last: [String: Int64]
            switch result {
            case .success(let l): last = l
            case .failure(let err):
                // A schedule without last runs is still right, only less even.
                self.storeTrouble("reading last monitor runs", err)
                last = [:]
            }
            self.sendScheduleRecords(e, to: s, lastRuns: last)
            answered(e, last)
        }
    }

    /// One schedule, as records, to one session.
    func sendScheduleRecords(_ e: ScheduleDirectory.Entry, to s: AgentSession, lastRuns: [String: Int64]) {
        stats.schedulesSent &+= 1
        for record in ScheduleDirectory.records(e, groups: s.groups, lastRuns: lastRuns) {
            guard s.send(.schedule(record)) else { return }
        }
    }

    /// New definitions committed: every connected agent of the project
    /// gets its schedule now, a slice of sessions per loop iteration.
    public func pushSchedules(project: String, stored: MonitorDefinitions) {
        let e = schedules.replaced(project: project, with: stored)
        let targets = agents.values.filter { $0.projectName == project }
        pushScheduleSlice(targets[...], e)
    }

    private func pushScheduleSlice(_ targets: ArraySlice<AgentSession>, _ e: ScheduleDirectory.Entry) {
        for s in targets.prefix(SessionManager.pushSlice) {
            stats.schedulesPushed &+= 1
            sendSchedule(e, to: s, have: nil)
        }
        let rest = targets.dropFirst(SessionManager.pushSlice)
        if !rest.isEmpty { loop.defer { [weak self] in self?.pushScheduleSlice(rest, e) } }
    }

    // MARK: configuration convergence

    /// After a connect (on the session's first EffectiveConfig, so the
    /// agent's own policy is known): the stored overrides (project, then
    /// agent) that the agent's `remote_config` lets the collector change go
    /// to it as one configuration update, so it converges. Overrides its
    /// policy refuses are left out (logged), not sent to fail the rest.
    func converge(_ s: AgentSession) {
        guard let id = s.agentID else { return }
        let project = s.projectName
        store.configOverrides(project: project, agent: nil) { [weak self] p in
            self?.store.configOverrides(project: project, agent: id) { [weak self] a in
                guard let self, s.phase == .established, case .success(let pv) = p, case .success(let av) = a else { return }
                let merged = pv.merging(av) { $1 }
                let values = self.allowedByPolicy(AgentConfigView.remotelySettable(merged), of: s)
                guard !values.isEmpty else { return }
                self.control.send(to: s, kind: .configUpdate, values: values, timeout: 30,
                                  audit: AuditContext(actor: "collector", action: "config.converge", target: id,
                                                      detail: values.map(\.key).joined(separator: ","))) { _ in }
            }
        }
    }
}

extension SessionManager {
    /// `values` without the keys the agent's reported `remote_config`
    /// refuses; the left-out keys are logged once per push.
    func allowedByPolicy(_ values: [KeyValue], of s: AgentSession) -> [KeyValue] {
        guard let allowed = AgentConfigView.remotelyAllowed(s.reportedConfig) else { return values }
        let refused = values.filter { !allowed.contains($0.key) }
        if !refused.isEmpty {
            Log.info("stored overrides not sent: the agent's remote_config does not allow them", [
                "agent": s.agentID ?? "", "keys": refused.map(\.key).joined(separator: ","),
            ])
        }
        return values.filter { allowed.contains($0.key) }
    }

    /// A project-level configuration change: each connected agent of
    /// `project` gets the keys it does not override itself, as one
    /// configuration update audited as `config.converge` by `collector`
    /// (an agent that refuses or misses it converges at its next connect).
    /// Returns the ids of the agents it goes to, in id order.
    func pushProjectConfig(project: String, values: [KeyValue]) -> [String] {
        let targets = agents.values.filter { $0.projectName == project && $0.phase == .established }
            .sorted { ($0.agentID ?? "") < ($1.agentID ?? "") }
        for s in targets {
            guard let id = s.agentID else { continue }
            store.configOverrides(project: project, agent: id) { [weak self] own in
                guard let self, s.phase == .established, case .success(let av) = own else { return }
                let update = self.allowedByPolicy(values.filter { av[$0.key] == nil }, of: s)
                guard !update.isEmpty else { return }
                self.control.send(to: s, kind: .configUpdate, values: update, timeout: 30,
                                  audit: AuditContext(actor: "collector", action: "config.converge", target: id,
                                                      detail: update.map(\.key).joined(separator: ","))) { _ in }
            }
        }
        return targets.compactMap(\.agentID)
    }
}

// MARK: changes made elsewhere (ChangeFollower)

extension SessionManager {
    /// Changes other processes committed, in seq order (this collector's own
    /// were pushed when made and never arrive here). Several changes of one
    /// thing in one read are applied once. What each does:
    /// - `patterns`, `monitors`: the project's cached entry goes; when agents
    ///   of the project are connected here, the stored value is read and, if
    ///   its version is not the one cached, pushed to them (the push paths
    ///   above: a slice of sessions per iteration);
    /// - `config`: the named keys go, as one configuration update, to the
    ///   connected agents they affect — for a project change each agent that
    ///   does not override the key itself, for an agent change that agent —
    ///   with the value now in force (agent, else project, else the default)
    ///   — except values the agent accepted already through the relayed
    ///   update that this change stores (ControlRelay);
    /// - `key`: the negative cache forgets the project (a new key works at
    ///   once; revoked keys end sessions through KeyRevocations);
    /// - `identity`: nothing is cached (identities are read at each handshake);
    ///   but an agent with a session here whose row is gone was forgotten
    ///   through another collector: its session closes, without its end
    ///   writing the agent back (an identity reset keeps the row and the session).
    func applyChanges(_ changes: [ChangeRecord]) {
        var patternProjects: [String] = [], monitorProjects: [String] = []
        var configs: [String: Set<String>] = [:]   // "project\0agent" → keys
        var identities: [String] = []
        for c in changes {
            switch c.kind {
            case .patterns: if !patternProjects.contains(c.project) { patternProjects.append(c.project) }
            case .monitors: if !monitorProjects.contains(c.project) { monitorProjects.append(c.project) }
            case .config:
                configs[c.project + "\u{0}" + c.agent, default: []].formUnion(c.detail.split(separator: ",").map(String.init))
            case .key: keys.forgetUnknown(project: c.project)
            case .identity: if agents[c.agent] != nil && !identities.contains(c.agent) { identities.append(c.agent) }
            }
        }
        for id in identities { closeIfForgotten(agent: id) }
        let connected = Set(agents.values.map(\.projectName))
        for p in patternProjects { refreshPatterns(project: p, connected: connected.contains(p)) }
        for p in monitorProjects { refreshSchedules(project: p, connected: connected.contains(p)) }
        for (k, keys) in configs.sorted(by: { $0.key < $1.key }) {
            let parts = k.split(separator: "\u{0}", omittingEmptySubsequences: false).map(String.init)
            pushChangedConfig(project: parts[0], agent: parts[1], keys: keys.sorted())
        }
    }

    /// The agent's session closes when its row is gone (forgotten elsewhere).
    private func closeIfForgotten(agent id: String) {
        store.agent(id: id) { [weak self] result in
            guard let self, case .failure(.notFound) = result, let s = self.agents[id] else { return }
            Log.info("session closed: the agent was forgotten through another collector", ["agent": id])
            self.ownership?.sessionForgotten(agent: id)
            s.close(.local, error: ErrorRecord(code: .rejected, message: "the agent was forgotten on the collector"))
        }
    }

    /// A gap in the change log: every cache goes, and every connected
    /// project's rules and schedules are read and pushed where their version
    /// changed, and every connected agent converges again.
    func reloadAfterChangeGap() {
        keys.forgetAllUnknown()
        patterns.forgetAll()
        schedules.forgetAll()
        let connected = Set(agents.values.map(\.projectName))
        for p in connected.sorted() {
            refreshPatterns(project: p, connected: true, force: true)
            refreshSchedules(project: p, connected: true, force: true)
        }
        convergeSlice(agents.values.filter { $0.phase == .established }.sorted { ($0.agentID ?? "") < ($1.agentID ?? "") }[...])
    }

    private func convergeSlice(_ targets: ArraySlice<AgentSession>) {
        for s in targets.prefix(SessionManager.pushSlice) where s.phase == .established { converge(s) }
        let rest = targets.dropFirst(SessionManager.pushSlice)
        if !rest.isEmpty { loop.defer { [weak self] in self?.convergeSlice(rest) } }
    }

    /// `force`: push even when the version read is the one cached (after a
    /// gap the cache was emptied, so "cached" says nothing).
    private func refreshPatterns(project: String, connected: Bool, force: Bool = false) {
        let had: UInt64? = force ? nil : (patterns.cachedVersion(project: project) == 0 ? nil : patterns.cachedVersion(project: project))
        patterns.forget(project: project)
        guard connected else { return }
        store.patterns(project: project) { [weak self] result in
            guard let self else { return }
            switch result {
            case .success(let set):
                if let had, had == UInt64(max(0, set.version)) { return self.patterns.replaced(project: project, with: set) }
                self.pushPatterns(project: project, set: set)
            case .failure(.notFound): break
            case .failure(let e): self.storeTrouble("reading filter rules changed elsewhere", e)
            }
        }
    }

    private func refreshSchedules(project: String, connected: Bool, force: Bool = false) {
        let had = force ? nil : schedules.cachedVersion(project: project)
        schedules.forget(project: project)
        guard connected else { return }
        store.monitorDefinitions(project: project) { [weak self] result in
            guard let self else { return }
            switch result {
            case .success(let stored):
                if let had, had == UInt64(max(0, stored.version)) { self.schedules.replaced(project: project, with: stored); return }
                self.pushSchedules(project: project, stored: stored)
            case .failure(.notFound): break
            case .failure(let e): self.storeTrouble("reading monitor definitions changed elsewhere", e)
            }
        }
    }

    /// Overrides of `keys` changed elsewhere for `project` (agent "") or one
    /// agent: the affected agents connected here get the values now in force.
    private func pushChangedConfig(project: String, agent: String, keys: [String]) {
        if agent.isEmpty {
            guard agents.values.contains(where: { $0.projectName == project && $0.phase == .established }) else { return }
        } else {
            guard let s = agents[agent], s.phase == .established, s.projectName == project else { return }
        }
        store.configOverrides(project: project, agent: nil) { [weak self] result in
            guard let self else { return }
            let projectValues: [String: String]
            switch result {
            case .success(let v): projectValues = v
            case .failure(.notFound): return
            case .failure(let e): return self.storeTrouble("reading overrides changed elsewhere", e)
            }
            func inForce(_ k: String, own: [String: String]) -> String? {
                own[k] ?? projectValues[k] ?? AgentSchema.schema.key(k)?.defaultText
            }
            if agent.isEmpty {
                // pushProjectConfig leaves out the keys an agent overrides itself.
                let values = keys.compactMap { k in inForce(k, own: [:]).map { KeyValue(k, $0) } }
                guard !values.isEmpty else { return }
                _ = self.pushProjectConfig(project: project, values: values)
                return
            }
            self.store.configOverrides(project: project, agent: agent) { [weak self] own in
                guard let self, case .success(let agentValues) = own,
                      let s = self.agents[agent], s.phase == .established else { return }
                // Values it accepted already, through a relayed update whose stored change this is, are not sent again.
                let applied = self.ownership?.takeRelayedConfig(agent: agent, keys: keys) ?? [:]
                let changed = keys.compactMap { k in inForce(k, own: agentValues).flatMap { v in applied[k] == v ? nil : KeyValue(k, v) } }
                let values = self.allowedByPolicy(changed, of: s)
                guard !values.isEmpty else { return }
                self.control.send(to: s, kind: .configUpdate, values: values, timeout: 30,
                                  audit: AuditContext(actor: "collector", action: "config.converge", target: agent,
                                                      detail: values.map(\.key).joined(separator: ","))) { _ in }
            }
        }
    }
}
