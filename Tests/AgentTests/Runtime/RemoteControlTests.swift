// Remote control and reloads: capture stop/start without losing queued
// data, validated atomic config updates that restart only what changed
// (the UDP port is re-bound), per-key errors and wrong_configuration for an
// invalid set, secrets never echoed, SIGHUP with the same rules.
import XCTest
import ConfigFile
import Reactor
import Wire
import MonitorRunners
@testable import Agent

final class RemoteControlTests: XCTestCase {
    let all = [rule("", "*", "*", "m", "c")]

    func waitStatus(_ h: AgentHarness, _ state: AgentState, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertTrue(h.run(until: { h.collector.lastStatus?.state == state }), "state \(state), last \(String(describing: h.collector.lastStatus?.state))",
                      file: file, line: line)
    }

    func testCaptureStopAndStartKeepQueuedData() throws {
        let h = try AgentHarness()
        try h.start()
        XCTAssertTrue(h.run(until: h.connected))
        h.install(all, version: 1)
        waitStatus(h, .capturing)
        h.send(["0\tGET\th\t/a\t1", "0\tGET\th\t/a\t2"])

        let stop = h.collector.control(.captureStop)
        XCTAssertTrue(h.run(until: { h.collector.response(to: stop) != nil }))
        XCTAssertEqual(h.collector.response(to: stop)?.ok, true)
        waitStatus(h, .stopped)
        XCTAssertFalse(h.runtime.receiver.isOpen)
        XCTAssertEqual(h.collector.lastStatus?.counters.first { $0.name == "capture_start_ms" }?.value, 0)
        // Not received while stopped…
        h.udp.send("0\tGET\th\t/a\t3")
        h.spin(0.1)
        XCTAssertEqual(h.runtime.pipeline.counters.datagrams, 2)
        // …but what was counted before still goes out.
        h.runtime.flushOpenWindow()
        XCTAssertTrue(h.run(until: { h.collector.totalCount == 2 }))

        let start = h.collector.control(.captureStart)
        XCTAssertTrue(h.run(until: { h.collector.response(to: start)?.ok == true }))
        waitStatus(h, .capturing)
        h.send(["0\tGET\th\t/a\t4"])
        XCTAssertEqual(h.runtime.pipeline.counters.records, 3)
    }

    func testValidUpdateAppliesAtomicallyAndRebindsOnlyWhatChanged() throws {
        let h = try AgentHarness()
        try h.start()
        XCTAssertTrue(h.run(until: h.connected))
        h.install(all, version: 1)
        let newPort = freeUDPPort()
        let sessions = h.collector.connections
        let id = h.collector.control(.configUpdate, [KeyValue("ipa_port", "\(newPort)"),
                                                     KeyValue("aggregation_interval_ms", "2s"),
                                                     KeyValue("net_send_queue2_size", "77")])
        XCTAssertTrue(h.run(until: { h.collector.response(to: id) != nil }))
        XCTAssertEqual(h.collector.response(to: id), ControlResponse(requestID: id, ok: true))
        XCTAssertEqual(h.runtime.receiver.localAddresses.map(\.port), [newPort])
        XCTAssertEqual(h.runtime.pipeline.aggregator.intervalMs, 2000)
        XCTAssertEqual(h.runtime.uplink.queues.queue2.capacityLimit, 77)
        XCTAssertEqual(h.runtime.config.origin("ipa_port"), .update)
        XCTAssertEqual(h.collector.connections, sessions, "the session was not restarted")
        // The new port receives; the old one is closed.
        UDPClient(port: newPort).send("0\tGET\th\t/a\t1")
        XCTAssertTrue(h.run(until: { h.runtime.pipeline.counters.records == 1 }))
        h.udp.send("0\tGET\th\t/a\t1")
        h.spin(0.1)
        XCTAssertEqual(h.runtime.pipeline.counters.records, 1)
    }

