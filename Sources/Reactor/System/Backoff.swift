// Backoff: jittered reconnect delays with an injectable random source.
//
// Rounds 1...`flatRounds` wait a uniform random delay in [min, max]; after
// that each round doubles the upper bound (keeping the same jitter) until
// `cap`. `reset()` after a successful connection.

/// A source of uniform random numbers in [0, 1); inject a fixed one in tests.
public protocol RandomSource {
    mutating func nextUnit() -> Double
}

/// xorshift64*: fast, seedable, good enough for jitter (not for keys).
public struct XorShiftRandom: RandomSource {
    private var state: UInt64
    public init(seed: UInt64) { state = seed == 0 ? 0x9E3779B97F4A7C15 : seed }
    public init() {
        var ts = Clock.monotonicNanos() ^ UInt64(UInt(bitPattern: getpidCompat())) << 32
        if ts == 0 { ts = 1 }
        state = ts
    }
    public mutating func nextUnit() -> Double {
        state ^= state >> 12
        state ^= state << 25
        state ^= state >> 27
        let v = state &* 2685821657736338717
        return Double(v >> 11) / Double(UInt64(1) << 53)
    }
}

#if canImport(Glibc)
import Glibc
@inline(__always) func getpidCompat() -> Int { Int(getpid()) }
#endif

public struct Backoff<R: RandomSource> {
    public let min: Double
    public let max: Double
    public let cap: Double
    public let flatRounds: Int
    public private(set) var round = 0
    private var random: R

    public init(min: Double, max: Double, flatRounds: Int = 3, cap: Double = 300, random: R) {
        precondition(min >= 0 && max >= min && cap >= max)
        self.min = min
        self.max = max
        self.flatRounds = flatRounds
        self.cap = cap
        self.random = random
    }

    /// The delay before the next round, in seconds; advances the round.
    public mutating func next() -> Double {
        round += 1
        let extra = Swift.max(0, round - flatRounds)
        let scale = extra >= 62 ? Double.infinity : Double(UInt64(1) << UInt64(extra))
        let low = Swift.min(min * scale, cap)
        let high = Swift.min(max * scale, cap)
        return low + (high - low) * random.nextUnit()
    }

    public mutating func reset() { round = 0 }
}
