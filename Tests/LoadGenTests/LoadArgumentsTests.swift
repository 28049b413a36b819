import XCTest
import Reactor
import Wire
@testable import LoadGen

final class LoadArgumentsTests: XCTestCase {
    let key = "demo.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA.AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE"

    func parse(_ args: [String], files: [String: String] = [:]) throws -> LoadCommand {
        try LoadArguments.parse(args, readFile: { files[$0] })
    }

    func options(_ args: [String]) throws -> LoadOptions {
        guard case .run(let o) = try parse(args) else { XCTFail("not a run"); throw UsageError("") }
        return o
    }

    func usageError(_ args: [String], files: [String: String] = [:]) -> String {
        do {
            _ = try parse(args, files: files)
            XCTFail("accepted \(args)")
            return ""
        } catch {
            return (error as? UsageError)?.message ?? "\(error)"
        }
    }

    func testDefaultsPerMode() throws {
        let d = try options(["density", "--key", key])
        XCTAssertEqual(d.mode, .density)
        XCTAssertEqual(d.agents, 10_000)
        XCTAssertEqual(d.items, 10)
        XCTAssertEqual(d.statusInterval, 10)
        XCTAssertEqual(d.batchInterval, 10)
        XCTAssertEqual(d.collectors, [try SocketAddress(ip: "127.0.0.1", port: 6600)])
        XCTAssertEqual(d.accessKey.projectID, "demo")
        XCTAssertEqual(d.sources, .auto)
        XCTAssertNil(d.ledgerPath)
        let i = try options(["ingest", "--key", key])
        XCTAssertEqual(i.mode, .ingest)
        XCTAssertEqual(i.agents, 50)
        XCTAssertEqual(i.items, 100)
        XCTAssertEqual(i.inflight, 8)
    }

    func testEveryOptionBothSpellings() throws {
        let o = try options(["density", "--key=" + key, "--collector", "127.0.0.1:7000,127.0.0.2",
                             "--agents", "100_000", "--rate=5000", "--max-pending", "200", "--sources", "127.0.0.1-127.0.0.4",
                             "--duration", "12.5", "--ramp-timeout", "60", "--status-interval", "2", "--batch-interval", "3",
                             "--items", "7", "--inflight", "16", "--silence", "4", "--connect-timeout", "3",
                             "--reconnect-min", "0.1", "--reconnect-max", "0.4", "--drain", "1", "--ledger", "/tmp/l",
                             "--prefix", "soak", "--report-interval", "0", "--json", "/tmp/j", "--seed", "42"])
        XCTAssertEqual(o.collectors, [try SocketAddress(ip: "127.0.0.1", port: 7000), try SocketAddress(ip: "127.0.0.2", port: 6600)])
        XCTAssertEqual(o.agents, 100_000)
        XCTAssertEqual(o.rate, 5000)
        XCTAssertEqual(o.maxPending, 200)
        XCTAssertEqual(o.sources, .list((1...4).map { try! SocketAddress(ip: "127.0.0.\($0)", port: 0) }))
        XCTAssertEqual(o.duration, 12.5)
        XCTAssertEqual(o.rampTimeout, 60)
        XCTAssertEqual(o.statusInterval, 2)
        XCTAssertEqual(o.batchInterval, 3)
        XCTAssertEqual(o.items, 7)
        XCTAssertEqual(o.inflight, 16)
        XCTAssertEqual(o.silence, 4)
        XCTAssertEqual(o.connectTimeout, 3)
        XCTAssertEqual(o.reconnectMin, 0.1)
        XCTAssertEqual(o.reconnectMax, 0.4)
        XCTAssertEqual(o.drain, 1)
        XCTAssertEqual(o.ledgerPath, "/tmp/l")
        XCTAssertEqual(o.prefix, "soak")
        XCTAssertEqual(o.reportInterval, 0)
        XCTAssertEqual(o.jsonPath, "/tmp/j")
        XCTAssertEqual(o.seed, 42)
    }

    func testKeyFromFileIsTrimmed() throws {
        guard case .run(let o) = try parse(["ingest", "--key-file", "/k"], files: ["/k": key + "\n"]) else { return XCTFail() }
        XCTAssertEqual(o.accessKey.text, key)
        XCTAssertTrue(usageError(["ingest", "--key-file", "/missing"]).contains("cannot read '/missing'"))
    }

