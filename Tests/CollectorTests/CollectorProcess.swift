// Test support: the real vigil-collector process on loopback ports with a
// temporary data directory, a blocking HTTP client, and a blocking Wire
// client — what a script or an agent would see.
import Foundation
import Glibc
import XCTest
import Wire
import CSystem  // SOCK_* constants: glibc's socket macros may be owned by this C module

enum CollectorBinary {
    /// The vigil-collector built next to the test bundle (same build
    /// directory, same configuration).
    static var path: String {
        var candidates: [String] = []
        let bundleDir = Bundle.main.bundleURL.deletingLastPathComponent().path
        candidates.append(bundleDir + "/vigil-collector")
        candidates.append((Bundle.main.executablePath.map { URL(fileURLWithPath: $0).deletingLastPathComponent().path } ?? "") + "/vigil-collector")
        for b in Bundle.allBundles where b.bundlePath.hasSuffix(".xctest") {
            candidates.append(b.bundleURL.deletingLastPathComponent().path + "/vigil-collector")
        }
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        candidates.append(root.path + "/.build/debug/vigil-collector")
        for c in candidates where FileManager.default.isExecutableFile(atPath: c) { return c }
        XCTFail("vigil-collector not found (looked in \(candidates)); build it with `swift build --product vigil-collector`")
        return candidates.last!
    }
}

/// Runs a command to completion; returns (status, stdout, stderr).
@discardableResult
func runCollectorCommand(_ args: [String], timeout: Double = 60) -> (status: Int32, out: String, err: String) {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: CollectorBinary.path)
    p.arguments = args
    let out = Pipe(), err = Pipe()
    p.standardOutput = out
    p.standardError = err
    do { try p.run() } catch { XCTFail("cannot start vigil-collector: \(error)"); return (-1, "", "") }
    // Read before waiting: a full pipe would block the child.
    let o = out.fileHandleForReading.readDataToEndOfFile()
    let e = err.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return (p.terminationStatus, String(decoding: o, as: UTF8.self), String(decoding: e, as: UTF8.self))
}

/// One running `vigil-collector run`.
final class CollectorProcess: @unchecked Sendable {
    let directory: URL
    let configPath: String
    let process = Process()
    private let lock = NSLock()
    private var _log = ""
    /// The collector's stderr reached its end (the process exited and every
    /// byte it wrote is in `_log`).
    private var _logEnded = false
    private(set) var sessionPort: UInt16 = 0
    private(set) var httpPort: UInt16 = 0
    private(set) var token = ""

    var dataDir: String { directory.appendingPathComponent("data").path }

    var log: String { lock.lock(); defer { lock.unlock() }; return _log }

    /// A fresh directory with `collector.conf` holding `config` lines plus
    /// loopback ports chosen by the kernel and `data_dir`.
    static func makeDirectory() -> URL {
        let dir = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("vigil-collector-\(UUID().uuidString)")
        try! FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir
    }

    init(directory: URL? = nil, config: [String] = [], extraArgs: [String] = []) throws {
        self.directory = directory ?? CollectorProcess.makeDirectory()
        configPath = self.directory.appendingPathComponent("collector.conf").path
        var lines = ["listen = 127.0.0.1:0", "http_listen = 127.0.0.1:0", "data_dir = \(self.directory.appendingPathComponent("data").path)"]
        lines += config
        try (lines.joined(separator: "\n") + "\n").write(toFile: configPath, atomically: true, encoding: .utf8)
        try start(extraArgs: extraArgs)
    }

    /// Restarts on the same directory (after a kill): a new process object.
    static func restart(_ old: CollectorProcess, config: [String] = []) throws -> CollectorProcess {
        try CollectorProcess(directory: old.directory, config: config)
    }

