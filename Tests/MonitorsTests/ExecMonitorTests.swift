// Exec monitors: the example monitor (examples/monitors/shell-steps.sh)
// through success, a step error, a step timeout and a hang (SIGTERM
// ignored, then SIGKILL), plus protocol failures, bounded stderr, and the
// exec policy.
import XCTest
import JSON
import Reactor
import Wire
@testable import MonitorModel
@testable import MonitorRunners

final class ExecMonitorTests: XCTestCase {
    var harness: EngineHarness!
    var options = MonitorEngine.Options()

    override func setUp() {
        // The example monitor's directory and the scripts written below.
        options.policy = .init(exec: .directories([TestPaths.root + "/examples/monitors", "/tmp"]))
        options.execExitGrace = 1
        options.execKillGrace = 0.5
        options.execHandshakeTimeout = 2
        harness = EngineHarness(options: options)
    }

    override func tearDown() { harness.shutdown() }

    func steps(_ r: MonitorRunResult) -> [String] { r.steps.map { "\($0.name):\($0.status)" } }

    func testAllStepsSucceed() throws {
        let d = MonitorDefinition.exec("ok", steps: [("first", 5), ("second.step", 5)],
                                       config: JSONObject([("first", "true"), ("second.step", "test -d /")]))
        let r = try XCTUnwrap(harness.first(d))
        XCTAssertEqual(r.status, .ok, r.message)
        XCTAssertEqual(r.message, "")
        XCTAssertEqual(steps(r), ["first:ok", "second.step:ok"])
        XCTAssertEqual(r.steps[0].phases.map(\.name), ["command"], "the example reports a timing line")
        XCTAssertGreaterThan(r.durationUs, 0)
        XCTAssertEqual(harness.engine.stats.execSpawned, 1)
        XCTAssertEqual(harness.engine.stats.execTerminated, 0)
    }

    func testStepErrorBlocksTheRest() throws {
        let d = MonitorDefinition.exec("err", steps: [("a", 5), ("b", 5), ("c", 5), ("d", 5)],
                                       config: JSONObject([("a", "true"), ("b", "echo broken >&2; exit 3"), ("c", "true"), ("d", "true")]))
        let r = try XCTUnwrap(harness.first(d))
        XCTAssertEqual(r.status, .error)
        XCTAssertEqual(steps(r), ["a:ok", "b:error", "c:blocked", "d:blocked"])
        XCTAssertEqual(r.steps[1].message, "command exited with status 3")
        XCTAssertEqual(r.steps[2].message, "blocked: step b error")
        XCTAssertEqual(r.message, "step b: command exited with status 3")
        XCTAssertEqual(harness.engine.stats.execTerminated, 0, "the monitor left on 'exit'")
        XCTAssertGreaterThanOrEqual(harness.engine.stats.outputLinesLogged, 1, "stderr went to the log")
    }

    func testStepTimeoutTerminatesTheMonitor() throws {
        let d = MonitorDefinition.exec("slow", steps: [("a", 5), ("wait", 1), ("after", 5)],
                                       config: JSONObject([("a", "true"), ("wait", "sleep 30"), ("after", "true")]))
        let r = try XCTUnwrap(harness.first(d))
        XCTAssertEqual(r.status, .timeout)
        XCTAssertEqual(steps(r), ["a:ok", "wait:timeout", "after:blocked"])
        XCTAssertEqual(r.steps[1].message, "timed out after 1000 ms")
        XCTAssertGreaterThanOrEqual(r.steps[1].durationUs, 900_000)
        XCTAssertTrue(r.message.hasPrefix("step wait: timed out after 1000 ms"), r.message)
        // The example's TERM trap stops its command and exits 143.
        XCTAssertTrue(r.message.hasSuffix("monitor exited with status 143 after SIGTERM"), r.message)
        XCTAssertEqual(harness.engine.stats.execTerminated, 1)
        XCTAssertEqual(harness.engine.stats.execKilled, 0)
        XCTAssertLessThan(r.durationUs, 5_000_000)
    }

    func testHangIsTerminatedThenKilled() throws {
        // The step's command ignores SIGTERM, so the monitor's TERM trap
        // waits for it forever: SIGKILL after the kill grace ends both.
        let d = MonitorDefinition.exec("hang", steps: [("stuck", 1), ("never", 1)],
                                       config: JSONObject([("stuck", "trap '' TERM; sleep 30"), ("never", "true")]))
        let r = try XCTUnwrap(harness.first(d))
        XCTAssertEqual(r.status, .timeout)
        XCTAssertEqual(steps(r), ["stuck:timeout", "never:blocked"])
        XCTAssertTrue(r.message.contains("monitor ignored SIGTERM for 500 ms"), r.message)
        XCTAssertTrue(r.message.hasSuffix("killed with SIGKILL"), r.message)
        XCTAssertEqual(harness.engine.stats.execTerminated, 1)
        XCTAssertEqual(harness.engine.stats.execKilled, 1)
        // Its group went with it: nothing of the run is left behind.
        XCTAssertLessThan(r.durationUs, 5_000_000)
    }