    func testErrorsNameTheOptionAndWhatWasExpected() {
        XCTAssertTrue(usageError([]).contains("no command"))
        XCTAssertEqual(usageError(["dencity", "--key", key]),
                       "unknown command 'dencity' (did you mean 'density'?); expected density, ingest, verify or e2e")
        XCTAssertTrue(usageError(["density"]).contains("access key is required"))
        XCTAssertTrue(usageError(["density", "--key", "nodot"]).hasPrefix("--key: not an access key"))
        XCTAssertEqual(usageError(["density", "--key", key, "--agnets", "5"]), "unknown option '--agnets' (did you mean '--agents'?)")
        XCTAssertEqual(usageError(["density", "--key", key, "--agents", "0"]), "--agents: expected an integer 1...1000000, got '0'")
        XCTAssertEqual(usageError(["density", "--key", key, "--agents", "lots"]), "--agents: expected an integer 1...1000000, got 'lots'")
        XCTAssertEqual(usageError(["density", "--key", key, "--rate", "-3"]), "--rate: expected a number 0.1...1000000, got '-3'")
        XCTAssertEqual(usageError(["density", "--key", key, "--agents"]), "--agents needs a value")
        XCTAssertEqual(usageError(["density", "--key", key, "stray"]), "unexpected argument 'stray' (options start with --)")
        XCTAssertTrue(usageError(["density", "--key", key, "--collector", "example.com:6600"]).contains("host names are not resolved"))
        XCTAssertTrue(usageError(["density", "--key", key, "--sources", "127.0.0.9-127.0.0.3"]).hasPrefix("--sources: expected auto"))
        XCTAssertTrue(usageError(["density", "--key", key, "--sources", "127.0.0.1-127.0.1.3"]).hasPrefix("--sources: expected auto"))
        XCTAssertEqual(usageError(["density", "--key", key, "--reconnect-min", "3", "--reconnect-max", "1"]),
                       "--reconnect-min (3.0) is above --reconnect-max (1.0)")
        XCTAssertTrue(usageError(["density", "--key", key, "--prefix", "a b"]).hasPrefix("--prefix: expected"))
        XCTAssertEqual(usageError(["verify", "--db", "x"]), "verify needs --ledger FILE")
        XCTAssertTrue(usageError(["verify", "--ledger", "l"]).hasPrefix("verify needs at least one --db"))
        XCTAssertEqual(usageError(["verify", "--ledger", "l", "--agents", "3"]), "unknown option '--agents'")
    }

    func testHelpAndVerify() throws {
        XCTAssertEqual(try parse(["--help"]), .help)
        XCTAssertEqual(try parse(["density", "--agents", "3", "-h"]), .help)
        XCTAssertEqual(try parse(["verify", "--ledger", "l", "--db", "a.db", "--db=b.db"]),
                       .verify(VerifyOptions(ledgerPath: "l", databases: ["a.db", "b.db"])))
        XCTAssertEqual(try parse(["verify", "--ledger", "l", "--shared-db", "c.db"]),
                       .verify(VerifyOptions(ledgerPath: "l", databases: ["c.db"], shared: true)))
        XCTAssertTrue(usageError(["verify", "--ledger", "l", "--shared-db", "c.db", "--db", "a.db"]).hasPrefix("verify takes either one --shared-db"))
        XCTAssertTrue(HelpText.usage.contains("--max-pending"))
    }

    func testE2EOptions() throws {
        guard case .e2e(let o) = try parse(["e2e", "--udp", "127.0.0.1:51800", "--db", "/d/vigil.db", "--rate", "500",
                                            "--window-ms", "1000", "--check", "p2"]) else { return XCTFail() }
        XCTAssertEqual(o.udp, try SocketAddress(ip: "127.0.0.1", port: 51800))
        XCTAssertEqual(o.database, "/d/vigil.db")
        XCTAssertEqual(o.rate, 500)
        XCTAssertEqual(o.windowMs, 1000)
        XCTAssertEqual(o.monitor, "e2e")
        XCTAssertEqual(o.check, "p2")
        XCTAssertEqual(usageError(["e2e", "--db", "x"]), "e2e needs --udp IP:PORT (the agent's ipa_port)")
        XCTAssertEqual(usageError(["e2e", "--udp", "127.0.0.1:1", "--db", "x", "--window-ms", "5"]),
                       "--window-ms: expected an integer 100...3600000, got '5'")
    }

    func testSourcesResolve() throws {
        XCTAssertEqual(SourceSpec.auto.resolve(agents: 10_000, portsPerSource: 25_000), [], "one address is enough: the kernel picks")
        let four = SourceSpec.auto.resolve(agents: 100_000, portsPerSource: 25_000)
        XCTAssertEqual(four.map(\.ip), ["127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.4"])
        XCTAssertTrue(four.allSatisfy { $0.port == 0 })
        XCTAssertEqual(SourceSpec.auto.resolve(agents: 100_001, portsPerSource: 25_000).count, 5)
        let listed = SourceSpec.list([try SocketAddress(ip: "127.0.0.7", port: 0)])
        XCTAssertEqual(listed.resolve(agents: 1, portsPerSource: 25_000).map(\.ip), ["127.0.0.7"])
        XCTAssertEqual(try LoadArguments.sourceList("127.0.0.5,127.0.0.9").map(\.ip), ["127.0.0.5", "127.0.0.9"])
    }
}