    private func start(extraArgs: [String]) throws {
        process.executableURL = URL(fileURLWithPath: CollectorBinary.path)
        process.arguments = ["run", "--config", configPath] + extraArgs
        let err = Pipe()
        process.standardError = err
        process.standardOutput = FileHandle.nullDevice
        err.fileHandleForReading.readabilityHandler = { [weak self] h in
            let d = h.availableData
            guard let self else { return }
            self.lock.lock()
            if d.isEmpty { self._logEnded = true } else { self._log += String(decoding: d, as: UTF8.self) }
            self.lock.unlock()
            if d.isEmpty { h.readabilityHandler = nil }
        }
        try process.run()
        // " ready pid=", not "ready": PostgreSQL notices ("… already exists") may come first.
        guard waitForLog(" ready pid=", timeout: 20) else {
            process.terminate()
            throw NSError(domain: "CollectorProcess", code: 1, userInfo: [NSLocalizedDescriptionKey: "collector did not start:\n\(log)"])
        }
        sessionPort = port(after: "listening on ")
        httpPort = port(after: "http on ")
        let tokenPath = dataDir + "/admin_token"
        token = ((try? String(contentsOfFile: tokenPath, encoding: .utf8)) ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
    }

    private func port(after marker: String) -> UInt16 {
        guard let r = log.range(of: marker) else { return 0 }
        let rest = log[r.upperBound...].prefix { $0 != " " && $0 != "\n" }
        return UInt16(rest.split(separator: ":").last ?? "") ?? 0
    }

    /// Waits until the log contains `text` (counting `occurrences`).
    @discardableResult
    func waitForLog(_ text: String, occurrences: Int = 1, timeout: Double = 10) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if log.components(separatedBy: text).count - 1 >= occurrences { return true }
            if !process.isRunning {
                // Exited: what it wrote last may still be on its way from the pipe.
                waitForLogEnd()
                return log.components(separatedBy: text).count - 1 >= occurrences
            }
            usleep(10_000)
        }
        return false
    }

    /// After the process exited: until its stderr is read to the end (at most 5 s).
    private func waitForLogEnd() {
        let deadline = Date().addingTimeInterval(5)
        while Date() < deadline {
            lock.lock(); let ended = _logEnded; lock.unlock()
            if ended { return }
            usleep(10_000)
        }
    }

    func signal(_ sig: Int32) { kill(process.processIdentifier, sig) }

    /// Waits for the process to exit; its status, or nil after `timeout`.
    func waitForExit(timeout: Double = 20) -> (status: Int32, signaled: Bool)? {
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { usleep(10_000) }
        guard !process.isRunning else { return nil }
        return (process.terminationStatus, process.terminationReason == .uncaughtSignal)
    }

    func kill9() {
        signal(SIGKILL)
        _ = waitForExit()
    }

    func stop() {
        if process.isRunning {
            signal(SIGTERM)
            if waitForExit(timeout: 15) == nil { kill9() }
        }
    }

    func removeDirectory() {
        try? FileManager.default.removeItem(at: directory)
    }

    deinit {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
    }

    // MARK: HTTP

    func http(_ method: String, _ path: String, body: String? = nil, token: String? = nil,
              headers: [String: String] = [:]) -> HTTPResult {
        HTTPResult.fetch(port: httpPort, method: method, path: path, body: body, token: token ?? self.token, headers: headers)
    }

    func api(_ method: String, _ path: String, body: String? = nil) -> HTTPResult {
        http(method, "/api/v1" + path, body: body)
    }

    /// The value of a /metrics sample, e.g. `vigil_handshake_failures_total{reason="wrong_key"}`.
    func metric(_ sample: String) -> Double? {
        let text = http("GET", "/metrics").body
        for line in text.split(separator: "\n") where line.hasPrefix(sample + " ") {
            return Double(line.dropFirst(sample.count + 1))
        }
        return nil
    }

    /// Polls `condition` for up to `timeout` seconds.
    func eventually(timeout: Double = 10, _ condition: () -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if condition() { return true }
            usleep(20_000)
        }
        return condition()
    }

    // MARK: keys

    /// The installation's public key, from `data_dir/collector_key` (the
    /// collector writes it at start).
    var collectorPublicKey: Key32 { try! StaticKeyFile.load(path: dataDir + "/collector_key").publicKey }

    /// An access key this collector never issued (right collector key,
    /// random secret).
    func foreignKey(project: String) -> AccessKey {
        try! AccessKey.generate(projectID: project, collectorKey: collectorPublicKey)
    }

    func createKey(project: String) -> AccessKey {
        let r = runCollectorCommand(["keys", "create", "--project", project, "--create-project", "--config", configPath])
        XCTAssertEqual(r.status, 0, r.err)
        let text = r.out.trimmingCharacters(in: .whitespacesAndNewlines)
        XCTAssertEqual(r.out.split(separator: "\n").count, 1, "keys create prints only the key: \(r.out)")
        return try! AccessKey(parsing: text)
    }
}