    func testInvalidUpdateKeepsTheRunningConfigAndAnswersPerKey() throws {
        let h = try AgentHarness()
        try h.start()
        XCTAssertTrue(h.run(until: h.connected))
        waitStatus(h, .capturing)
        let port = h.ipaPort
        let id = h.collector.control(.configUpdate, [KeyValue("ipa_port", "70000"),
                                                     KeyValue("status_interval_ms", "300"),
                                                     KeyValue("bogus_key", "1"),
                                                     KeyValue("server_host", "10.0.0.1")])
        XCTAssertTrue(h.run(until: { h.collector.response(to: id) != nil }))
        let r = h.collector.response(to: id)!
        XCTAssertFalse(r.ok)
        let byKey = Dictionary(uniqueKeysWithValues: r.errors.map { ($0.key, $0.value) })
        XCTAssertEqual(Set(byKey.keys), ["ipa_port", "bogus_key", "server_host"])
        XCTAssertTrue(byKey["ipa_port"]!.contains("1...65535"), byKey["ipa_port"]!)
        XCTAssertTrue(byKey["server_host"]!.contains("remote_config"), byKey["server_host"]!)
        XCTAssertEqual(h.runtime.settings.statusIntervalMs, 200, "the valid key was not applied either")
        XCTAssertEqual(h.runtime.receiver.localAddresses.map(\.port), [port])
        waitStatus(h, .wrongConfiguration)
        XCTAssertEqual(h.collector.lastStatus?.messages.count, 3)
        // Still ingesting under the running configuration.
        h.send(["0\tGET\th\t/a\t1"])
        // A later valid update clears the state.
        let ok = h.collector.control(.configUpdate, [KeyValue("status_interval_ms", "250")])
        XCTAssertTrue(h.run(until: { h.collector.response(to: ok)?.ok == true }))
        waitStatus(h, .capturing)
        XCTAssertEqual(h.runtime.settings.statusIntervalMs, 250)
    }

    func testAccessKeyCannotBeChangedRemotelyAndIsNeverEchoed() throws {
        let h = try AgentHarness()
        try h.start()
        XCTAssertTrue(h.run(until: h.connected))
        let secret = TestCollector.makeKey(project: "other").text
        let id = h.collector.control(.configUpdate, [KeyValue("access_key", secret)])
        XCTAssertTrue(h.run(until: { h.collector.response(to: id) != nil }))
        let r = h.collector.response(to: id)!
        XCTAssertFalse(r.ok)
        XCTAssertEqual(r.errors.map(\.key), ["access_key"])
        let everything = r.message + r.errors.map(\.value).joined() + (h.collector.lastStatus?.messages.joined() ?? "")
        XCTAssertFalse(everything.contains(secret))
        XCTAssertFalse(everything.contains(h.collector.key.text))
        waitStatus(h, .wrongConfiguration)
        for s in h.collector.statuses { XCTAssertFalse(s.messages.joined().contains(String(secret.suffix(43)))) }
    }

    func testUpdateThatCannotBindIsRefusedAndNothingChanges() throws {
        let h = try AgentHarness()
        try h.start()
        XCTAssertTrue(h.run(until: h.connected))
        let busy = try UDPSocket.loopback(port: 0)
        defer { busy.close() }
        let id = h.collector.control(.configUpdate, [KeyValue("ipa_port", "\(busy.localAddress.port)"),
                                                     KeyValue("forward_raw_events", "on")])
        XCTAssertTrue(h.run(until: { h.collector.response(to: id) != nil }))
        let r = h.collector.response(to: id)!
        XCTAssertFalse(r.ok)
        XCTAssertEqual(r.errors.map(\.key), ["ipa_port"])
        XCTAssertTrue(r.errors[0].value.contains("EADDRINUSE"), r.errors[0].value)
        XCTAssertEqual(h.runtime.receiver.localAddresses.map(\.port), [h.ipaPort])
        XCTAssertFalse(h.runtime.settings.forwardRawEvents)
    }

