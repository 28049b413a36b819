// The real vigil-agent binary against the test collector on loopback:
// command line and exit codes, records over UDP arriving as aggregates,
// SIGTERM draining then exit 0, SIGHUP with a broken file keeping the old
// configuration, replay's exit codes.
import Foundation
import XCTest
import Reactor
import Wire
@testable import Agent

final class AgentProcessTests: XCTestCase {
    func testVersionHelpAndUsageErrors() throws {
        let v = try AgentProcess.run(["version"])
        XCTAssertEqual(v.code, 0)
        XCTAssertEqual(v.stdout, "vigil-agent \(AgentVersion.current)\n")
        let help = try AgentProcess.run(["--help"])
        XCTAssertEqual(help.code, 0)
        for c in ["run [--config FILE] [--set key=value]", "check-config [--config FILE]",
                  "replay FILE [--config FILE] [--set key=value]", "version", "tcp_so_timeout"] {
            XCTAssertTrue(help.stdout.contains(c), c)
        }
        XCTAssertTrue(help.stdout.contains("2 usage or configuration error"), help.stdout)
        let bad = try AgentProcess.run(["rnu"])
        XCTAssertEqual(bad.code, 2)
        XCTAssertTrue(bad.stderr.contains("did you mean 'run'"), bad.stderr)
    }

    func testVersionOptionCommandHelpAndCheckConfigSet() throws {
        let v = try AgentProcess.run(["--version"])
        XCTAssertEqual(v.code, 0, v.stderr)
        XCTAssertEqual(v.stdout, "vigil-agent \(AgentVersion.current)\n")
        // A command's help is that command's, not the global one.
        let help = try AgentProcess.run(["check-config", "--help"])
        XCTAssertEqual(help.code, 0)
        XCTAssertTrue(help.stdout.contains("vigil-agent check-config [--config FILE] [--set key=value]"), help.stdout)
        XCTAssertFalse(help.stdout.contains("vigil-agent replay") || help.stdout.contains("vigil-agent run"), help.stdout)
        XCTAssertFalse(help.stdout.contains("tcp_so_timeout"), help.stdout)
        XCTAssertTrue(help.stdout.contains("exit status"), help.stdout)
        let key = TestCollector.makeKey().text
        let ok = try AgentProcess.run(["check-config", "--set", "aggregation_interval_ms=5000", "--set", "access_key=\(key)"])
        XCTAssertEqual(ok.code, 0, ok.stderr)
        XCTAssertTrue(ok.stdout.contains("aggregation_interval_ms = 5000  # set"), ok.stdout)
        let bad = try AgentProcess.run(["check-config", "--set", "aggregation_interval_ms=5", "--set", "access_key=\(key)"])
        XCTAssertEqual(bad.code, 2, "a configuration error exits 2, as the collector's")
        XCTAssertTrue(bad.stderr.contains("--set: key 'aggregation_interval_ms'"), bad.stderr)
    }

    func testStateDirIsCreatedPrivateAndABadOneStopsTheStart() throws {
        let key = TestCollector.makeKey().text
        let base = "/tmp/vigil-state-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        defer { try? FileManager.default.removeItem(atPath: base) }
        // A path through a regular file cannot be a directory: exit 1, the path named.
        XCTAssertTrue(FileManager.default.createFile(atPath: base, contents: Data("x".utf8)))
        let bad = try AgentProcess.run(["run", "--set", "access_key=\(key)", "--set", "state_dir=\(base)/state"])
        XCTAssertEqual(bad.code, 1, bad.stderr)
        XCTAssertTrue(bad.stderr.contains("state_dir \(base)/state: cannot create \(base)/state"), bad.stderr)
        unlink(base)
        // Missing components are created 0700; an existing one others can read is made 0700.
        mkdir(base, 0o755)
        let agent = try AgentProcess(["run", "--set", "access_key=\(key)", "--set", "state_dir=\(base)/a/b",
                                      "--set", "server_port=1", "--set", "capture=off"])
        defer { agent.signal(SIGKILL) }
        for _ in 0..<200 where !FileManager.default.fileExists(atPath: "\(base)/a/b") { usleep(20_000) }
        var st = stat()
        XCTAssertEqual(stat("\(base)/a/b", &st), 0)
        XCTAssertEqual(st.st_mode & 0o777, 0o700)
        XCTAssertEqual(stat("\(base)/a", &st), 0)
        XCTAssertEqual(st.st_mode & 0o777, 0o700)
        chmod(base, 0o755)
        let again = try AgentProcess(["run", "--set", "access_key=\(key)", "--set", "state_dir=\(base)",
                                      "--set", "server_port=1", "--set", "capture=off"])
        defer { again.signal(SIGKILL) }
        for _ in 0..<200 where !again.stderr.contains("made private") { usleep(20_000) }
        XCTAssertTrue(again.stderr.contains("state_dir was readable by others; made private (0700)"), again.stderr)
        XCTAssertEqual(stat(base, &st), 0)
        XCTAssertEqual(st.st_mode & 0o777, 0o700)
    }

