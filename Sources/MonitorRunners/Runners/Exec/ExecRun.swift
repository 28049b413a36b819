// ExecRun: one run of a custom monitor — a child process spoken to over
// pipes with the line protocol of ExecProtocol (docs/MONITORS.md).
//
// The child is started with posix_spawn in its own process group, with
// stdin, stdout and stderr on pipes whose loop-side ends are nonblocking and
// watched by IOWatchers; its exit is observed with a ChildWatcher (default
// loop only). The run is bounded three ways:
//  - each step by its `timeout_secs` (the handshake by `handshakeTimeout`),
//  - the whole run by the monitor's `timeout_secs`,
//  - the exit: after "exit" (or a failure) the child gets `exitGrace` to
//    leave, then SIGTERM to its process group, then after `killGrace`
//    SIGKILL.
// After a failing step the remaining steps are reported `blocked`. The
// result is delivered once the child has been reaped, so a run never leaves
// a zombie; any process left in the child's group is then killed.
//
// Thread: loop thread. Ownership: the engine holds the run until it
// completes; after `cancel()` the run still terminates and reaps its child
// but reports nothing.
import JSON
import MonitorModel
import Reactor
import Wire
#if canImport(Glibc)
import Glibc
#endif

/// Exec settings shared by every run (from `MonitorEngine.Options`).
struct ExecSettings {
    var handshakeTimeout: Double
    var exitGrace: Double
    var killGrace: Double
}

final class ExecRun: MonitorRun {
    private enum State: Equatable {
        case idle
        case handshake
        case step(Int)
        /// Steps are over; waiting for the child to exit.
        case exiting
        case reaped
    }

    private let loop: EventLoop
    private let context: RunContext
    private let check: ExecCheck
    private let env: EnvResolver
    private let settings: ExecSettings
    private let output: MonitorOutputLog
    private let environment: [String]
    private var stats: ExecStats

    private var state = State.idle
    private var cancelled = false
    private var pid: pid_t = 0
    private var child: ChildWatcher?
    private var stdinFD: Int32 = -1
    private var stdoutFD: Int32 = -1
    private var stderrFD: Int32 = -1
    private var stdinWatcher: IOWatcher?
    private var stdoutWatcher: IOWatcher?
    private var stderrWatcher: IOWatcher?
    private var stdoutLines = LineBuffer(maxLine: ExecProtocol.maxLineBytes)
    private var stderrLines = LineBuffer(maxLine: ExecProtocol.maxLineBytes)
    private var pendingInput: [UInt8] = []
    private var closeInputWhenFlushed = false
    private var stepTimer: TimerWatcher?
    private var runTimer: TimerWatcher?
    private var exitTimer: TimerWatcher?
    private var logBudget: Int

    private var steps: [StepResult] = []
    private var stepStartNanos: UInt64 = 0
    private var stepPhases: [PhaseTiming] = []
    private var failure: (status: MonitorStatus, message: String)?
    private var notes: [String] = []
    private var signalled: Int32 = 0
    /// Held from spawn until the child is reaped, so a cancelled run (which
    /// the engine no longer holds) still terminates and reaps its child.
    private var keepAlive: ExecRun?

    init(loop: EventLoop, context: RunContext, check: ExecCheck, env: EnvResolver, settings: ExecSettings,
         output: MonitorOutputLog, environment: [String], stats: ExecStats) {
        self.loop = loop
        self.context = context
        self.check = check
        self.env = env
        self.settings = settings
        self.output = output
        self.environment = environment
        self.stats = stats
        logBudget = output.linesPerRun
    }

    // MARK: MonitorRun

    func start() {
        do {
            try spawn()
        } catch {
            closeAll()
            let message = env.redact("cannot start \(check.command): \(error)")
            let blocked = check.steps.map { StepResult(name: $0.name, status: .blocked, message: "monitor did not start") }
            loop.defer { [self] in
                guard !cancelled else { return }
                state = .reaped
                context.complete(context.result(.error, message: message, durationUs: 0, steps: blocked))
            }
            return
        }
        state = .handshake
        send("\(ExecProtocol.magic) \(ExecProtocol.version)\nconfig \(JSON.object(check.config).serialized)\n")
        armStepTimer(settings.handshakeTimeout)
        runTimer = TimerWatcher(loop: loop) { [unowned self] _ in self.runTimedOut() }
        runTimer!.start(after: Double(context.definition.timeoutMs) / 1000)
    }

