// CollectorList: which collector to try next, and how long to wait.
//
// On a failed connection the next host in the list is tried at once. When
// a whole round of the list has failed, the agent waits a jittered delay in
// [reconnect_interval_min, reconnect_interval_max]; after three such rounds
// the delay doubles per round up to five minutes.
//
// On a lost session the next host is tried at once — the first time. A
// session lost before it counted as healthy (`healthySession`, 30 s) does
// not reset the backoff: the second such loss in a row, and every one
// after, waits the next backoff delay, as a failed round does. So a
// collector that accepts and then closes (overloaded, disk full) sees one
// immediate retry per agent, then jittered, growing waits — not a storm.
// A session that lasted `healthySession` resets the rounds on its loss, and
// the agent starts over from the host after the one it lost.
//
// Thread: a value owned by the uplink on the loop thread.
import Reactor

public struct CollectorList<R: RandomSource> {
    public let hosts: [String]
    public private(set) var index = 0
    private var failuresThisRound = 0
    private var backoff: Backoff<R>
    /// Sessions lost in a row before they counted as healthy.
    public private(set) var shortLosses = 0
    /// Seconds a session must last before its loss is forgiven (the
    /// backoff restarts and the next retry is immediate).
    public static var healthySession: Double { 30 }
    /// Completed rounds in which every host failed, since the last success.
    public var failedRounds: Int { backoff.round }

    public init(hosts: [String], minDelay: Double, maxDelay: Double, random: R) {
        precondition(!hosts.isEmpty, "at least one collector")
        self.hosts = hosts
        backoff = Backoff(min: minDelay, max: maxDelay, flatRounds: 3, cap: Swift.max(300, maxDelay), random: random)
    }

    public var current: String { hosts[index] }

    /// New round delays (a configuration change); the position in the
    /// list is kept, the rounds count starts over.
    public mutating func setDelays(min: Double, max: Double, random: R) {
        backoff = Backoff(min: min, max: max, flatRounds: 3, cap: Swift.max(300, max), random: random)
        failuresThisRound = 0
    }

    /// Failed attempts since the last round completed (or the last success).
    public var attemptsThisRound: Int { failuresThisRound }

    /// Records a failed attempt on the current host and moves to the next.
    /// Returns the delay before the next attempt: 0 within a round, a
    /// backoff delay when the round is complete.
    public mutating func failed() -> Double {
        index = (index + 1) % hosts.count
        failuresThisRound += 1
        guard failuresThisRound >= hosts.count else { return 0 }
        failuresThisRound = 0
        return backoff.next()
    }

    /// The session on the current host was established. The backoff is
    /// not reset yet: only a session that lasts does that (`lost(after:)`).
    public mutating func connected() {
        failuresThisRound = 0
    }

    /// An established session was lost after `seconds`: moves to the next
    /// host and returns the delay before trying it — 0 after a healthy
    /// session or for the first short one in a row, else the next backoff
    /// delay (jittered).
    public mutating func lost(after seconds: Double) -> Double {
        index = (index + 1) % hosts.count
        failuresThisRound = 0
        if seconds >= Self.healthySession {
            backoff.reset()
            shortLosses = 0
            return 0
        }
        shortLosses += 1
        return shortLosses == 1 ? 0 : backoff.next()
    }
}
