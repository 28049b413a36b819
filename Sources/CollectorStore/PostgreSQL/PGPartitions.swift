// PGPartitions: the daily range partitions of `measurements`. Partition
// `measurements_d<N>` holds ts_ms in [N, N+1) days since the Unix epoch;
// `ensure` creates yesterday's, today's and `daysAhead` more (start-up and
// an hourly timer), so rows land in a small partition whose indexes stay
// in memory, and retention drops a whole day with DROP TABLE instead of
// deleting its rows. A day whose rows already went to the DEFAULT partition
// (a clock far off) is left to it: creating it would fail.
//
// Thread: start-up (blocking connection) or the loop (the store's writer).
internal import CPQ
import Reactor

enum PGPartitions {
    static let dayMillis: Int64 = 86_400_000

    static func name(day: Int64) -> String { "measurements_d\(day)" }

    /// The day a partition name stands for, nil for other tables.
    static func day(ofPartition name: String) -> Int64? {
        guard name.hasPrefix("measurements_d") else { return nil }
        return Int64(name.dropFirst("measurements_d".count))
    }

    static func createSQL(day: Int64) -> String {
        """
        CREATE TABLE IF NOT EXISTS \(name(day: day)) PARTITION OF measurements
            FOR VALUES FROM (\(day * dayMillis)) TO (\((day + 1) * dayMillis))
        """
    }

    static func days(now: Int64, daysAhead: Int) -> [Int64] {
        let today = now / dayMillis
        return Array(max(0, today - 1)...(today + Int64(daysAhead)))
    }

    /// Creates the partitions around `now` over a blocking connection.
    static func ensure(_ conn: OpaquePointer, now: Int64, daysAhead: Int) throws(StoreError) {
        for day in days(now: now, daysAhead: daysAhead) {
            do { try PGMigrations.exec(conn, createSQL(day: day)) } catch {
                Log.warn("store: measurement partition \(name(day: day)) not created: \(error)")
            }
        }
    }
}