    func cancel() {
        guard !cancelled else { return }
        cancelled = true
        guard state != .reaped && state != .idle else { return }
        // Keep going until reaped, silently: no zombie, no orphaned group.
        if state != .exiting { state = .exiting }
        stepTimer?.stop()
        runTimer?.stop()
        terminate()
    }

    // MARK: starting

    private func spawn() throws {
        let inPipe = try Syscalls.pipe()
        stdinFD = inPipe.write
        let outPipe = try Syscalls.pipe()
        stdoutFD = outPipe.read
        let errPipe = try Syscalls.pipe()
        stderrFD = errPipe.read
        defer {
            Syscalls.close(inPipe.read)
            Syscalls.close(outPipe.write)
            Syscalls.close(errPipe.write)
        }
        // The child's ends block: a shell's `read` fails on a nonblocking stdin.
        try Syscalls.setBlocking(inPipe.read)
        try Syscalls.setBlocking(outPipe.write)
        try Syscalls.setBlocking(errPipe.write)
        pid = try Syscalls.spawn(path: check.command, arguments: [check.command] + check.args, environment: environment,
                                 stdin: inPipe.read, stdout: outPipe.write, stderr: errPipe.write,
                                 searchPath: !check.command.contains(Character("/")))
        stats.spawned &+= 1
        keepAlive = self
        let c = ChildWatcher(loop: loop, pid: pid) { [unowned self] _, how in self.exited(how) }
        c.start()
        child = c
        stdoutWatcher = IOWatcher(loop: loop, fd: stdoutFD, events: .read) { [unowned self] _, _ in self.readStdout() }
        stdoutWatcher!.start()
        stderrWatcher = IOWatcher(loop: loop, fd: stderrFD, events: .read) { [unowned self] _, _ in self.readStderr() }
        stderrWatcher!.start()
    }

    // MARK: protocol

    private func handle(_ line: String) {
        let message = ExecProtocol.parse(line)
        if case .log(let text) = message {
            output.line(text, monitor: context.definition.id, runID: context.runID, stream: "log", runBudget: &logBudget)
            return
        }
        switch state {
        case .handshake:
            guard case .hello(let v) = message else {
                protocolError("expected '\(ExecProtocol.magic) \(ExecProtocol.version)' first, got '\(ExecProtocol.clip(line))'")
                return
            }
            guard let v, v >= 1, v <= ExecProtocol.version else {
                protocolError("monitor speaks protocol version '\(ExecProtocol.clip(line))'; this agent speaks 1 to \(ExecProtocol.version)")
                return
            }
            beginStep(0)
        case .step(let i):
            switch message {
            case .timing(let name, let ms):
                if stepPhases.count < 32 { stepPhases.append(PhaseTiming(name, UInt64(ms * 1000))) }
            case .ok(let ms):
                let measured = (Clock.monotonicNanos() &- stepStartNanos) / 1000
                let us = ms.map { min(UInt64($0 * 1000), measured) } ?? measured
                steps.append(StepResult(name: check.steps[i].name, status: .ok, durationUs: us, phases: stepPhases))
                beginStep(i + 1)
            case .error(let text):
                endSteps(at: i, status: .error, message: text)
                finishProtocol()
            case .malformed(let why):
                protocolError(why)
            case .hello:
                protocolError("handshake repeated during step \(check.steps[i].name)")
            case .unknown:
                stats.unknownLines &+= 1
            case .log:
                break
            }
        case .exiting, .reaped, .idle:
            if case .unknown = message { stats.unknownLines &+= 1 }
        }
    }

    private func beginStep(_ i: Int) {
        guard i < check.steps.count else {
            state = .exiting
            stepTimer?.stop()
            finishProtocol()
            return
        }
        state = .step(i)
        stepPhases = []
        stepStartNanos = Clock.monotonicNanos()
        send("run step \(check.steps[i].name)\n")
        armStepTimer(Double(check.steps[i].timeoutSecs))
    }

    /// Records step `i` as failed and every later one as blocked.
    private func endSteps(at i: Int, status: MonitorStatus, message: String) {
        let name = check.steps[i].name
        let us = (Clock.monotonicNanos() &- stepStartNanos) / 1000
        steps.append(StepResult(name: name, status: status, durationUs: us, phases: stepPhases, message: env.redact(message)))
        for s in check.steps[(i + 1)...] {
            steps.append(StepResult(name: s.name, status: .blocked, message: "blocked: step \(name) \(status)"))
        }
        if failure == nil { failure = (status, "step \(name): \(env.redact(message))") }
        state = .exiting
        stepTimer?.stop()
    }