    func testTheAgentKeyIsMadeOnceKeptPrivateAndABadOneStopsTheStart() throws {
        let key = TestCollector.makeKey().text
        let base = "/tmp/vigil-agentkey-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        defer { try? FileManager.default.removeItem(atPath: base) }
        let file = base + "/agent_key"
        func start() throws -> AgentProcess {
            try AgentProcess(["run", "--set", "access_key=\(key)", "--set", "state_dir=\(base)", "--set", "server_port=1",
                              "--set", "capture=off", "--set", "log_level=info"])
        }
        // First start: made, 0600, its public key logged.
        let first = try start()
        for _ in 0..<200 where !first.stderr.contains("agent key created") { usleep(20_000) }
        first.signal(SIGKILL)
        XCTAssertTrue(first.stderr.contains("agent key created path=\(file)"), first.stderr)
        var st = stat()
        XCTAssertEqual(stat(file, &st), 0)
        XCTAssertEqual(st.st_mode & 0o777, 0o600)
        let made = try StaticKeyFile.load(path: file)
        XCTAssertTrue(first.stderr.contains("public_key=\(made.publicText)"), first.stderr)
        // Later starts read the same key.
        let second = try start()
        for _ in 0..<200 where !second.stderr.contains("agent key read") { usleep(20_000) }
        second.signal(SIGKILL)
        XCTAssertTrue(second.stderr.contains("public_key=\(made.publicText)"), second.stderr)
        // Readable by others: refused, the file named, exit 1.
        chmod(file, 0o644)
        var r = try AgentProcess.run(["run", "--set", "access_key=\(key)", "--set", "state_dir=\(base)", "--set", "capture=off"])
        XCTAssertEqual(r.code, 1, r.stderr)
        XCTAssertTrue(r.stderr.contains("key file \(file) is readable by group or others (mode 0644)"), r.stderr)
        // Corrupt: refused, the file named, and left alone.
        XCTAssertTrue(FileManager.default.createFile(atPath: file, contents: Data("not a key\n".utf8)))
        chmod(file, 0o600)      // createFile replaces the file, with 0644
        r = try AgentProcess.run(["run", "--set", "access_key=\(key)", "--set", "state_dir=\(base)", "--set", "capture=off"])
        XCTAssertEqual(r.code, 1, r.stderr)
        XCTAssertTrue(r.stderr.contains("key file \(file) is corrupt"), r.stderr)
        XCTAssertEqual(try String(contentsOfFile: file, encoding: .utf8), "not a key\n")
        // Unreadable (a directory in its place).
        unlink(file)
        mkdir(file, 0o700)
        r = try AgentProcess.run(["run", "--set", "access_key=\(key)", "--set", "state_dir=\(base)", "--set", "capture=off"])
        XCTAssertEqual(r.code, 1, r.stderr)
        XCTAssertTrue(r.stderr.contains("key file \(file)"), r.stderr)
    }

