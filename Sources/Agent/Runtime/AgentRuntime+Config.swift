// Configuration changes while running: remote control (capture start/stop,
// config update) and SIGHUP. One discipline for all of them:
//
//   validate every key (schema, live keys only, cross-key checks)
//     → prepare what can fail (binding new UDP sockets)
//       → commit everything, restarting only the parts whose keys changed.
//
// Any error keeps the running configuration untouched, answers with one
// message per key, and puts the agent in `wrong_configuration` with those
// messages until a later change succeeds. Secret values never appear in a
// message (ConfigError redacts them). A remote change passes the agent's
// own policy first (RemotePolicy: `remote_config`, the remote maxima,
// loopback-only `ipa_bind`; the policy keys and `access_key` never), and a
// refused key is answered like an invalid one.
//
// Thread: loop thread (control requests from the uplink, SIGHUP).
import ConfigFile
import Reactor
import Wire

extension AgentRuntime {
    // MARK: - Remote control

    func handleControl(_ request: ControlRequest) {
        let response: ControlResponse
        switch request.kind {
        case .captureStart, .captureStop:
            let on = request.kind == .captureStart
            let errors = remoteUpdate([(key: "capture", value: on ? "on" : "off")], what: "remote \(request.kind)")
            response = answer(request, errors)
        case .configUpdate:
            let errors = remoteUpdate(request.values.map { (key: $0.key, value: $0.value) }, what: "remote config update")
            response = answer(request, errors)
        default:
            response = ControlResponse(requestID: request.requestID, ok: false,
                                       message: "unsupported control request \(request.kind)")
        }
        if !uplink.enqueue(.record(.controlResponse(response)), priority: true) {
            Log.warn("control answer dropped: queue 1 full", ["request": "\(request.requestID)"])
        }
    }

    /// A change asked for by the collector: the agent's policy decides
    /// first, key by key; then the update discipline.
    func remoteUpdate(_ pairs: [(key: String, value: String)], what: String) -> [ConfigError] {
        let refused = settings.remote.refusals(pairs)
        guard refused.isEmpty else {
            // With the other keys' own mistakes, so one answer names them all.
            let keys = Set(refused.compactMap(\.key))
            let errors = refused + config.validate(pairs.filter { !keys.contains($0.key) }, requireLive: true)
            reject(errors, what: what, messages: errors.map(\.message))
            return errors
        }
        return update(pairs, origin: .update, what: what)
    }

    private func answer(_ request: ControlRequest, _ errors: [ConfigError]) -> ControlResponse {
        guard !errors.isEmpty else { return ControlResponse(requestID: request.requestID, ok: true) }
        let perKey = errors.map { KeyValue($0.key ?? "", $0.detail) }
        return ControlResponse(requestID: request.requestID, ok: false, errors: perKey,
                               message: "configuration not changed: " + errors.map(\.message).joined(separator: "; "))
    }

    // MARK: - SIGHUP

    /// Re-reads the configuration file with the same layers. A file that
    /// does not load keeps the running configuration.
    public func reload() {
        notify?.reloading()
        defer { notify?.ready() }
        guard source.path != nil else {
            Log.info("SIGHUP: no configuration file to reload (started without --config)")
            return
        }
        let fresh: Configuration
        do throws(ConfigErrors) {
            fresh = try AgentSchema.schema.load(file: source.path, environment: source.environment,
                                                overrides: source.overrides, checks: AgentSettings.checks)
        } catch {
            reject(error.errors, what: "SIGHUP reload", messages: error.errors.map(\.description))
            return
        }
        let r = config.reloading(from: fresh)
        for key in r.needsRestart {
            Log.warn("SIGHUP: key changed in the file but takes effect only at restart", ["key": key])
        }
        let errors = commit(r.configuration, changed: r.applied, what: "SIGHUP reload")
        if errors.isEmpty && r.applied.isEmpty {
            Log.info("SIGHUP: configuration reloaded, nothing changed")
        }
    }

    // MARK: - The update discipline

    /// Validates and applies `pairs` (live keys only). Returns the errors;
    /// empty when applied.
    @discardableResult
    public func update(_ pairs: [(key: String, value: String)], origin: ConfigOrigin, what: String) -> [ConfigError] {
        var candidate = config
        let changed: [String]
        do throws(ConfigErrors) {
            changed = try candidate.apply(pairs, origin: origin, requireLive: true)
        } catch {
            reject(error.errors, what: what, messages: error.errors.map(\.description))
            return error.errors
        }
        return commit(candidate, changed: changed, what: what)
    }