    /// Before any step ran: every step blocked.
    private func failBeforeSteps(_ status: MonitorStatus, _ message: String) {
        for s in check.steps {
            steps.append(StepResult(name: s.name, status: .blocked, message: "blocked: \(message)"))
        }
        if failure == nil { failure = (status, env.redact(message)) }
        state = .exiting
        stepTimer?.stop()
    }

    private func protocolError(_ why: String) {
        stats.protocolErrors &+= 1
        let message = "protocol error: \(why)"
        switch state {
        case .handshake: failBeforeSteps(.error, message)
        case .step(let i): endSteps(at: i, status: .error, message: message)
        default: return
        }
        // A monitor that breaks the protocol cannot be trusted to read "exit".
        terminate()
    }

    /// Steps are over: ask the monitor to exit, and give it `exitGrace`.
    private func finishProtocol() {
        send("exit\n")
        closeInputWhenFlushed = true
        flushInput()
        armExitTimer(settings.exitGrace) { [unowned self] in
            self.notes.append("monitor did not exit within \(Int(self.settings.exitGrace * 1000)) ms of 'exit'")
            self.terminate()
        }
    }

    // MARK: timeouts and signals

    private func armStepTimer(_ seconds: Double) {
        let t = stepTimer ?? TimerWatcher(loop: loop) { [unowned self] _ in self.stepTimedOut() }
        stepTimer = t
        t.start(after: seconds)
    }

    private func stepTimedOut() {
        switch state {
        case .handshake:
            failBeforeSteps(.timeout, "no handshake within \(Int(settings.handshakeTimeout * 1000)) ms")
        case .step(let i):
            endSteps(at: i, status: .timeout, message: "timed out after \(check.steps[i].timeoutSecs * 1000) ms")
        default:
            return
        }
        terminate()
    }

    private func runTimedOut() {
        let cap = "run exceeded timeout_secs (\(context.definition.timeoutSecs) s)"
        switch state {
        case .handshake: failBeforeSteps(.timeout, cap)
        case .step(let i): endSteps(at: i, status: .timeout, message: cap)
        case .exiting:
            // Steps are done; only the exit is late. The exit timers handle it.
            return
        default: return
        }
        terminate()
    }

    /// SIGTERM to the process group now, SIGKILL after `killGrace`.
    private func terminate() {
        guard signalled == 0, state != .reaped else { return }
        signal(SIGTERM)
        armExitTimer(settings.killGrace) { [unowned self] in
            self.notes.append("monitor ignored SIGTERM for \(Int(self.settings.killGrace * 1000)) ms")
            self.signal(SIGKILL)
        }
    }

    private func signal(_ sig: Int32) {
        guard pid > 0, state != .reaped else { return }
        signalled = sig
        if sig == SIGKILL { stats.killed &+= 1 } else { stats.terminated &+= 1 }
        _ = try? Syscalls.kill(-pid, sig)
    }

    private func armExitTimer(_ seconds: Double, _ action: @escaping () -> Void) {
        exitTimer?.stop()
        let t = TimerWatcher(loop: loop) { _ in action() }
        exitTimer = t
        t.start(after: seconds)
    }

    // MARK: the child's exit

    private func exited(_ how: ChildWatcher.Termination) {
        child = nil
        // Read what the monitor wrote before it went (an "ok" may precede exit).
        readStdout(all: true)
        readStderr(all: true)
        if let last = stdoutLines.finish() { handle(last) }
        if let last = stderrLines.finish() { logStderr(last) }
        // Anything the monitor left behind in its group goes with it.
        _ = try? Syscalls.kill(-pid, SIGKILL)
        switch state {
        case .handshake: failBeforeSteps(.error, "monitor \(how) before the handshake")
        case .step(let i): endSteps(at: i, status: .error, message: "monitor \(how) during the step")
        default: break
        }
        state = .reaped
        stepTimer?.stop()
        runTimer?.stop()
        exitTimer?.stop()
        closeAll()
        let me = keepAlive
        keepAlive = nil
        defer { _ = me }
        guard !cancelled else { return }

        var status = MonitorStatus.ok
        var message: [String] = []
        if let f = failure {
            status = f.status
            message.append(f.message)
        }
        message += notes
        switch how {
        case .signaled(let s) where s == SIGKILL && signalled == SIGKILL: message.append("killed with SIGKILL")
        case .signaled(let s) where s == SIGTERM && signalled == SIGTERM: message.append("terminated with SIGTERM")
        case .exited(let code) where code != 0 && failure == nil: message.append("monitor exited with status \(code)")
        case .exited(let code) where signalled != 0: message.append("monitor exited with status \(code) after \(signalled == SIGKILL ? "SIGKILL" : "SIGTERM")")
        default: break
        }
        context.complete(context.result(status, message: message.joined(separator: "; "), steps: steps))
    }