/// A blocking HTTP/1.1 exchange with `Connection: close`.
struct HTTPResult {
    var status: Int
    var headers: [String: String]
    var body: String

    var json: Any? { try? JSONSerialization.jsonObject(with: Data(body.utf8), options: [.fragmentsAllowed]) }
    var object: [String: Any] { json as? [String: Any] ?? [:] }

    static func fetch(port: UInt16, method: String, path: String, body: String?, token: String?,
                      headers: [String: String] = [:], timeout: Int = 30) -> HTTPResult {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var tv = timeval(tv_sec: timeout, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var sa = sockaddr_in()
        sa.sin_family = sa_family_t(AF_INET)
        sa.sin_port = port.bigEndian
        sa.sin_addr.s_addr = inet_addr("127.0.0.1")
        let rc = withUnsafePointer(to: &sa) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard rc == 0 else { return HTTPResult(status: 0, headers: [:], body: "connect failed: \(errno)") }
        var req = "\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        if let token { req += "Authorization: Bearer \(token)\r\n" }
        for (k, v) in headers { req += "\(k): \(v)\r\n" }
        let bytes = Array((body ?? "").utf8)
        if body != nil { req += "Content-Type: application/json\r\nContent-Length: \(bytes.count)\r\n" }
        req += "\r\n"
        let all = Array(req.utf8) + bytes
        var off = 0
        while off < all.count {
            let n = all[off...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n < 0 && errno == EINTR { continue }   // SIGCHLD of a collector a test stopped or resumed
            if n <= 0 { break }
            off += n
        }
        var data = [UInt8]()
        var buf = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = recv(fd, &buf, buf.count, 0)
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            data += buf[0..<n]
        }
        let text = String(decoding: data, as: UTF8.self)
        guard let split = text.range(of: "\r\n\r\n") else { return HTTPResult(status: 0, headers: [:], body: text) }
        let head = text[..<split.lowerBound].split(separator: "\r\n")
        let status = head.first.flatMap { Int($0.split(separator: " ").dropFirst().first ?? "") } ?? 0
        var h: [String: String] = [:]
        for line in head.dropFirst() {
            if let c = line.firstIndex(of: ":") {
                h[line[..<c].lowercased()] = line[line.index(after: c)...].trimmingCharacters(in: .whitespaces)
            }
        }
        return HTTPResult(status: status, headers: h, body: String(text[split.upperBound...]))
    }
}

/// An HTTP request answered on a helper thread (for calls that wait on an
/// agent the test itself plays).
final class PendingHTTP: @unchecked Sendable {
    private let lock = NSLock()
    private var _result: HTTPResult?
    var result: HTTPResult? { lock.lock(); defer { lock.unlock() }; return _result }

    init(_ c: CollectorProcess, _ method: String, _ path: String, body: String?) {
        let port = c.httpPort, token = c.token
        Thread {
            let r = HTTPResult.fetch(port: port, method: method, path: "/api/v1" + path, body: body, token: token)
            self.lock.lock(); self._result = r; self.lock.unlock()
        }.start()
    }

    func wait(timeout: Double = 30) -> HTTPResult? {
        let deadline = Date().addingTimeInterval(timeout)
        while result == nil && Date() < deadline { usleep(5_000) }
        return result
    }
}

/// A blocking Wire client over a real socket: what an agent does, one step
/// at a time.
final class WireTestClient {
    let fd: Int32
    let session: ClientSession
    private(set) var events: [SessionEvent] = []
    private(set) var peerClosed = false

    /// `identity`: the agent's static key pair. By default one derived from
    /// the access key and the agent id, so the same agent id proves the same
    /// key on every connection, as a real agent does with its `agent_key`.
    init(port: UInt16, key: AccessKey, identity: StaticKeyPair? = nil, hello: Hello?) throws {
        fd = WireTestClient.connectTCP(port: port)
        guard fd >= 0 else { throw NSError(domain: "WireTestClient", code: Int(errno)) }
        let own = identity ?? StaticKeyPair.derived(seed: key.secret, label: "test-agent/" + (hello?.agentID ?? ""))
        session = ClientSession(accessKey: key, identity: own, hello: hello)
    }

