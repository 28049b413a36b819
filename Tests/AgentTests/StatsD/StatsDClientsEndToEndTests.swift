// StatsD from real client libraries (PyPI's `statsd` and `datadog`, which
// scripts/test.sh installs) to a real agent process and a real collector,
// observed only through the collector's HTTP API: what the clients send
// arrives as `statsd` measurements with the right counts and values, the
// DogStatsD event and service check are counted, and `metric` rules put
// through the API narrow what is kept.
import Foundation
import XCTest
@testable import Agent

final class StatsDClientsEndToEndTests: XCTestCase {
    typealias System = RealCollectorTests.System
    let project = "statsd"

    /// What the two clients send (each call one datagram, the pipeline one
    /// datagram of three lines), through their documented APIs.
    static let clients = """
    import sys, statsd
    from datadog import DogStatsd
    port = int(sys.argv[1])
    c = statsd.StatsClient('127.0.0.1', port, prefix='shop')
    c.incr('orders'); c.incr('orders', 4); c.decr('orders')
    c.gauge('queue', 10); c.gauge('queue', 5, delta=True); c.gauge('queue', -3, delta=True)
    c.timing('render', 12.5)
    c.set('visitors', 'alice'); c.set('visitors', 'bob'); c.set('visitors', 'alice')
    with c.pipeline() as p:
        p.incr('batched'); p.incr('batched'); p.timing('render', 20)
    d = DogStatsd(host='127.0.0.1', port=port, disable_telemetry=True)
    d.increment('dd.requests', tags=['env:test', 'region:eu'])
    d.increment('dd.requests', 2, tags=['region:eu', 'env:test'])
    d.distribution('dd.latency', 42, tags=['env:test'])
    d.histogram('dd.size', 1000)
    d.gauge('dd.temp', 21.5)
    d.event('Deploy', 'version 2 rolled out', tags=['env:test'])
    d.service_check('dd.db', DogStatsd.OK)
    d.flush()
    """

    func sendWithClients(port: UInt16) throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3", "-c", Self.clients, "\(port)"]
        let err = Pipe()
        p.standardError = err
        try p.run()
        p.waitUntilExit()
        let message = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        XCTAssertEqual(p.terminationStatus, 0, "the clients failed (scripts/test.sh installs statsd and datadog): \(message)")
    }

    /// The statsd measurements, summed per (monitor, check): count, sum_ms,
    /// and the latest window's row.
    func series(_ s: System) -> [String: (count: Int, sum: Double, last: [String: Any])] {
        let rows = s.collector.api("GET", "/measurements?project=\(project)&source=statsd&limit=10000")
            .object["measurements"] as? [[String: Any]] ?? []
        var out: [String: (count: Int, sum: Double, last: [String: Any])] = [:]
        // Newest first: the first row of a key is its latest window.
        for r in rows {
            let key = "\(r["monitor"] as? String ?? "") \(r["check"] as? String ?? "")"
            let count = r["count"] as? Int ?? 0, sum = (r["sum_ms"] as? NSNumber)?.doubleValue ?? 0
            if let e = out[key] { out[key] = (e.count + count, e.sum + sum, e.last) } else { out[key] = (count, sum, r) }
        }
        return out
    }

    func testWhatRealClientsSendArrivesAsMeasurements() throws {
        let s = try System(project: project)
        let port = freeUDPPort()
        try s.startAgent(["statsd_port": "\(port)"])
        try sendWithClients(port: port)
        XCTAssertTrue(eventually { self.series(s).count == 9 && self.series(s)["shop.orders counter"]?.count == 4 },
                      "\(series(s).keys.sorted())\n\(s.agent?.stderr ?? "")")
        XCTAssertTrue(eventually { s.collector.counter(agent: s.agentID, "statsd_lines") == 18 })
        let m = series(s)
        XCTAssertEqual(m["shop.orders counter"]?.count, 4, "1 + 4 - 1")
        XCTAssertEqual(m["shop.batched counter"]?.count, 2, "a pipeline's datagram of several lines")
        XCTAssertEqual(m["shop.visitors set"]?.count, 2, "distinct members")
        XCTAssertEqual(m["shop.render timer"]?.count, 2)
        XCTAssertEqual(m["shop.render timer"]?.sum ?? 0, 32.5, accuracy: 0.5)
        XCTAssertEqual(m["shop.queue gauge"]?.count, 3)
        XCTAssertEqual(m["dd.requests counter,env:test,region:eu"]?.count, 3, "tags in either order: one series")
        XCTAssertEqual(m["dd.latency distribution,env:test"]?.count, 1)
        XCTAssertEqual((m["dd.latency distribution,env:test"]?.last["p50_ms"] as? NSNumber)?.doubleValue ?? 0, 42, accuracy: 0.5)
        XCTAssertEqual((m["dd.size histogram"]?.last["max_ms"] as? NSNumber)?.doubleValue ?? 0, 1000, accuracy: 10)
        XCTAssertEqual((m["dd.temp gauge"]?.last["p50_ms"] as? NSNumber)?.doubleValue, 21.5, "a gauge's last value")
        XCTAssertEqual(s.collector.counter(agent: s.agentID, "statsd_events"), 1)
        XCTAssertEqual(s.collector.counter(agent: s.agentID, "statsd_service_checks"), 1)
        XCTAssertEqual(s.collector.counter(agent: s.agentID, "statsd_drops_parse"), 0)
        XCTAssertEqual(s.collector.counter(agent: s.agentID, "statsd_drops_kernel"), 0)
        s.stopAgent()
    }

    func testMetricRulesFromTheAPINarrowWhatIsKept() throws {
        let s = try System(project: project)
        let r = s.collector.api("PUT", "/projects/\(project)/patterns",
                                body: #"{"patterns":[{"metric":"shop.visitors","exclude":true},{"metric":"shop.*"}]}"#)
        XCTAssertEqual(r.status, 200, r.body)
        let port = freeUDPPort()
        try s.startAgent(["statsd_port": "\(port)"])
        s.waitForRules(2)
        try sendWithClients(port: port)
        XCTAssertTrue(eventually { s.collector.counter(agent: s.agentID, "statsd_lines") == 18 })
        XCTAssertTrue(eventually { self.series(s)["shop.orders counter"]?.count == 4 })
        XCTAssertEqual(series(s).keys.sorted(), ["shop.batched counter", "shop.orders counter", "shop.queue gauge",
                                                 "shop.render timer"])
        XCTAssertEqual(s.collector.counter(agent: s.agentID, "statsd_drops_excluded"), 3, "the three visitors lines")
        XCTAssertEqual(s.collector.counter(agent: s.agentID, "statsd_drops_unmatched"), 5, "the five dd.* lines")
        s.stopAgent()
    }
}