    // MARK: pipes

    private func send(_ text: String) {
        guard stdinFD >= 0, !closeInputWhenFlushed else { return }
        pendingInput.append(contentsOf: text.utf8)
        flushInput()
    }

    private func flushInput() {
        guard stdinFD >= 0 else { return }
        while !pendingInput.isEmpty {
            let r: IOResult<Int>
            do {
                r = try pendingInput.withUnsafeBytes { try Syscalls.write(stdinFD, $0.baseAddress!, $0.count) }
            } catch {
                // EPIPE: the monitor closed stdin or exited; its exit ends the run.
                pendingInput.removeAll()
                closeInput()
                return
            }
            guard case .value(let n) = r else {
                if stdinWatcher == nil {
                    stdinWatcher = IOWatcher(loop: loop, fd: stdinFD, events: .write) { [unowned self] _, _ in self.flushInput() }
                }
                stdinWatcher!.start()
                return
            }
            pendingInput.removeFirst(n)
        }
        stdinWatcher?.stop()
        if closeInputWhenFlushed { closeInput() }
    }

    private func closeInput() {
        stdinWatcher?.stop()
        stdinWatcher = nil
        if stdinFD >= 0 { Syscalls.close(stdinFD); stdinFD = -1 }
    }

    private func readStdout(all: Bool = false) {
        // Lines are handled after the read: handling may touch this run's
        // other state, which must not overlap the inout access below.
        for piece in ExecRun.read(fd: &stdoutFD, watcher: &stdoutWatcher, lines: &stdoutLines, all: all) {
            switch piece {
            case .line(let l): handle(l)
            case .tooLong: protocolError("a line longer than \(ExecProtocol.maxLineBytes) bytes")
            }
        }
    }

    private func readStderr(all: Bool = false) {
        for piece in ExecRun.read(fd: &stderrFD, watcher: &stderrWatcher, lines: &stderrLines, all: all) {
            switch piece {
            case .line(let l): logStderr(l)
            case .tooLong: logStderr("(a line longer than \(ExecProtocol.maxLineBytes) bytes was dropped)")
            }
        }
    }

    private func logStderr(_ line: String) {
        output.line(line, monitor: context.definition.id, runID: context.runID, stream: "stderr", runBudget: &logBudget)
    }

    /// Reads up to 64 KiB (with `all`, until EAGAIN or EOF, at most 1 MiB)
    /// and returns the lines completed. Closes the pipe at EOF or error.
    private static func read(fd: inout Int32, watcher: inout IOWatcher?, lines: inout LineBuffer, all: Bool) -> [LineBuffer.Piece] {
        var out: [LineBuffer.Piece] = []
        var budget = all ? 1 << 20 : 64 * 1024
        var chunk = [UInt8](repeating: 0, count: 16 * 1024)
        while fd >= 0 && budget > 0 {
            let r: IOResult<Int>
            do {
                r = try chunk.withUnsafeMutableBytes { try Syscalls.read(fd, $0.baseAddress!, $0.count) }
            } catch {
                r = .value(0)  // treated as EOF: the pipe is unusable
            }
            guard case .value(let n) = r else { break }
            if n == 0 {
                watcher?.stop()
                watcher = nil
                Syscalls.close(fd)
                fd = -1
                break
            }
            budget -= n
            out += chunk.withUnsafeBytes { lines.feed(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
        }
        return out
    }

    private func closeAll() {
        stdinWatcher?.stop(); stdinWatcher = nil
        stdoutWatcher?.stop(); stdoutWatcher = nil
        stderrWatcher?.stop(); stderrWatcher = nil
        if stdinFD >= 0 { Syscalls.close(stdinFD); stdinFD = -1 }
        if stdoutFD >= 0 { Syscalls.close(stdoutFD); stdoutFD = -1 }
        if stderrFD >= 0 { Syscalls.close(stderrFD); stderrFD = -1 }
    }
}

/// Counters shared by the exec runs of one engine.
final class ExecStats {
    var spawned: UInt64 = 0
    var terminated: UInt64 = 0
    var killed: UInt64 = 0
    var protocolErrors: UInt64 = 0
    var unknownLines: UInt64 = 0
}
