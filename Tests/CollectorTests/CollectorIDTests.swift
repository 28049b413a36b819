// The default collector id: the host name and the agent listen port, with
// the address when `listen` names one — collectors of one host sharing a
// port on different addresses must not share an id (ownership, NOTIFY
// channels and leases are keyed by it).
import XCTest
@testable import Collector

final class CollectorIDTests: XCTestCase {
    func testTheDefaultIdNamesTheAddressUnlessBoundToAll() {
        XCTAssertEqual(ClusterNode.collectorID(configured: "", hostName: "web-a", listen: "0.0.0.0:6600"), "web-a-6600")
        XCTAssertEqual(ClusterNode.collectorID(configured: "", hostName: "web-a", listen: "[::]:6600"), "web-a-6600")
        XCTAssertEqual(ClusterNode.collectorID(configured: "", hostName: "web-a", listen: "127.0.0.2:6600"), "web-a-127.0.0.2-6600")
        XCTAssertNotEqual(ClusterNode.collectorID(configured: "", hostName: "h", listen: "127.0.0.1:6600"),
                          ClusterNode.collectorID(configured: "", hostName: "h", listen: "127.0.0.2:6600"))
        XCTAssertEqual(ClusterNode.collectorID(configured: "", hostName: "web-a", listen: "[::1]:6600"), "web-a---1-6600")
        XCTAssertEqual(ClusterNode.collectorID(configured: "c1", hostName: "web-a", listen: "127.0.0.2:6600"), "c1")
    }
}
