import XCTest
@testable import Agent

final class HostInfoTests: XCTestCase {
    func testIdentityIsStableAndNameDependent() {
        XCTAssertEqual(HostInfo.agentID(name: "a"), HostInfo.agentID(name: "a"))
        XCTAssertNotEqual(HostInfo.agentID(name: "a"), HostInfo.agentID(name: "b"))
        XCTAssertEqual(HostInfo.agentID(name: "a").count, 32)
        XCTAssertFalse(HostInfo.hostname().isEmpty)
    }

    func testLoopbackInterfaceIsListed() {
        let lo = HostInfo.interfaces().first { $0.name == "lo" }
        XCTAssertNotNil(lo)
        XCTAssertTrue(lo!.addresses.contains("127.0.0.1/8"), "\(lo!.addresses)")
        XCTAssertEqual(lo!.flags & 3, 3, "up and loopback")
    }

    func testCPUSamplerSeesBusyWork() {
        var s = CPUSampler()
        var x = 0.0
        for i in 0..<3_000_000 { x += Double(i).squareRoot() }
        XCTAssertGreaterThan(x, 0)
        let pct = s.sample()
        XCTAssertGreaterThan(pct, 0)
        XCTAssertLessThan(pct, 250)
    }
}
