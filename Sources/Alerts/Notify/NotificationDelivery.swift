// NotificationDelivery: how a message reaches a receiver.
//
// A webhook at a plain `http://` URL is POSTed from the loop by the
// remote-write module's small HTTP/1.1 client (HTTPPoster, one connection
// per delivery). An `https://` webhook and e-mail go through `vigil-notify`,
// a helper program that links libcurl — the collector itself never does
// (docs/ARCHITECTURE.md) — spawned per delivery: the request, secrets
// included, is written to its stdin (never argv or the environment, which
// other users can read), its one-line JSON answer read from its stdout
// when it exits, and it is killed (SIGKILL) at the delivery's deadline.
// How many run at once is AlertNotifier's `maxConcurrent`.
//
// A helper never outlives its collector: it asks the kernel for SIGKILL
// when its parent dies (PR_SET_PDEATHSIG) and gives up before sending if the
// collector (`parent_pid` in the request) is already gone — so no delivery
// happens that no collector could record; a collector taking over delivers
// the row again. Every message carries its notifications' ids
// (`X-Vigil-Notification-Id`, a header of the POST or of the e-mail).
//
// Thread: the loop thread; the loop must be the default one (a helper's
// exit is an ev_child event).
import CollectorStore
import JSON
import Reactor
import RemoteWrite
#if canImport(Glibc)
import Glibc
#endif

public final class NotificationDelivery: AlertDelivery {
    private let loop: EventLoop
    /// The helper program's path.
    public var helperPath: String
    /// Seconds one delivery may take.
    public var timeout: Double
    private var posters: [ObjectIdentifier: HTTPPoster] = [:]
    private var helpers: [Int32: HelperRun] = [:]

    public init(loop: EventLoop, helperPath: String, timeout: Double) {
        self.loop = loop
        self.helperPath = helperPath
        self.timeout = timeout
    }

    public func deliver(_ message: AlertMessage, to receiver: AlertReceiver, completion: @escaping (DeliveryResult) -> Void) {
        let body = message.body(format: receiver.format).serialized
        let idHeader = ("X-Vigil-Notification-Id", message.notificationIdHeader)
        if receiver.kind == .webhook, receiver.url.hasPrefix("http://"), let url = try? RemoteWriteURL(parsing: receiver.url) {
            return post(url, body: Array(body.utf8), header: idHeader, completion)
        }
        var req: [(String, JSON)] = [("kind", .string(receiver.kind.rawValue)), ("url", .string(receiver.url)),
                                     ("timeout_ms", .int(Int64(timeout * 1000))), ("parent_pid", .int(Int64(getpid()))),
                                     ("headers", .array([.array([.string(idHeader.0), .string(idHeader.1)])]))]
        if receiver.kind == .webhook {
            req += [("content_type", .string("application/json")), ("body", .string(body))]
        } else {
            req += [("from", .string(receiver.from)), ("to", .array(receiver.to.map(JSON.string))),
                    ("username", .string(receiver.username)), ("password", .string(receiver.password)),
                    ("subject", .string(message.subject)), ("text", .string(message.mailText))]
        }
        runHelper(Array(JSON.object(req).serialized.utf8), completion)
    }

    // MARK: http:// from the loop

    private func post(_ url: RemoteWriteURL, body: [UInt8], header: (String, String), _ completion: @escaping (DeliveryResult) -> Void) {
        let poster = HTTPPoster(loop: loop, url: url, timeout: timeout)
        let id = ObjectIdentifier(poster)
        posters[id] = poster
        poster.post(headers: [("Content-Type", "application/json"), ("User-Agent", "vigil-collector"), header], body: body) { [weak self] r in
            self?.posters[id]?.close()
            self?.posters[id] = nil
            switch r {
            case .success(let answer) where (200..<300).contains(answer.status):
                completion(.sent("HTTP \(answer.status)"))
            case .success(let answer):
                completion(.failed("HTTP \(answer.status)", retry: answer.status >= 500 || answer.status == 429))
            case .failure(let e):
                completion(.failed(e.description, retry: true))
            }
        }
    }

    // MARK: the helper

    final class HelperRun {
        var pid: Int32 = 0
        var output: Int32 = -1
        var child: ChildWatcher?
        var deadline: TimerWatcher?
        var killed = false
        var completion: ((DeliveryResult) -> Void)?
    }

    private func runHelper(_ request: [UInt8], _ completion: @escaping (DeliveryResult) -> Void) {
        let fail: (String) -> Void = { why in self.loop.defer { completion(.failed(why, retry: true)) } }
        let stdinPipe: (read: Int32, write: Int32), stdoutPipe: (read: Int32, write: Int32)
        do {
            stdinPipe = try Syscalls.pipe()
            stdoutPipe = try Syscalls.pipe()
        } catch {
            return fail("\(error)")
        }
        let devnull = open("/dev/null", O_WRONLY | O_CLOEXEC)
        defer {
            Syscalls.close(stdinPipe.read)
            Syscalls.close(stdoutPipe.write)
            if devnull >= 0 { Glibc.close(devnull) }
        }
        let pid: Int32
        do {
            pid = try Syscalls.spawn(path: helperPath, arguments: [helperPath], environment: [], stdin: stdinPipe.read,
                                     stdout: stdoutPipe.write, stderr: devnull >= 0 ? devnull : stdoutPipe.write)
        } catch {
            Syscalls.close(stdinPipe.write)
            Syscalls.close(stdoutPipe.read)
            return fail("cannot start \(helperPath): \(error)")
        }
        // The request fits the pipe (a message is a few KB; the pipe holds 64 KiB).
        let written = request.withUnsafeBytes { (try? Syscalls.write(stdinPipe.write, $0.baseAddress!, $0.count)) }
        Syscalls.close(stdinPipe.write)
        let run = HelperRun()
        run.pid = pid
        run.output = stdoutPipe.read
        run.completion = completion
        if case .value(let n)? = written, n == request.count {} else {
            _ = try? Syscalls.kill(pid, SIGKILL)
            run.killed = true
        }
        helpers[pid] = run
        run.child = ChildWatcher(loop: loop, pid: pid) { [weak self] _, termination in self?.finished(pid, termination) }
        run.child?.start()
        let t = TimerWatcher(loop: loop) { [weak run] _ in
            guard let run, run.completion != nil else { return }
            run.killed = true
            _ = try? Syscalls.kill(run.pid, SIGKILL)
        }
        t.start(after: timeout + 1)
        run.deadline = t
    }

    private func finished(_ pid: Int32, _ termination: ChildWatcher.Termination) {
        guard let run = helpers.removeValue(forKey: pid), let completion = run.completion else { return }
        run.completion = nil
        run.deadline?.stop()
        var out: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 4096)
        while out.count < 65_536 {
            guard case .value(let n)? = buf.withUnsafeMutableBytes({ try? Syscalls.read(run.output, $0.baseAddress!, $0.count) }), n > 0 else { break }
            out.append(contentsOf: buf[0..<n])
        }
        Syscalls.close(run.output)
        if run.killed { return completion(.failed("no answer in time (vigil-notify killed)", retry: true)) }
        guard let answer = try? JSON.parse(Array(out.prefix { $0 != UInt8(ascii: "\n") })) else {
            return completion(.failed("vigil-notify \(termination) without an answer", retry: true))
        }
        if answer["ok"]?.boolValue == true {
            let status = answer["status"]?.int64Value ?? 0
            return completion(.sent(status == 0 ? "sent" : "status \(status)"))
        }
        completion(.failed(answer["error"]?.stringValue ?? "failed", retry: answer["retry"]?.boolValue ?? true))
    }
}
