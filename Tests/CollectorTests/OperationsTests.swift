// Operating the real collector: configuration errors, keys created and
// revoked while it runs, SIGHUP with a good and a broken file, help.
import Foundation
import Glibc
import XCTest
import Wire

final class OperationsTests: XCTestCase {
    /// Three different mistakes in one file, one of them found only by a
    /// check beyond the key's type: all three in one run.
    func testEveryConfigurationFileErrorIsReportedInOneRun() throws {
        let dir = CollectorProcess.makeDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("three.conf").path
        try "listen = example.com:6600\nmax_clients = lots\nbogus = 1\n".write(toFile: path, atomically: true, encoding: .utf8)
        let r = runCollectorCommand(["check-config", "--config", path])
        XCTAssertEqual(r.status, 2, r.err)
        XCTAssertTrue(r.err.contains("\(path):1: key 'listen': expected an IP address and port"), r.err)
        XCTAssertTrue(r.err.contains("\(path):2: key 'max_clients': expected an integer"), r.err)
        XCTAssertTrue(r.err.contains("\(path):3: unknown key 'bogus'"), r.err)
    }

    func testConfigurationErrorsNameFileLineAndKeyAndExitBeforeListening() throws {
        let dir = CollectorProcess.makeDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("bad.conf").path
        // A port nobody else uses in this test: the collector must not bind it.
        let port = 20000 + Int(getpid() % 20000)
        try """
        # collector
        listen = 127.0.0.1:\(port)
        max_clients = lots
        sesion_idle_timeout_ms = 5s
        log_format = xml
        data_dir = \(dir.path)/data
        """.write(toFile: path, atomically: true, encoding: .utf8)

        for command in [["run"], ["check-config"]] {
            let r = runCollectorCommand(command + ["--config", path])
            XCTAssertEqual(r.status, 2, r.err)
            XCTAssertTrue(r.err.contains("\(path):3: key 'max_clients': expected an integer 1...1000000, got \"lots\""), r.err)
            XCTAssertTrue(r.err.contains("\(path):4: unknown key 'sesion_idle_timeout_ms' (did you mean 'session_idle_timeout_ms'?)"), r.err)
            XCTAssertTrue(r.err.contains("\(path):5: key 'log_format': expected one of text, json, got \"xml\""), r.err)
            XCTAssertFalse(r.err.contains("listening on"), r.err)
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.path + "/data"), "nothing was opened")

        // --set names itself as the origin; a host name cannot be listened on.
        var r = runCollectorCommand(["check-config", "--set", "backlog=0"])
        XCTAssertEqual(r.status, 2)
        XCTAssertTrue(r.err.contains("--set: key 'backlog': expected an integer 1...65535, got \"0\""), r.err)
        r = runCollectorCommand(["check-config", "--set", "listen=example.com:6600"])
        XCTAssertEqual(r.status, 2)
        XCTAssertTrue(r.err.contains("--set: key 'listen': expected an IP address and port"), r.err)

        r = runCollectorCommand(["check-config", "--config", dir.path + "/missing.conf"])
        XCTAssertEqual(r.status, 2)
        XCTAssertTrue(r.err.contains("missing.conf: cannot read"), r.err)

        // A valid file prints every key with its origin, secrets redacted.
        try "admin_token = s3cret-token-value\nmax_clients = 12\n".write(toFile: path, atomically: true, encoding: .utf8)
        r = runCollectorCommand(["check-config", "--config", path])
        XCTAssertEqual(r.status, 0, r.err)
        XCTAssertTrue(r.out.contains("max_clients = 12  # file \(path):2"), r.out)
        XCTAssertTrue(r.out.contains("admin_token = <redacted>"), r.out)
        XCTAssertFalse(r.out.contains("s3cret"), r.out)

