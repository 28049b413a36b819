// RealCollector: the built `vigil-collector` as a child process on fixed
// loopback ports with its own data directory (so a kill -9 and restart
// comes back on the same address with the same database), a project key
// made with `vigil-collector keys create`, and a blocking HTTP client for
// its API.
import Foundation
import XCTest
import Wire
import CSystem  // SOCK_* constants: glibc's socket macros may be owned by this C module

final class RealCollector {
    let directory: String
    let configPath: String
    let host: String
    let sessionPort: UInt16
    let httpPort: UInt16
    private(set) var process: AgentProcess?
    private(set) var token = ""

    /// A new data directory; `copying` another collector's directory gives
    /// this one the same keys and rules (a second collector of the fleet).
    init(host: String = "127.0.0.1", sessionPort: UInt16? = nil, copying other: RealCollector? = nil) throws {
        directory = "/tmp/vigil-e2e-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: directory + "/data", withIntermediateDirectories: true)
        if let other {
            for f in try FileManager.default.contentsOfDirectory(atPath: other.directory + "/data") {
                try FileManager.default.copyItem(atPath: other.directory + "/data/" + f, toPath: directory + "/data/" + f)
            }
        }
        self.host = host
        self.sessionPort = sessionPort ?? freeTCPPort()
        httpPort = freeTCPPort()
        configPath = directory + "/collector.conf"
        let text = """
        listen = \(host):\(self.sessionPort)
        http_listen = 127.0.0.1:\(httpPort)
        data_dir = \(directory)/data
        log_level = info

        """
        try text.write(toFile: configPath, atomically: true, encoding: .utf8)
    }

    deinit {
        process?.signal(SIGKILL)
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// `vigil-collector keys create --project P`: the printed key.
    func createKey(project: String) throws -> AccessKey {
        let r = try AgentProcess.run(["keys", "create", "--project", project, "--create-project", "--config", configPath], binary: "vigil-collector")
        XCTAssertEqual(r.code, 0, r.stderr)
        return try AccessKey(parsing: r.stdout.trimmingCharacters(in: .whitespacesAndNewlines))
    }

    /// Starts `vigil-collector run` and waits for its "ready" line.
    func start() throws {
        let p = try AgentProcess(["run", "--config", configPath], binary: "vigil-collector")
        process = p
        let deadline = Date().addingTimeInterval(20)
        while !p.stderr.contains(" ready") {
            guard p.isRunning, Date() < deadline else {
                var how = "still running after 20 s"
                if !p.isRunning {
                    p.process.waitUntilExit()
                    how = p.process.terminationReason == .uncaughtSignal
                        ? "killed by signal \(p.process.terminationStatus)" : "exited with status \(p.process.terminationStatus)"
                }
                throw NSError(domain: "RealCollector", code: 1, userInfo: [NSLocalizedDescriptionKey:
                    "collector did not start (\(how); sessions \(host):\(sessionPort), HTTP 127.0.0.1:\(httpPort)):\n\(p.stderr)"])
            }
            usleep(10_000)
        }
        token = ((try? String(contentsOfFile: directory + "/data/admin_token", encoding: .utf8)) ?? "")
            .trimmingCharacters(in: .whitespacesAndNewlines)
    }

    func kill9() {
        guard let p = process else { return }
        p.signal(SIGKILL)
        p.process.waitUntilExit()
    }

    var log: String { process?.stderr ?? "" }

    // MARK: API

    struct Response {
        var status: Int
        var body: String
        var object: [String: Any] {
            (try? JSONSerialization.jsonObject(with: Data(body.utf8))) as? [String: Any] ?? [:]
        }
    }

    func api(_ method: String, _ path: String, body: String? = nil) -> Response {
        fetch(method: method, path: "/api/v1" + path, body: body)
    }

    /// The /metrics page's text.
    func metrics() -> String { fetch(method: "GET", path: "/metrics", body: nil).body }

    /// Sum of `count` over the measurements matching the query.
    func measuredCount(project: String, monitor: String? = nil, check: String? = nil) -> Int {
        var q = "/measurements?project=\(project)&limit=10000"
        if let monitor { q += "&monitor=\(monitor)" }
        if let check { q += "&check=\(check.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? check)" }
        let rows = api("GET", q).object["measurements"] as? [[String: Any]] ?? []
        return rows.reduce(0) { $0 + ($1["count"] as? Int ?? 0) }
    }

    func measurements(project: String) -> [[String: Any]] {
        api("GET", "/measurements?project=\(project)&limit=10000").object["measurements"] as? [[String: Any]] ?? []
    }

    func events(project: String) -> [[String: Any]] {
        api("GET", "/events?project=\(project)&limit=10000").object["events"] as? [[String: Any]] ?? []
    }

    func agent(_ id: String) -> [String: Any] { api("GET", "/agents/\(id)").object }

    /// A counter from the agent's latest status as the collector stored it.
    func counter(agent id: String, _ name: String) -> Int? {
        let status = agent(id)["status"] as? [String: Any]
        return (status?["counters"] as? [String: Any])?[name] as? Int
    }

    func state(agent id: String) -> String? { agent(id)["state"] as? String }

    func putPatterns(project: String, _ rules: [(method: String, host: String, path: String, monitor: String, check: String)]) {
        let list = rules.map { r in
            "{\"method\":\"\(r.method)\",\"host\":\"\(r.host)\",\"path\":\"\(r.path)\",\"monitor\":\"\(r.monitor)\",\"check\":\"\(r.check)\"}"
        }
        let r = api("PUT", "/projects/\(project)/patterns", body: "{\"patterns\":[\(list.joined(separator: ","))]}")
        XCTAssertEqual(r.status, 200, r.body)
    }

    private func fetch(method: String, path: String, body: String?) -> Response {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var tv = timeval(tv_sec: 30, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var sa = sockaddr_in()
        sa.sin_family = sa_family_t(AF_INET)
        sa.sin_port = httpPort.bigEndian
        sa.sin_addr.s_addr = inet_addr("127.0.0.1")
        let rc = withUnsafePointer(to: &sa) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard rc == 0 else { return Response(status: 0, body: "connect failed: \(errno)") }
        var req = "\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nAuthorization: Bearer \(token)\r\n"
        let bytes = Array((body ?? "").utf8)
        if body != nil { req += "Content-Type: application/json\r\nContent-Length: \(bytes.count)\r\n" }
        let all = Array((req + "\r\n").utf8) + bytes
        var off = 0
        while off < all.count {
            let n = all[off...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { break }
            off += n
        }
        var data = [UInt8]()
        var buf = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = recv(fd, &buf, buf.count, 0)
            if n <= 0 { break }
            data += buf[0..<n]
        }
        let text = String(decoding: data, as: UTF8.self)
        guard let split = text.range(of: "\r\n\r\n") else { return Response(status: 0, body: text) }
        let status = Int(text[..<split.lowerBound].split(separator: " ").dropFirst().first ?? "") ?? 0
        return Response(status: status, body: String(text[split.upperBound...]))
    }
}

/// Polls `condition` every 20 ms for up to `timeout` seconds.
func eventually(timeout: Double = 15, _ condition: () -> Bool) -> Bool {
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline {
        if condition() { return true }
        usleep(20_000)
    }
    return condition()
}