    deinit { close(fd) }

    static func connectTCP(port: UInt16) -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var sa = sockaddr_in()
        sa.sin_family = sa_family_t(AF_INET)
        sa.sin_port = port.bigEndian
        sa.sin_addr.s_addr = inet_addr("127.0.0.1")
        let rc = withUnsafePointer(to: &sa) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        if rc != 0 { close(fd); return -1 }
        return fd
    }

    static func hello(_ id: String, boot: String = "boot-1", instance: UInt64 = 0) -> Hello {
        Hello(agentID: id, name: "name-\(id)", host: "host-\(id)", version: "test", bootID: boot, instance: instance,
              capabilities: ["aggregates", "capture"], groups: ["default"])
    }

    /// Sends the preamble and message 1, then reads until the Welcome or
    /// the end; returns the Welcome.
    @discardableResult
    func handshake(timeout: Double = 10) -> Welcome? {
        try! session.start()
        writeOutbound()
        _ = read(until: { $0.contains { if case .welcome = $0 { return true }; if case .closed = $0 { return true }; return false } },
                 timeout: timeout)
        return session.welcome
    }

    func writeOutbound() {
        let out = session.outbound
        let bytes = out.readableArray
        out.consume(bytes.count)
        writeRaw(bytes)
    }

    func writeRaw(_ bytes: [UInt8]) {
        var off = 0
        while off < bytes.count {
            let n = bytes[off...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { return }
            off += n
        }
    }

    func send(_ records: [Record]) {
        for r in records { try! session.send(r) }
        try! session.flush()
        writeOutbound()
    }

    /// Reads and feeds until `done(events so far)` or `timeout`; true when done.
    @discardableResult
    func read(until done: ([SessionEvent]) -> Bool, timeout: Double = 10) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        var buf = [UInt8](repeating: 0, count: 65536)
        while !done(events) {
            let left = deadline.timeIntervalSinceNow
            if left <= 0 || peerClosed { return done(events) }
            var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            if poll(&p, 1, Int32(max(1, left * 1000))) <= 0 { continue }
            let n = recv(fd, &buf, buf.count, 0)
            if n <= 0 { peerClosed = true; continue }
            buf[0..<n].withUnsafeBytes { b in session.feed(UnsafeRawBufferPointer(b)) { events.append($0) } }
            // Pongs and other answers the session queued.
            writeOutbound()
        }
        return true
    }

    /// The collector's Error record: a refusal in message 2, or the last
    /// record before it closed an established session.
    var peerError: ErrorRecord? {
        if let e = session.peerError { return e }
        for r in records.reversed() { if case .error(let e) = r { return e } }
        return nil
    }

    var records: [Record] { events.compactMap { if case .record(let r) = $0 { return r } else { return nil } } }

    func waitForRecord(timeout: Double = 10, _ match: (Record) -> Bool) -> Record? {
        _ = read(until: { $0.contains { if case .record(let r) = $0 { return match(r) }; return false } }, timeout: timeout)
        return records.first(where: match)
    }

    /// Waits until the collector closes the connection.
    func waitForClose(timeout: Double = 10) -> Bool {
        read(until: { _ in false }, timeout: timeout)
        return peerClosed
    }

    func clearEvents() { events.removeAll() }

    /// A batch of one aggregate (monitor, check, source defined on first use).
    func batch(_ sequence: UInt64, monitor: String = "shop", check: String = "GET /cart", count: UInt64 = 10,
               windowStart: UInt64 = 1_700_000_000_000) -> [Record] {
        let m = try! session.stringRef(monitor), c = try! session.stringRef(check), s = try! session.stringRef("ipa")
        return [.dataBatch(DataBatch(sequence: sequence, items: [
            .aggregate(Aggregate(windowStartMs: windowStart + sequence * 10_000, windowLengthMs: 10_000, monitor: m, check: c,
                                 source: s, count: count, sumUs: 1_500_000, minUs: 20_000, maxUs: 400_000,
                                 p50Us: 100_000, p95Us: 300_000, p99Us: 390_000)),
        ]))]
    }
}
