// Alert rules through the API of a real collector: created (201), listed
// with their state, read, replaced (version grows, redacted secrets sent
// back keep the stored ones), deleted; every faulty field named in a 422;
// unknown projects and rules 404; each change audited; secrets never in an
// answer or the log.
import Foundation
import XCTest

final class APIAlertRuleTests: XCTestCase {
    var c: CollectorProcess!

    override func setUpWithError() throws {
        c = try CollectorProcess()
        _ = c.createKey(project: "acme")
    }

    override func tearDown() {
        c.stop()
        c.removeDirectory()
    }

    let rule = #"""
    {"name":"checkout slow","condition":{"kind":"measurement","monitor":"stripe","check":"create_charge","statistic":"p95",
     "window_s":300,"threshold":800,"resolve_threshold":600},"for_s":60,"labels":{"team":"payments"},
     "receivers":[{"type":"webhook","url":"https://hooks.example/services/T0/B0/TOPSECRET","format":"slack"},
                  {"type":"email","url":"smtp://127.0.0.1:2525","from":"vigil@example.org","to":["ops@example.org"],"password":"hunter2"}]}
    """#

    func testRulesAreCreatedListedReplacedAndDeletedWithSecretsRedacted() throws {
        let created = c.api("POST", "/projects/acme/alerts", body: rule)
        XCTAssertEqual(created.status, 201, created.body)
        let id = try XCTUnwrap(created.object["id"] as? Int)
        XCTAssertEqual(created.object["version"] as? Int, 1)
        XCTAssertEqual((created.object["state"] as? [String: Any])?["state"] as? String, "ok")
        let doc = try XCTUnwrap(created.object["rule"] as? [String: Any])
        XCTAssertEqual((doc["condition"] as? [String: Any])?["op"] as? String, ">", "defaults explicit")
        XCTAssertEqual(doc["max_per_hour"] as? Int, 20)

        let list = c.api("GET", "/projects/acme/alerts")
        XCTAssertEqual(list.status, 200, list.body)
        XCTAssertEqual((list.object["alerts"] as? [[String: Any]])?.count, 1)
        for answer in [created.body, list.body, c.api("GET", "/projects/acme/alerts/\(id)").body] {
            XCTAssertFalse(answer.contains("TOPSECRET"), answer)
            XCTAssertFalse(answer.contains("hunter2"), answer)
            XCTAssertTrue(answer.contains("https://hooks.example/[redacted]"), answer)
        }

        // A second rule of the same name is refused, naming the field.
        let twice = c.api("POST", "/projects/acme/alerts", body: rule)
        XCTAssertEqual(twice.status, 422, twice.body)
        XCTAssertNotNil((twice.object["detail"] as? [String: Any])?["name"], twice.body)

        // GET, edit the name, PUT back: version 2, secrets kept (checked in the store through the redacted answer).
        let got = c.api("GET", "/projects/acme/alerts/\(id)")
        var edited = try XCTUnwrap(got.object["rule"] as? [String: Any])
        edited["name"] = "checkout very slow"
        let body = String(decoding: try JSONSerialization.data(withJSONObject: edited), as: UTF8.self)
        let put = c.api("PUT", "/projects/acme/alerts/\(id)", body: body)
        XCTAssertEqual(put.status, 200, put.body)
        XCTAssertEqual(put.object["version"] as? Int, 2)
        XCTAssertEqual((put.object["rule"] as? [String: Any])?["name"] as? String, "checkout very slow")
        // The database and its write-ahead log, as bytes.
        let stored = ["", "-wal"].map { (try? String(contentsOfFile: c.dataDir + "/vigil.db" + $0, encoding: .isoLatin1)) ?? "" }.joined()
        XCTAssertTrue(stored.contains("TOPSECRET") && stored.contains("hunter2"), "the stored rule keeps its secrets")
        XCTAssertFalse(c.log.contains("TOPSECRET") || c.log.contains("hunter2"), "no secret in the log")

        XCTAssertEqual(c.api("DELETE", "/projects/acme/alerts/\(id)").status, 200)
        XCTAssertEqual(c.api("GET", "/projects/acme/alerts/\(id)").status, 404)
        XCTAssertEqual(c.api("DELETE", "/projects/acme/alerts/\(id)").status, 404)

        let audit = c.api("GET", "/audit?target=acme").object["audit"] as? [[String: Any]] ?? []
        let actions = audit.compactMap { $0["action"] as? String }
        for a in ["alerts.create", "alerts.update", "alerts.delete"] { XCTAssertTrue(actions.contains(a), "\(a) not audited: \(actions)") }
    }

    func testFaultyRulesAreRefusedNamingEveryField() {
        let bad = c.api("POST", "/projects/acme/alerts",
                        body: #"{"name":"x","for_s":"soon","condition":{"kind":"agent_state","state":"asleep"},"receivers":[{"type":"pager"}]}"#)
        XCTAssertEqual(bad.status, 422, bad.body)
        let detail = bad.object["detail"] as? [String: Any] ?? [:]
        XCTAssertEqual(Set(detail.keys), ["for_s", "condition.state", "receivers[0].type"], bad.body)
        XCTAssertEqual(c.api("POST", "/projects/acme/alerts", body: "[]").status, 400)
        XCTAssertEqual(c.api("POST", "/projects/nope/alerts", body: rule).status, 404)
        XCTAssertEqual(c.api("GET", "/projects/nope/alerts").status, 404)
        XCTAssertEqual(c.api("GET", "/projects/acme/alerts/abc").status, 404)
        XCTAssertEqual(c.api("PUT", "/projects/acme/alerts/99", body: rule).status, 404)
    }
}