        // Usage errors and help.
        r = runCollectorCommand(["rnu"])
        XCTAssertEqual(r.status, 2)
        XCTAssertTrue(r.err.contains("unknown command 'rnu' (did you mean 'run'?)"), r.err)
        r = runCollectorCommand(["keys", "create"])
        XCTAssertEqual(r.status, 2)
        XCTAssertTrue(r.err.contains("'keys create' needs --project NAME"), r.err)
        r = runCollectorCommand(["--help"])
        XCTAssertEqual(r.status, 0)
        for text in ["keys create --project NAME", "session_idle_timeout_ms", "SIGHUP", "admin_token", "exit status",
                     "agent_retention_days"] {
            XCTAssertTrue(r.out.contains(text), text)
        }
    }

    func testVersionSubcommandHelpAndExitStatuses() {
        var r = runCollectorCommand(["--version"])
        XCTAssertEqual(r.status, 0, r.err)
        XCTAssertTrue(r.out.hasPrefix("vigil-collector "), r.out)
        XCTAssertEqual(r.out.split(separator: "\n").count, 1, r.out)

        // A command's --help is that command's, not the global one.
        r = runCollectorCommand(["keys", "create", "--help"])
        XCTAssertEqual(r.status, 0, r.err)
        XCTAssertTrue(r.out.contains("vigil-collector keys create --project NAME [--create-project]"), r.out)
        XCTAssertTrue(r.out.contains("exit status: 0 success, 1 runtime failure"), r.out)
        XCTAssertFalse(r.out.contains("keys revoke"), r.out)
        XCTAssertFalse(r.out.contains("session_idle_timeout_ms"), r.out)
        r = runCollectorCommand(["check-config", "--help"])
        XCTAssertEqual(r.status, 0)
        XCTAssertTrue(r.out.contains("vigil-collector check-config [--config FILE]"), r.out)
        XCTAssertFalse(r.out.contains("keys create"), r.out)
        r = runCollectorCommand(["--help"])
        XCTAssertTrue(r.out.contains("keys revoke") && r.out.contains("--version") && r.out.contains("[--create-project]"), r.out)
        XCTAssertTrue(r.out.contains("exit status: 0 success, 1 runtime failure (database, socket), 2 usage or configuration error"), r.out)
    }

    func testListenAndHTTPListenMayNotShareAnAddressAndPort() {
        var r = runCollectorCommand(["check-config", "--set", "listen=127.0.0.1:16600", "--set", "http_listen=127.0.0.1:16600"])
        XCTAssertEqual(r.status, 2, r.out)
        XCTAssertTrue(r.err.contains("--set: key 'http_listen': expected an address and port other than listen's (127.0.0.1:16600)"), r.err)
        // A wildcard covers the loopback address on the same port.
        r = runCollectorCommand(["check-config", "--set", "listen=0.0.0.0:16600", "--set", "http_listen=127.0.0.1:16600"])
        XCTAssertEqual(r.status, 2, r.out)
        XCTAssertTrue(r.err.contains("'http_listen'") && r.err.contains("listen's (0.0.0.0:16600)"), r.err)
        // Different ports, and port 0 (any free port), are fine.
        for pair in [("127.0.0.1:16600", "127.0.0.1:16680"), ("127.0.0.1:0", "127.0.0.1:0")] {
            r = runCollectorCommand(["check-config", "--set", "listen=\(pair.0)", "--set", "http_listen=\(pair.1)"])
            XCTAssertEqual(r.status, 0, r.err)
        }
    }

    func testTheCollectorKeyIsKeptAndABadOneStopsTheStart() throws {
        let c = try CollectorProcess()
        let published = c.createKey(project: "acme").collectorKey
        XCTAssertEqual(c.collectorPublicKey, published, "keys create and the running collector use one key")
        XCTAssertTrue(c.log.contains("collector key"), c.log)
        c.stop()
        let file = c.dataDir + "/collector_key"
        defer { c.removeDirectory() }
        chmod(file, 0o640)
        var r = runCollectorCommand(["run", "--config", c.configPath])
        XCTAssertEqual(r.status, 1, r.err)
        XCTAssertTrue(r.err.contains("key file \(file) is readable by group or others (mode 0640)"), r.err)
        XCTAssertTrue(FileManager.default.createFile(atPath: file, contents: Data("short\n".utf8)))
        chmod(file, 0o600)      // createFile replaces the file, with 0644
        r = runCollectorCommand(["run", "--config", c.configPath])
        XCTAssertEqual(r.status, 1, r.err)
        XCTAssertTrue(r.err.contains("key file \(file) is corrupt"), r.err)
    }

    func testKeysCreateRefusesAnUnknownProjectUnlessAskedToCreateIt() throws {
        let dir = CollectorProcess.makeDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let data = "data_dir=\(dir.path)/data"
        var r = runCollectorCommand(["keys", "create", "--project", "shop", "--set", data])
        XCTAssertEqual(r.status, 2, r.err)
        XCTAssertEqual(r.out, "", "no key printed")
        XCTAssertTrue(r.err.contains("project 'shop' does not exist (no project exists yet); pass --create-project to create it"), r.err)
        r = runCollectorCommand(["keys", "create", "--project", "shop", "--create-project", "--set", data])
        XCTAssertEqual(r.status, 0, r.err)
        // The documented form (docs/PROTOCOL.md §11, docs/AGENT.md): the project's name, a dot,
        // 43 base64url characters (the secret), a dot, 43 more (the collector's public key), and a
        // newline; nothing else on stdout.
        let parts = r.out.dropFirst("shop.".count).dropLast().split(separator: ".", omittingEmptySubsequences: false)
        XCTAssertTrue(r.out.hasPrefix("shop.") && r.out.hasSuffix("\n"), r.out)
        XCTAssertEqual(parts.map(\.count), [43, 43], r.out)
        XCTAssertTrue(parts.joined().allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_") }, r.out)
        // The collector key is the installation's, from data_dir/collector_key (0600).
        let keyFile = dir.path + "/data/collector_key"
        XCTAssertEqual(String(parts[1]), try StaticKeyFile.load(path: keyFile).publicText)
        XCTAssertEqual((try FileManager.default.attributesOfItem(atPath: keyFile)[.posixPermissions] as? NSNumber)?.intValue, 0o600)
        // An existing project needs no flag; a misspelt one is refused and named.
        r = runCollectorCommand(["keys", "create", "--project", "shop", "--set", data])
        XCTAssertEqual(r.status, 0, r.err)
        r = runCollectorCommand(["keys", "create", "--set", data, "--project", "shpo"])
        XCTAssertEqual(r.status, 2, r.err)
        XCTAssertTrue(r.err.contains("project 'shpo' does not exist (projects: shop); pass --create-project"), r.err)
        r = runCollectorCommand(["keys", "list", "--set", data])
        XCTAssertEqual(r.out.split(separator: "\n").count, 3, "two keys, both for shop: \(r.out)")
        XCTAssertFalse(r.out.contains("shpo"), r.out)
    }

    func testKeysCreatedAndRevokedWhileRunningApplyAtTheNextHandshake() throws {
        let c = try CollectorProcess()
        defer { c.stop(); c.removeDirectory() }
        // The project does not exist yet.
        let early = try WireTestClient(port: c.sessionPort, key: c.foreignKey(project: "live"), hello: WireTestClient.hello("x"))
        XCTAssertNil(early.handshake())
        let unknownSince = Date()
        // Asked again within the negative cache's second: answered without a store read.
        let early2 = try WireTestClient(port: c.sessionPort, key: c.foreignKey(project: "live"), hello: WireTestClient.hello("x"))
        XCTAssertNil(early2.handshake())
        XCTAssertTrue(c.eventually { c.metric("vigil_key_lookups_total{kind=\"negative_cache\"}") == 1 })
        XCTAssertEqual(c.metric("vigil_key_lookups_total{kind=\"read\"}"), 1)

        let k1 = c.createKey(project: "live")
        let k2 = c.createKey(project: "live")
        XCTAssertNotEqual(k1, k2)
        // A new project is seen once the negative answer has expired (1 s, docs/API.md).
        let left = 1.1 - Date().timeIntervalSince(unknownSince)
        if left > 0 { usleep(useconds_t(left * 1e6)) }
        let a = try WireTestClient(port: c.sessionPort, key: k1, hello: WireTestClient.hello("a"))
        XCTAssertNotNil(a.handshake(), "a key created by another process works without a restart")
        let b = try WireTestClient(port: c.sessionPort, key: k2, hello: WireTestClient.hello("b"))
        XCTAssertNotNil(b.handshake(), "any active key of the project is accepted")

        let list = runCollectorCommand(["keys", "list", "--config", c.configPath])
        XCTAssertEqual(list.status, 0)
        XCTAssertEqual(list.out.split(separator: "\n").count, 3, list.out)
        XCTAssertFalse(list.out.contains(Base64URL.encode(k1.secret.bytes)))

        let revoke = runCollectorCommand(["keys", "revoke", "1", "--config", c.configPath])
        XCTAssertEqual(revoke.status, 0, revoke.err)
        let again = try WireTestClient(port: c.sessionPort, key: k1, hello: WireTestClient.hello("a2"))
        XCTAssertNil(again.handshake())
        XCTAssertEqual(again.peerError?.message, "access key revoked")
        let other = try WireTestClient(port: c.sessionPort, key: k2, hello: WireTestClient.hello("b2"))
        XCTAssertNotNil(other.handshake(), "the other key still works")
        XCTAssertTrue(runCollectorCommand(["keys", "list", "--project", "live", "--config", c.configPath]).out
            .split(separator: "\n")[1].hasSuffix("Z"), "the revoked key shows its revocation time")
        XCTAssertEqual(runCollectorCommand(["keys", "revoke", "99", "--config", c.configPath]).status, 1)
        XCTAssertEqual(runCollectorCommand(["keys", "create", "--project", "bad/name", "--config", c.configPath]).status, 2)

        // The CLI's actions are audited too.
        let audit = c.api("GET", "/audit?target=live").object["audit"] as? [[String: Any]] ?? []
        XCTAssertEqual(audit.compactMap { $0["action"] as? String }.sorted(), ["keys.create", "keys.create", "keys.revoke"])
    }

    func testSIGHUPAppliesLiveKeysAndRejectsABrokenFile() throws {
        let c = try CollectorProcess(config: ["max_clients = 5", "admin_token = first-token-0123456789"])
        defer { c.stop(); c.removeDirectory() }
        XCTAssertEqual(c.token, "")
        func maxClients(_ token: String) -> String? {
            let r = c.http("GET", "/api/v1/config", token: token)
            return (r.object["config"] as? [[String: Any]])?.first { $0["key"] as? String == "max_clients" }?["value"] as? String
        }
        XCTAssertEqual(maxClients("first-token-0123456789"), "5")
        let config = c.http("GET", "/api/v1/config", token: "first-token-0123456789").body
        XCTAssertTrue(config.contains("<redacted>") && !config.contains("first-token"), config)

        let base = try String(contentsOfFile: c.configPath, encoding: .utf8)
        // Broken: the running configuration stays.
        try (base + "max_clients = many\n").write(toFile: c.configPath, atomically: true, encoding: .utf8)
        c.signal(SIGHUP)
        XCTAssertTrue(c.waitForLog("configuration rejected"))
        XCTAssertTrue(c.log.contains("collector.conf:6: key 'max_clients': set twice (first at line 4)"), c.log)
        XCTAssertEqual(maxClients("first-token-0123456789"), "5")
        XCTAssertEqual(c.metric("vigil_max_clients"), 5)
        XCTAssertEqual(c.metric("vigil_config_reloads_total{result=\"rejected\"}"), 1)

        // Good: live keys apply, a restart-only key is reported and kept.
        let updated = base.replacingOccurrences(of: "max_clients = 5", with: "max_clients = 7")
            .replacingOccurrences(of: "first-token-0123456789", with: "second-token-0123456789") + "backlog = 100\n"
        try updated.write(toFile: c.configPath, atomically: true, encoding: .utf8)
        c.signal(SIGHUP)
        XCTAssertTrue(c.waitForLog("configuration reloaded"))
        XCTAssertEqual(c.metric("vigil_max_clients"), 7)
        XCTAssertEqual(c.http("GET", "/api/v1/agents", token: "first-token-0123456789").status, 401)
        XCTAssertEqual(maxClients("second-token-0123456789"), "7")
        XCTAssertTrue(c.log.contains("backlog changed but takes effect only after a restart"), c.log)
        XCTAssertTrue(c.process.isRunning)
    }
}
