// Status: the agent's health, every `status_interval_ms` into queue 1, and
// at once after each handshake. Rates, CPU and loop lag cover the time
// since the previous status. The interface list is re-read at a tick after
// rtnetlink announced a change (InterfaceChangeWatcher; at every tick where
// the host gives no netlink socket) and sent again when it changed.
//
// Thread: loop thread (the status timer and the uplink callbacks).
import IPAPipeline
import Reactor
import Wire

/// Totals at the previous status, for rates.
struct StatusBaseline {
    var at = Clock.monotonic()
    var records: UInt64 = 0
    var bytesUploaded: UInt64 = 0
    var cpu = CPUSampler()

    init() {}

    init(runtime r: AgentRuntime) {
        records = r.pipeline.counters.records
        bytesUploaded = r.uplink.bytesUploaded
    }
}

extension AgentRuntime {
    /// stopped / capturing / wrong_configuration.
    public var agentState: AgentState {
        if !configProblems.isEmpty { return .wrongConfiguration }
        return receiver.isOpen ? .capturing : .stopped
    }

    /// Every drop, by cause, with its status counter name.
    public var dropCounters: [Counter] {
        let c = pipeline.counters
        let q = uplink.queues
        return [
            Counter("drops_kernel", receiver.kernelDrops),
            Counter("drops_parse", c.parseDrops.parseTotal &+ receiver.truncated),
            Counter("drops_parse_bad_version", c.parseDrops[.badVersion]),
            Counter("drops_parse_field_count", c.parseDrops[.fieldCount]),
            Counter("drops_parse_duration", c.parseDrops[.duration]),
            Counter("drops_parse_bad_url", c.parseDrops[.badURL]),
            Counter("drops_parse_oversize", c.parseDrops[.oversize] &+ receiver.truncated),
            Counter("drops_parse_timestamp", c.parseDrops[.timestamp]),
            Counter("drops_parse_status", c.parseDrops[.status]),
            Counter("drops_parse_error_class", c.parseDrops[.errorClass]),
            Counter("drops_too_old", c.parseDrops[.tooOld]),
            Counter("drops_future", c.parseDrops[.future]),
            Counter("drops_unmatched", c.unmatched),
            Counter("drops_excluded", c.excluded),
            Counter("drops_queue1", q.dropped1),
            Counter("drops_queue2", q.dropped2),
            Counter("drops_inflight_evicted", uplink.window.evictedItems),
            Counter("drops_unencodable", uplink.counters.itemsUnencodable),
        ]
    }

    /// A Status record for now; resets the since-last-status figures.
    public func makeStatus() -> Status {
        receiver.refreshKernelDrops()
        let now = Clock.monotonic()
        let dt = max(0.001, now - statusBaseline.at)
        let c = pipeline.counters
        let uploaded = uplink.bytesUploaded
        let cpuPercent = statusBaseline.cpu.sample()
        let lag = loop.lag
        loop.resetLag()
        let u = uplink.counters
        var counters: [Counter] = [
            Counter("capture_start_ms", UInt64(max(0, captureStartMs))),
            Counter("datagrams", c.datagrams),
            Counter("records", c.records),
            Counter("records_matched", c.matched),
            Counter("ingest_rate", UInt64((Double(c.records &- statusBaseline.records) / dt).rounded())),
            Counter("bytes_uploaded", uploaded),
            Counter("send_rate", UInt64((Double(uploaded &- statusBaseline.bytesUploaded) / dt).rounded())),
        ]
        counters += dropCounters
        counters += statsdCounters
        counters += [
            Counter("queue1_depth", UInt64(uplink.queues.queue1.count)),
            Counter("queue2_depth", UInt64(uplink.queues.queue2.count)),
            Counter("inflight_batches", UInt64(uplink.window.count)),
            Counter("batches_sent", u.batchesSent),
            Counter("batches_resent", u.batchesResent),
            Counter("items_acked", uplink.window.acknowledgedItems),
            Counter("loop_lag_p99_us", lag.count > 0 ? lag.quantile(0.99) : 0),
            Counter("loop_lag_max_us", lag.count > 0 ? lag.max : 0),
            Counter("reconnects", u.reconnects),
            Counter("connect_failures", u.connectFailures),
            Counter("session_start_ms", UInt64(max(0, uplink.sessionStartMs &+ uplink.clockOffsetMs))),
            Counter("last_outage_ms", u.lastOutageMs),
            Counter("last_outage_attempts", u.lastOutageAttempts),
            Counter("collector_index", UInt64(uplink.currentHostIndex)),
            Counter("patterns_version", pipeline.patterns.version),
            Counter("rules", UInt64(pipeline.patterns.rules.count)),
            Counter("schedule_version", scheduleVersion),
        ]
        counters += uplink.spoolCounters(nowMs: Clock.wallMillis())
        if let monitors {
            counters.append(Counter("monitors", UInt64(monitors.scheduler.count)))
            counters += monitors.stats.counters
        }
        statusBaseline.at = now
        statusBaseline.records = c.records
        statusBaseline.bytesUploaded = uploaded
        return Status(timestampMs: UInt64(max(0, collectorNowMs)), state: agentState, messages: configProblems + monitorProblems,
                      cpuPermille: UInt32(min(Double(UInt32.max), max(0, cpuPercent * 10).rounded())),
                      rssBytes: ProcessLimits.residentBytes(), counters: counters)
    }

    func statusTick() {
        guard uplink.isEstablished else {
            // Nothing goes out, but the figures restart from here so the
            // first status after a reconnect covers a fresh interval.
            Log.debug("status (not connected)", ["uplink": "\(uplink.state)", "last_error": uplink.lastError ?? ""])
            return
        }
        uplink.enqueue(.record(.status(makeStatus())), priority: true)
        // Read the interfaces again only when rtnetlink announced a change
        // or the capture addresses moved (or nothing watches): an idle
        // agent then runs none of getifaddrs and the string work after it.
        guard interfacesStale || interfaceWatch?.isOpen != true || receiver.generation != lastBoundGeneration else { return }
        interfacesStale = false
        let now = interfacesNow()
        if now != lastInterfaces {
            lastInterfaces = now
            uplink.sendNow(.interfaces(Interfaces(now)))
        }
    }

    /// Sends a status now (a state change), through queue 1.
    func statusChanged() {
        guard uplink.isEstablished else { return }
        uplink.enqueue(.record(.status(makeStatus())), priority: true)
    }

    /// The host's interfaces, those we receive instrumentation on flagged.
    func interfacesNow() -> [Wire.NetworkInterface] {
        lastBoundGeneration = receiver.generation
        let bound = receiver.localAddresses.map(\.ip)
        let any = bound.contains("0.0.0.0") || bound.contains("::")
        return HostInfo.interfaces().map { i in
            var i = i
            let ips = i.addresses.map { $0.split(separator: "/").first.map(String.init) ?? $0 }
            if !bound.isEmpty && (any || ips.contains(where: bound.contains)) {
                i.flags |= Wire.NetworkInterface.flagCapturing
            }
            return i
        }
    }
}
