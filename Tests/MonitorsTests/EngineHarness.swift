// Runs definitions through a real MonitorEngine on the default loop (exec
// monitors need it) and collects the results.
import XCTest
import Reactor
import Wire
@testable import MonitorModel
@testable import MonitorRunners

final class EngineHarness {
    let loop = EventLoop.makeDefault()
    var results: [MonitorRunResult] = []
    private(set) var engine: MonitorEngine!

    /// Jitter 0: a monitor that never ran is due at once.
    init(options: MonitorEngine.Options = MonitorEngine.Options()) {
        engine = MonitorEngine(loop: loop, options: options, random: FixedRandom(0)) { [unowned self] r in
            self.results.append(r)
        }
    }

    /// Applies `defs` and runs the loop until `count` results arrived.
    @discardableResult
    func run(_ defs: [MonitorDefinition], until count: Int = 1, timeout: Double = 20,
             file: StaticString = #filePath, line: UInt = #line) -> [MonitorRunResult] {
        engine.apply(definitions: defs)
        let ok = loop.run(until: { self.results.count >= count }, timeout: timeout)
        XCTAssertTrue(ok, "expected \(count) results within \(timeout) s, got \(results.count)", file: file, line: line)
        return results
    }

    func first(_ def: MonitorDefinition, timeout: Double = 20, file: StaticString = #filePath, line: UInt = #line) -> MonitorRunResult? {
        run([def], until: 1, timeout: timeout, file: file, line: line).first
    }

    /// Lets the loop run for `seconds` (e.g. to see that nothing more comes).
    func idle(_ seconds: Double) {
        let end = Clock.monotonic() + seconds
        loop.run(until: { Clock.monotonic() >= end }, timeout: seconds + 1)
    }

    func shutdown() {
        engine.shutdown()
        // Let cancelled children be reaped and closes be delivered.
        idle(0.05)
    }
}
