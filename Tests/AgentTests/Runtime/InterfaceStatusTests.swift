// The interface list in the status path: read again when rtnetlink
// announces a change or the capture addresses move, not at every tick.
import XCTest
import Reactor
import Wire
@testable import Agent

final class InterfaceStatusTests: XCTestCase {
    func testInterfacesAreReadAgainOnlyAfterAnAnnouncedChange() throws {
        let h = try AgentHarness()
        try h.start()
        XCTAssertTrue(h.run(until: { !h.collector.interfaces.isEmpty && !h.collector.statuses.isEmpty }))
        guard let watch = h.runtime.interfaceWatch, watch.isOpen else { throw XCTSkip("no rtnetlink socket here") }
        let sent = h.collector.interfaces.count
        let changesBefore = watch.changes
        // Forget the list sent: a tick that reads the interfaces again sends
        // it anew, so the count of Interfaces records shows every read.
        h.runtime.lastInterfaces = []
        let statuses = h.collector.statuses.count
        XCTAssertTrue(h.run(until: { h.collector.statuses.count >= statuses + 3 }))
        if watch.changes == changesBefore {
            XCTAssertEqual(h.collector.interfaces.count, sent, "three status ticks, no change announced: not read")
        }  // else the host's interfaces really changed meanwhile: nothing to assert
        // An announced change (what the watcher's callback sets) is read
        // at the next tick and, differing from what was sent, sent.
        h.runtime.interfacesStale = true
        XCTAssertTrue(h.run(until: { h.collector.interfaces.count > sent }))
        XCTAssertFalse(h.runtime.interfacesStale)
        XCTAssertTrue(h.collector.interfaces.last!.interfaces.contains { $0.name == "lo" })
    }
}
