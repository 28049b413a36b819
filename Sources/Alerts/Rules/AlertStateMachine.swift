// AlertStateMachine: where a rule goes from what one evaluation saw.
//
//   ok/resolved --breaching--> pending --held for_s--> firing --recovered--> resolved
//        ^                        |
//        +------not breaching-----+
//
// "Breaching" and "recovered" are two tests, not one, so a value hovering
// at the threshold does not flap: a firing rule resolves only once the
// value is past the resolve threshold (hysteresis). A rule with `for_s` 0
// goes from ok straight to firing. No data (no measurement in the window)
// is neither: the rule keeps its state.
//
// Pure; no thread affinity.

public enum AlertStateName: String, Sendable, CaseIterable {
    case ok, pending, firing, resolved
}

/// What one evaluation of a condition saw.
public struct AlertObservation: Equatable, Sendable {
    /// The condition holds (the value is past the threshold).
    public var breaching: Bool
    /// The value is past the resolve threshold, back on the good side.
    public var recovered: Bool
    /// The value compared (nil: no data).
    public var value: Double?
    /// For people: "p95 812 ms > 800 ms".
    public var detail: String

    public init(breaching: Bool, recovered: Bool, value: Double?, detail: String) {
        self.breaching = breaching; self.recovered = recovered; self.value = value; self.detail = detail
    }

    /// Nothing to compare in the window.
    public static func noData(_ detail: String) -> AlertObservation {
        AlertObservation(breaching: false, recovered: false, value: nil, detail: detail)
    }
}

public enum AlertStateMachine {
    /// The state after `observation` at `now` (ms), for a rule that is in
    /// `state` since `since` and must hold `forMs` before firing. Returns the
    /// new state and since when it holds (unchanged when the state stays).
    public static func next(state: AlertStateName, since: Int64, observation o: AlertObservation, forMs: Int64,
                            now: Int64) -> (AlertStateName, Int64) {
        switch state {
        case .ok, .resolved:
            guard o.breaching else { return (state, since) }
            return forMs <= 0 ? (.firing, now) : (.pending, now)
        case .pending:
            if o.breaching { return now - since >= forMs ? (.firing, now) : (.pending, since) }
            if o.value == nil { return (.pending, since) }
            return (.ok, now)
        case .firing:
            return o.recovered && !o.breaching ? (.resolved, now) : (.firing, since)
        }
    }
}