    func testMonitorThatDoesNotExitAfterExitIsTerminated() throws {
        let script = try writeScript("""
            #!/bin/sh
            read -r hello; echo "VIGIL-MONITOR 1"; read -r config
            read -r run; echo ok
            read -r exit_line
            trap '' TERM
            sleep 30
            """)
        let d = MonitorDefinition.exec("linger", steps: [("only", 5)], config: JSONObject(), command: script)
        let r = try XCTUnwrap(harness.first(d))
        XCTAssertEqual(r.status, .ok, "the steps succeeded")
        XCTAssertEqual(steps(r), ["only:ok"])
        XCTAssertEqual(r.message, "monitor did not exit within 1000 ms of 'exit'; monitor ignored SIGTERM for 500 ms; killed with SIGKILL")
    }

    func testBadHandshakeIsAProtocolError() throws {
        let script = try writeScript("#!/bin/sh\nread -r hello\necho hello there\nsleep 30\n")
        let d = MonitorDefinition.exec("proto", steps: [("a", 5)], config: JSONObject(), command: script)
        let r = try XCTUnwrap(harness.first(d))
        XCTAssertEqual(r.status, .error)
        XCTAssertEqual(steps(r), ["a:blocked"])
        XCTAssertTrue(r.message.hasPrefix("protocol error: expected 'VIGIL-MONITOR 1' first, got 'hello there'"), r.message)
        XCTAssertEqual(harness.engine.stats.execProtocolErrors, 1)
    }

    func testNewerProtocolVersionIsRefused() throws {
        let script = try writeScript("#!/bin/sh\nread -r hello\necho 'VIGIL-MONITOR 2'\nread -r x\n")
        let r = try XCTUnwrap(harness.first(.exec("v2", steps: [("a", 5)], config: JSONObject(), command: script)))
        XCTAssertTrue(r.message.hasPrefix("protocol error: monitor speaks protocol version 'VIGIL-MONITOR 2'"), r.message)
    }

    func testMonitorExitingMidStep() throws {
        let script = try writeScript("#!/bin/sh\nread -r hello\necho 'VIGIL-MONITOR 1'\nread -r c\nread -r run\nexit 4\n")
        let r = try XCTUnwrap(harness.first(.exec("quit", steps: [("a", 5), ("b", 5)], config: JSONObject(), command: script)))
        XCTAssertEqual(r.status, .error)
        XCTAssertEqual(steps(r), ["a:error", "b:blocked"])
        XCTAssertEqual(r.steps[0].message, "monitor exited with status 4 during the step")
    }

    func testMissingCommandFails() throws {
        let r = try XCTUnwrap(harness.first(.exec("nope", steps: [("a", 5)], config: JSONObject(), command: "/tmp/nonexistent/monitor")))
        XCTAssertEqual(r.status, .error)
        XCTAssertEqual(r.message, "cannot start /tmp/nonexistent/monitor: No such file or directory (2)")
    }

    func testCommandThatCannotStartFailsWithEveryStepBlocked() throws {
        let script = try writeScript("#!/bin/sh\nexit 0\n")
        chmod(script, 0o644)
        let r = try XCTUnwrap(harness.first(.exec("noexec", steps: [("a", 5)], config: JSONObject(), command: script)))
        XCTAssertEqual(r.status, .error)
        XCTAssertEqual(r.message, "cannot start \(script): posix_spawn(\(script)) failed: EACCES (13)")
        XCTAssertEqual(steps(r), ["a:blocked"])
    }

    func testStderrIsBoundedPerRun() throws {
        let spam = "i=0; while [ $i -lt 100 ]; do echo line $i >&2; i=$((i+1)); done"
        let d = MonitorDefinition.exec("chatty", steps: [("spam", 5)], config: JSONObject([("spam", .string(spam))]))
        let saved = Log.fd
        Log.fd = open("/dev/null", O_WRONLY)
        defer { close(Log.fd); Log.fd = saved }
        let r = try XCTUnwrap(harness.first(d))
        XCTAssertEqual(r.status, .ok, r.message)
        let s = harness.engine.stats
        XCTAssertEqual(s.outputLinesLogged, UInt64(options.outputLinesPerRun))
        XCTAssertEqual(s.outputLinesLogged + s.outputLinesDropped, 100)
    }