    func testCheckConfigNamesFileLineKeyAndExpectation() throws {
        let path = writeConfig([:], extra: "access_key = acme.short\nserver_port = 99999\nsever_host = x\n")
        defer { unlink(path) }
        let r = try AgentProcess.run(["check-config", "--config", path])
        XCTAssertEqual(r.code, 2)
        XCTAssertTrue(r.stderr.contains("\(path):3: key 'server_port': expected an integer 1...65535, got \"99999\""), r.stderr)
        XCTAssertTrue(r.stderr.contains("\(path):4: unknown key 'sever_host' (did you mean 'server_host'?)"), r.stderr)
        // The access key's form is checked in the same run as the rest: every error at once.
        XCTAssertTrue(r.stderr.contains("\(path):2: key 'access_key': expected an access key"), r.stderr)
        XCTAssertTrue(r.stderr.contains("configuration invalid (3 errors)"), r.stderr)
        let key = TestCollector.makeKey().text
        let ok = try AgentProcess.run(["check-config"], environment: ["VIGIL_ACCESS_KEY": key, "VIGIL_IPA_PORT": "5000"])
        XCTAssertEqual(ok.code, 0, ok.stderr)
        XCTAssertTrue(ok.stdout.contains("access_key = <redacted>  # env VIGIL_ACCESS_KEY"), ok.stdout)
        XCTAssertTrue(ok.stdout.contains("ipa_port = 5000  # env VIGIL_IPA_PORT"), ok.stdout)
        XCTAssertFalse(ok.stdout.contains(key))
        // A bad access key is caught before any socket is opened.
        let badKey = try AgentProcess.run(["run", "--set", "access_key=nodot"])
        XCTAssertEqual(badKey.code, 2)
        XCTAssertTrue(badKey.stderr.contains("--set: key 'access_key': expected an access key"), badKey.stderr)
        XCTAssertFalse(badKey.stderr.contains("nodot"), "secret values are not echoed")
    }

    /// Starts the test collector and an agent process configured for it.
    func startAgent(_ h: AgentHarness, extra: [String: String] = [:]) throws -> (AgentProcess, String) {
        var lines = h.lines
        lines["log_level"] = "info"
        for (k, v) in extra { lines[k] = v }
        let path = writeConfig(lines)
        let p = try AgentProcess(["run", "--config", path])
        XCTAssertTrue(h.run(until: { !h.collector.established.isEmpty && h.collector.patternsRequests > 0 }), p.stderr)
        return (p, path)
    }

    func testRecordsArriveAsAggregatesAndSIGTERMDrainsThenExitsZero() throws {
        let h = try AgentHarness()
        h.collector.patterns = Patterns(version: 1, rules: [rule("GET", "*.example.com", "/v1/*", "api", "v1")])
        let (agent, path) = try startAgent(h)
        defer { unlink(path) }
        XCTAssertTrue(h.run(until: { h.collector.statuses.contains { $0.counters.contains { $0.name == "rules" && $0.value == 1 } } }),
                      agent.stderr)
        for i in 0..<100 { h.udp.send("0\tGET\tapi.example.com\t/v1/items/\(i)?q=\(i)\t\(i % 10 + 1)") }
        h.udp.send("0\tGET\tother.org\t/v1/x\t1")
        h.udp.send("not a record")
        // Wait until the agent has ingested them (its status says so), then stop it.
        XCTAssertTrue(h.run(until: { (h.collector.counter("records") ?? 0) >= 101 }), agent.stderr)
        XCTAssertEqual(h.collector.counter("drops_unmatched"), 1)
        XCTAssertEqual(h.collector.counter("drops_parse"), 1)
        agent.signal(SIGTERM)
        XCTAssertTrue(h.run(until: { !agent.isRunning }, timeout: 10), agent.stderr)
        XCTAssertEqual(agent.exitCode, 0, agent.stderr)
        XCTAssertEqual(h.collector.count("api", "v1"), 100, "the open window was delivered before exit")
        XCTAssertEqual(h.collector.totalCount, 100)
        XCTAssertTrue(agent.stderr.contains("drained; exiting"), agent.stderr)
    }

    func testMappedPagesAreTrimmedAfterStartAndIngestContinues() throws {
        let h = try AgentHarness()
        h.collector.patterns = Patterns(version: 1, rules: [rule("", "*", "*", "m", "c")])
        let (agent, path) = try startAgent(h)
        defer { unlink(path) }
        XCTAssertTrue(h.run(until: { agent.stderr.contains("mapped pages trimmed") }, timeout: AgentCommandLine.trimDelaySeconds + 10),
                      agent.stderr)
        XCTAssertTrue(agent.stderr.contains("failures=0"), agent.stderr)
        // The code it dropped faults back in: records still arrive.
        for i in 0..<10 { h.udp.send("0\tGET\th\t/x/\(i)\t1") }
        XCTAssertTrue(h.run(until: { (h.collector.counter("records") ?? 0) >= 10 }), agent.stderr)
        agent.signal(SIGTERM)
        XCTAssertTrue(h.run(until: { !agent.isRunning }, timeout: 10), agent.stderr)
        XCTAssertEqual(agent.exitCode, 0, agent.stderr)
    }