    func testSIGHUPReloadAppliesLiveKeysAndABrokenFileKeepsTheOldConfig() throws {
        let h = try AgentHarness()
        let path = "/tmp/vigil-agent-test-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).conf"
        defer { unlink(path) }
        func write(_ text: String) {
            let f = fopen(path, "w")!
            fputs(text, f)
            fclose(f)
        }
        func text(_ changes: [String: String] = [:]) -> String {
            h.lines.merging(changes) { $1 }.sorted { $0.key < $1.key }.map { "\($0.key) = \($0.value)" }.joined(separator: "\n") + "\n"
        }
        let base = text()
        write(base)
        let source = ConfigSource(path: path, environment: [:], overrides: [])
        let (config, settings) = try source.load()
        let runtime = AgentRuntime(loop: h.loop, source: source, config: config, settings: settings)
        defer { runtime.exit(0) }
        try runtime.start()
        XCTAssertTrue(h.run(until: { runtime.uplink.isEstablished }))

        write(text(["forward_raw_events": "on", "server_port": "1"]))
        runtime.reload()
        XCTAssertTrue(runtime.settings.forwardRawEvents, "live key applied")
        XCTAssertEqual(runtime.settings.uplink.port, h.collector.port, "server_port needs a restart: kept")
        XCTAssertTrue(runtime.configProblems.isEmpty)

        // The policy keys are the file's to change: applied to the running engine at once.
        XCTAssertEqual(runtime.monitors?.options.policy.exec, .disabled)
        write(text(["forward_raw_events": "on", "exec_monitors": "/opt/monitors", "monitor_env": "API_TOKEN"]))
        runtime.reload()
        XCTAssertEqual(runtime.monitors?.options.policy, .init(exec: .directories(["/opt/monitors"]), environment: ["API_TOKEN"]))
        write(text(["forward_raw_events": "on"]))
        runtime.reload()
        XCTAssertEqual(runtime.monitors?.options.policy.exec, .disabled)

        write(base + "capture = sometimes\nthis is not a line\n")
        runtime.reload()
        XCTAssertTrue(runtime.settings.forwardRawEvents, "the old configuration stays")
        XCTAssertTrue(runtime.receiver.isOpen)
        XCTAssertEqual(runtime.agentState, .wrongConfiguration)
        XCTAssertEqual(runtime.configProblems.count, 2)
        XCTAssertTrue(runtime.configProblems[0].hasPrefix("\(path):"), runtime.configProblems[0])
        XCTAssertTrue(h.run(until: { h.collector.lastStatus?.state == .wrongConfiguration }))

        write(base)
        runtime.reload()
        XCTAssertEqual(runtime.agentState, .capturing)
        XCTAssertFalse(runtime.settings.forwardRawEvents)
    }

    func testRenameReintroducesTheAgentAfterItsQueuesAreWritten() throws {
        // Name and groups are the agent's to give away: this one does.
        let h = try AgentHarness(["remote_config": (AgentSchema.defaultRemoteConfig + ["agent_name", "groups"]).joined(separator: ",")])
        try h.start()
        XCTAssertTrue(h.run(until: h.connected))
        h.install(all, version: 1)
        h.send(["0\tGET\th\t/a\t1"])
        let id = h.collector.control(.configUpdate, [KeyValue("agent_name", "renamed"), KeyValue("groups", "edge, eu")])
        XCTAssertTrue(h.run(until: { h.collector.hellos.count == 2 && h.runtime.uplink.isEstablished }))
        XCTAssertEqual(h.collector.response(to: id)?.ok, true, "answered before the session was replaced")
        let hello = h.collector.hellos[1]
        XCTAssertEqual(hello.name, "renamed")
        XCTAssertEqual(hello.groups, ["edge", "eu"])
        XCTAssertEqual(hello.agentID, HostInfo.agentID(name: "renamed"))
        XCTAssertEqual(hello.instance, h.collector.hellos[0].instance, "same process, same sequence space")
        XCTAssertEqual(h.runtime.uplink.counters.reconnects, 0, "an intended reconnect is not a lost session")
        h.runtime.flushOpenWindow()
        XCTAssertTrue(h.run(until: { h.collector.totalCount == 1 }))
    }

