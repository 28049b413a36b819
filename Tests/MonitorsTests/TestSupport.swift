// Shared test helpers: a seeded generator, fixed random sources, paths.
import XCTest
import JSON
import Reactor
@testable import MonitorModel
@testable import MonitorRunners

/// SplitMix64: deterministic values for property-style tests.
struct SeededRNG: RandomNumberGenerator {
    private var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// A RandomSource that returns the given values in turn (then the last).
struct FixedRandom: RandomSource {
    var values: [Double]
    var index = 0
    init(_ values: Double...) { self.values = values }
    mutating func nextUnit() -> Double {
        defer { index = min(index + 1, values.count - 1) }
        return values[index]
    }
}

enum TestPaths {
    /// The package root (this file is Tests/MonitorsTests/TestSupport.swift).
    static var root: String {
        var parts = "\(#filePath)".split(separator: "/", omittingEmptySubsequences: false)
        parts.removeLast(3)
        return parts.joined(separator: "/")
    }
    static var exampleMonitor: String { root + "/examples/monitors/shell-steps.sh" }
}

extension MonitorDefinition {
    static func http(_ id: String, url: String, interval: UInt32 = 10, timeout: UInt32 = 5,
                     expect: [StatusMatch] = [.class(2)], method: String = "GET", headers: [HTTPHeader] = [],
                     body: String? = nil, groups: [String] = ["default"]) -> MonitorDefinition {
        MonitorDefinition(id: id, name: "HTTP \(id)", intervalSecs: interval, timeoutSecs: timeout, groups: groups,
                          check: .http(HTTPCheck(method: method, url: url, headers: headers, body: body, expectStatus: expect)))
    }

    static func tcp(_ id: String, host: String, port: UInt16, interval: UInt32 = 10, timeout: UInt32 = 5) -> MonitorDefinition {
        MonitorDefinition(id: id, name: "TCP \(id)", intervalSecs: interval, timeoutSecs: timeout,
                          check: .tcp(TCPCheck(host: host, port: port)))
    }

    static func exec(_ id: String, steps: [(String, UInt32)], config: JSONObject, command: String = TestPaths.exampleMonitor,
                     interval: UInt32 = 60, timeout: UInt32 = 30) -> MonitorDefinition {
        MonitorDefinition(id: id, name: "Exec \(id)", intervalSecs: interval, timeoutSecs: timeout,
                          check: .exec(ExecCheck(command: command, steps: steps.map { ExecStep(name: $0.0, timeoutSecs: $0.1) },
                                                 config: config)))
    }
}