    func testSIGHUPWithABrokenFileKeepsTheOldConfig() throws {
        let h = try AgentHarness()
        h.collector.patterns = Patterns(version: 1, rules: [rule("", "*", "*", "m", "c")])
        let (agent, path) = try startAgent(h)
        defer { unlink(path) }
        XCTAssertTrue(h.run(until: { h.collector.lastStatus?.state == .capturing }), agent.stderr)
        // Break the file: an invalid value and a non-line.
        let broken = (try String(contentsOfFile: path, encoding: .utf8)) + "capture = sometimes\nnot a line\n"
        try broken.write(toFile: path, atomically: true, encoding: .utf8)
        agent.signal(SIGHUP)
        XCTAssertTrue(h.run(until: { h.collector.lastStatus?.state == .wrongConfiguration }), agent.stderr)
        let messages = h.collector.lastStatus!.messages
        XCTAssertEqual(messages.count, 2, "\(messages)")
        XCTAssertTrue(messages.contains { $0.contains("key 'capture'") }, "\(messages)")
        // Still receiving under the old configuration.
        let before = h.collector.counter("records") ?? 0
        h.udp.send("0\tGET\th\t/x\t1")
        XCTAssertTrue(h.run(until: { (h.collector.counter("records") ?? 0) > before }), agent.stderr)
        XCTAssertTrue(agent.isRunning)
        XCTAssertTrue(agent.stderr.contains("configuration rejected; keeping the running one"), agent.stderr)
        // A fixed file clears the state.
        let fixed = broken.replacingOccurrences(of: "capture = sometimes\nnot a line\n", with: "forward_raw_events = on\n")
        try fixed.write(toFile: path, atomically: true, encoding: .utf8)
        agent.signal(SIGHUP)
        XCTAssertTrue(h.run(until: { h.collector.lastStatus?.state == .capturing }), agent.stderr)
        agent.signal(SIGTERM)
        XCTAssertTrue(h.run(until: { !agent.isRunning }, timeout: 10))
        XCTAssertEqual(agent.exitCode, 0)
    }

    func testReplayExitCodes() throws {
        let h = try AgentHarness()
        h.collector.patterns = Patterns(version: 1, rules: [rule("", "*", "/a/*", "m", "a")])
        let file = writeTempFile((0..<1000).map { "0\tGET\th\t/a/\($0)\t\($0 % 20)" }.joined(separator: "\n") + "\nbad line\n")
        defer { unlink(file) }
        let path = writeConfig(h.lines)
        defer { unlink(path) }
        let ok = try AgentProcess(["replay", file, "--config", path])
        XCTAssertTrue(h.run(until: { !ok.isRunning }, timeout: 30), ok.stderr)
        XCTAssertEqual(ok.exitCode, 0, ok.stderr)
        XCTAssertEqual(h.collector.count("m", "a"), 1000)
        XCTAssertTrue(ok.stdout.contains("read lines=1001 records=1000 matched=1000"), ok.stdout)
        XCTAssertTrue(ok.stdout.contains("bad_version=1"), ok.stdout)
        XCTAssertTrue(ok.stdout.contains("acknowledged batches=1 items=1"), ok.stdout)

        h.collector.stop()
        let down = try AgentProcess(["replay", file, "--config", path])
        XCTAssertTrue(h.run(until: { !down.isRunning }, timeout: 30))
        XCTAssertEqual(down.exitCode, 3)
        XCTAssertTrue(down.stderr.contains("vigil-agent replay: no collector reachable"), down.stderr)
        XCTAssertTrue(down.stderr.contains("connection refused"), down.stderr)

        let missing = try AgentProcess.run(["replay", "/nonexistent/file", "--config", path])
        XCTAssertEqual(missing.code, 4)
        XCTAssertTrue(missing.stderr.contains("cannot read /nonexistent/file: No such file or directory"), missing.stderr)
    }
}