    func testPolicyRefusesRemoteKeysPerKeyAndChangesNothing() throws {
        let h = try AgentHarness(["exec_monitors": "/opt/monitors"])
        try h.start()
        XCTAssertTrue(h.run(until: h.connected))
        waitStatus(h, .capturing)
        let id = h.collector.control(.configUpdate, [KeyValue("groups", "edge"), KeyValue("agent_name", "x"),
                                                     KeyValue("exec_monitors", "/"), KeyValue("monitor_env", "HOME"),
                                                     KeyValue("remote_config", "groups"), KeyValue("ipa_bind", "0.0.0.0"),
                                                     KeyValue("net_send_queue1_size", "1000000"),
                                                     KeyValue("ipa_rcvbuf", "256M"), KeyValue("status_interval_ms", "300")])
        XCTAssertTrue(h.run(until: { h.collector.response(to: id) != nil }))
        let r = h.collector.response(to: id)!
        XCTAssertFalse(r.ok)
        let byKey = Dictionary(uniqueKeysWithValues: r.errors.map { ($0.key, $0.value) })
        XCTAssertEqual(Set(byKey.keys), ["groups", "agent_name", "exec_monitors", "monitor_env", "remote_config", "ipa_bind",
                                         "net_send_queue1_size", "ipa_rcvbuf"])
        XCTAssertTrue(byKey["groups"]!.contains("not in its remote_config"), byKey["groups"]!)
        for k in ["exec_monitors", "monitor_env", "remote_config"] {
            XCTAssertTrue(byKey[k]!.contains("never remotely"), byKey[k]!)
        }
        XCTAssertTrue(byKey["ipa_bind"]!.contains("only loopback addresses"), byKey["ipa_bind"]!)
        XCTAssertTrue(byKey["net_send_queue1_size"]!.contains("at most 8192"), byKey["net_send_queue1_size"]!)
        XCTAssertTrue(byKey["ipa_rcvbuf"]!.contains("at most 16777216"), byKey["ipa_rcvbuf"]!)
        XCTAssertEqual(h.runtime.settings.groups, ["default"])
        XCTAssertEqual(h.runtime.settings.monitorPolicy.exec, .directories(["/opt/monitors"]))
        XCTAssertEqual(h.runtime.settings.statusIntervalMs, 200, "nothing applied")
        XCTAssertEqual(h.runtime.receiver.localAddresses.map(\.ip), ["127.0.0.1"])
        // Capture stop is a remote change of `capture`: refused where the agent does not allow it.
        let strict = try AgentHarness(["remote_config": "log_level"])
        try strict.start()
        XCTAssertTrue(strict.run(until: strict.connected))
        let stop = strict.collector.control(.captureStop)
        XCTAssertTrue(strict.run(until: { strict.collector.response(to: stop) != nil }))
        XCTAssertEqual(strict.collector.response(to: stop)?.ok, false)
        XCTAssertTrue(strict.runtime.receiver.isOpen)
        // Within the limits, loopback and listed: applied.
        let ok = h.collector.control(.configUpdate, [KeyValue("ipa_bind", "127.0.0.1, ::1"), KeyValue("net_send_queue1_size", "8192")])
        XCTAssertTrue(h.run(until: { h.collector.response(to: ok) != nil }))
        XCTAssertEqual(h.collector.response(to: ok)?.ok, true, "\(String(describing: h.collector.response(to: ok)))")
        XCTAssertEqual(Set(h.runtime.receiver.localAddresses.map(\.ip)), ["127.0.0.1", "::1"])
    }

    func testPolicyKeysReportTheirLocalOrigin() throws {
        let h = try AgentHarness(["monitor_env": "API_TOKEN"])
        try h.start()
        XCTAssertTrue(h.run(until: { !h.collector.effectiveConfigs.isEmpty }))
        let entries = h.collector.effectiveConfigs.last!.entries
        let env = entries.first { $0.key == "monitor_env" }
        XCTAssertEqual(env?.value, "API_TOKEN")
        XCTAssertEqual(env?.origin, .file)
        XCTAssertEqual(entries.first { $0.key == "exec_monitors" }?.origin, .default)
        XCTAssertEqual(entries.first { $0.key == "exec_monitors" }?.value, "off")
    }

    func testInterfacesGoUpAtConnectWithTheCapturingOneFlagged() throws {
        let h = try AgentHarness()
        try h.start()
        XCTAssertTrue(h.run(until: { !h.collector.interfaces.isEmpty }))
        let lo = h.collector.interfaces[0].interfaces.first { $0.name == "lo" }
        XCTAssertNotNil(lo)
        XCTAssertEqual(lo!.flags & Wire.NetworkInterface.flagCapturing, Wire.NetworkInterface.flagCapturing)
        XCTAssertTrue(lo!.addresses.contains("127.0.0.1/8"))
        XCTAssertEqual(h.collector.hellos[0].agentID, HostInfo.agentID(name: HostInfo.hostname()))
        XCTAssertEqual(h.collector.hellos[0].bootID.count, 16)
    }

    func testStatusCarriesEveryFigureTheIssueLists() throws {
        let h = try AgentHarness()
        try h.start()
        XCTAssertTrue(h.run(until: { h.collector.statuses.count >= 2 }))
        let names = Set(h.collector.lastStatus!.counters.map(\.name))
        for n in ["capture_start_ms", "ingest_rate", "bytes_uploaded", "send_rate", "drops_kernel", "drops_parse",
                  "drops_unmatched", "drops_queue1", "drops_queue2", "queue1_depth", "queue2_depth",
                  "loop_lag_p99_us", "loop_lag_max_us", "reconnects", "collector_index"] {
            XCTAssertTrue(names.contains(n), n)
        }
        XCTAssertGreaterThan(h.collector.lastStatus!.rssBytes, 0)
        XCTAssertGreaterThan(h.collector.counter("bytes_uploaded") ?? 0, 0)
        XCTAssertEqual(h.collector.counter("collector_index"), 1)
    }
}