    func testEnvironmentInArgumentsAndConfig() throws {
        options.environment = { ["GREETING": "hello-world", "CMD": "test -n hello-world"][$0] }
        options.policy.environment = ["GREETING", "CMD"]
        let h = EngineHarness(options: options)
        defer { h.shutdown() }
        let d = MonitorDefinition.exec("env", steps: [("check", 5)], config: JSONObject([("check", "${env:CMD}")]))
        let r = try XCTUnwrap(h.first(d))
        XCTAssertEqual(r.status, .ok, r.message)
    }

    func testChildDoesNotInheritVigilVariables() throws {
        setenv("VIGIL_ACCESS_KEY", "proj.secret", 1)
        defer { unsetenv("VIGIL_ACCESS_KEY") }
        let d = MonitorDefinition.exec("noenv", steps: [("check", 5)],
                                       config: JSONObject([("check", "[ x${VIGIL_ACCESS_KEY:-} = x ] && [ -n ${PATH:+set} ]")]))
        let r = try XCTUnwrap(harness.first(d))
        XCTAssertEqual(r.status, .ok, r.message)
    }

    func testExecIsRefusedByDefault() throws {
        let off = EngineHarness(options: MonitorEngine.Options())
        defer { off.shutdown() }
        let r = try XCTUnwrap(off.first(.exec("p1", steps: [("a", 5)], config: JSONObject([("a", "true")]))))
        XCTAssertEqual(r.status, .refused)
        XCTAssertEqual(r.message, "exec monitors are disabled on this agent (exec_monitors)")
        XCTAssertEqual(off.engine.stats.execSpawned, 0)
        XCTAssertEqual(off.engine.stats.refused, 1)
    }

    func testExecPolicyChecksTheRealPath() throws {
        let inside = try writeScript("#!/bin/sh\nexit 0\n")
        let dir = String(inside[..<inside.lastIndex(of: "/")!])
        options.policy = .init(exec: .directories([TestPaths.root + "/examples/monitors", dir]))
        let dirs = EngineHarness(options: options)
        defer { dirs.shutdown() }
        let ok = try XCTUnwrap(dirs.first(.exec("p2", steps: [("a", 5)], config: JSONObject([("a", "true")]))))
        XCTAssertEqual(ok.status, .ok, ok.message)
        dirs.results = []
        let outside = try XCTUnwrap(dirs.first(.exec("p3", steps: [("a", 5)], config: JSONObject(), command: "/bin/true")))
        XCTAssertEqual(outside.status, .refused)
        XCTAssertTrue(outside.message.hasPrefix("command /bin/true"), outside.message)
        XCTAssertTrue(outside.message.contains("is outside the allowed directories"), outside.message)
        dirs.results = []
        // `..` is resolved before the check.
        let sneaky = dir + "/../../bin/true"
        let dots = try XCTUnwrap(dirs.first(.exec("p4", steps: [("a", 5)], config: JSONObject(), command: sneaky)))
        XCTAssertEqual(dots.status, .refused, dots.message)
        XCTAssertTrue(dots.message.contains("is outside the allowed directories"), dots.message)
        dirs.results = []
        // A link inside pointing outside is judged by its target.
        let link = dir + "/link-to-true"
        XCTAssertEqual(symlink("/bin/true", link), 0)
        defer { unlink(link) }
        let linked = try XCTUnwrap(dirs.first(.exec("p5", steps: [("a", 5)], config: JSONObject(), command: link)))
        XCTAssertEqual(linked.status, .refused, linked.message)
        XCTAssertTrue(linked.message.contains("(really /"), linked.message)
        XCTAssertEqual(dirs.engine.stats.refused, 3)
        // Not absolute: refused.
        dirs.results = []
        let relative = try XCTUnwrap(dirs.first(.exec("p6", steps: [("a", 5)], config: JSONObject(), command: "true")))
        XCTAssertEqual(relative.status, .refused, relative.message)
    }

    /// A throw-away script in a fresh temporary directory.
    func writeScript(_ text: String) throws -> String {
        var template = Array("/tmp/vigil-monitor-test-XXXXXX".utf8CString)
        guard mkdtemp(&template) != nil else { throw SyscallError(call: "mkdtemp", errno: errno) }
        let dir = template.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
        let path = dir + "/monitor.sh"
        let body = text.split(separator: "\n", omittingEmptySubsequences: false)
            .map { $0.drop(while: { $0 == " " }) }.joined(separator: "\n") + "\n"
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o755)
        guard fd >= 0 else { throw SyscallError(call: "open", errno: errno) }
        _ = body.withCString { write(fd, $0, strlen($0)) }
        close(fd)
        addTeardownBlock { unlink(path); rmdir(dir) }
        return path
    }
}