    /// Applies a candidate configuration whose `changed` keys differ from
    /// the running one: all of it, or (on any error) none of it.
    @discardableResult
    func commit(_ candidate: Configuration, changed: [String], what: String) -> [ConfigError] {
        let next: AgentSettings
        do throws(ConfigErrors) {
            next = try AgentSettings(candidate)
        } catch {
            reject(error.errors, what: what, messages: error.errors.map(\.description))
            return error.errors
        }
        // The one step that can fail: (re)binding instrumentation sockets.
        let wantCapture = mode == .run && next.capture && !draining
        if wantCapture && (!receiver.isOpen || receiver.settings != next.ingest) {
            do {
                let wasOpen = receiver.isOpen
                try receiver.open(next.ingest)
                if !wasOpen { captureStartMs = Clock.wallMillis() }
            } catch {
                let key = changed.contains("ipa_bind") && !changed.contains("ipa_port") ? "ipa_bind" : "ipa_port"
                let e = ConfigError(location: .update, key: key,
                                    problem: .invalidValue(expected: "an address this host can receive on (\(error))",
                                                           got: candidate.value(key)?.description))
                reject([e], what: what, messages: [e.message])
                return [e]
            }
        } else if !wantCapture && receiver.isOpen {
            receiver.close()
            captureStartMs = 0
        }
        if let e = commitStatsD(next, capture: wantCapture, candidate: candidate, changed: changed) {
            reject([e], what: what, messages: [e.message])
            return [e]
        }

        let before = settings
        let reportBefore = AgentRuntime.effectiveConfig(config)
        config = candidate
        settings = next
        Log.level = next.logLevel
        Log.format = next.logFormat
        uplink.update(next.uplink)
        if next.agentName != before.agentName || next.groups != before.groups {
            uplink.updateHello(AgentRuntime.hello(next, instance: instance))
        }
        if next.groups != before.groups { regroupMonitors() }
        else if next.monitorPolicy != before.monitorPolicy { monitors?.setPolicy(next.monitorPolicy) }
        if next.forwardRawEvents != before.forwardRawEvents { setForwarding(next.forwardRawEvents) }
        if next.aggregationIntervalMs != before.aggregationIntervalMs {
            // The open window closes early under the old length; the next
            // starts on the new grid.
            flushWindow()
            pipeline.setAggregationInterval(Int64(next.aggregationIntervalMs))
            statsd.pipeline.setAggregationInterval(Int64(next.aggregationIntervalMs))
            openWindowStart = 0
            scheduleWindow()
        }
        if next.statusIntervalMs != before.statusIntervalMs { restartStatusTimer() }
        if next.syncIntervalMs != before.syncIntervalMs { restartSyncTimer() }

        let wasWrong = !configProblems.isEmpty
        configProblems = []
        if !changed.isEmpty {
            Log.info("configuration applied", ["by": what, "changed": changed.joined(separator: ",")])
        }
        if wasWrong || changed.contains("capture") { statusChanged() }
        let report = AgentRuntime.effectiveConfig(candidate)
        if report != reportBefore { uplink.sendNow(.effectiveConfig(report)) }
        return []
    }

    // MARK: - Reporting the effective configuration

    /// Longest value reported, and the most text one report carries: a
    /// value past either is left out (the collector then shows its own
    /// view of that key), so the record stays far below the wire's limits.
    static let maxReportedValueBytes = 1024
    static let maxReportedBytes = 32 * 1024

    /// The running configuration as the collector shows it: every
    /// non-secret key, its value and where the value came from. Secret keys
    /// (the access key) are never included.
    static func effectiveConfig(_ config: Configuration) -> EffectiveConfig {
        var out: [ConfigEntry] = []
        var total = 0
        for e in config.entries(redactingSecrets: true) where !e.secret {
            guard let value = e.value, value.utf8.count <= maxReportedValueBytes else { continue }
            let origin: ConfigValueOrigin, detail: String
            switch e.origin {
            case .file(let path, let line)?: origin = .file; detail = "\(path):\(line)"
            case .environment(let v)?: origin = .environment; detail = v
            case .commandLine?: origin = .commandLine; detail = ""
            case .update?, .project?, .agent?: origin = .collector; detail = ""
            case .default?, nil: origin = .default; detail = ""
            }
            let size = e.key.utf8.count + value.utf8.count + detail.utf8.count
            guard total + size <= maxReportedBytes, detail.utf8.count <= maxReportedValueBytes else { continue }
            total += size
            out.append(ConfigEntry(key: e.key, value: value, origin: origin, detail: detail))
        }
        return EffectiveConfig(out)
    }

    /// Keeps the running configuration and enters `wrong_configuration`.
    func reject(_ errors: [ConfigError], what: String, messages: [String]) {
        configProblems = messages
        for m in messages { Log.warn("configuration rejected; keeping the running one", ["by": what, "error": m]) }
        statusChanged()
    }
}
