// Verifier: `vigil-load verify` — the soak's proof. For every batch the
// ledger says was acknowledged, count its aggregates in the database of
// the collector that acknowledged it:
//   fewer than the batch held   → acknowledged records lost (must be 0)
//   more than once in one database (any agent, any series and window)
//                               → duplicates stored (must be 0)
// Also reported, not judged: batches stored in two collectors' databases
// (a batch committed by a collector killed before its Ack went out, then
// re-sent to the other: at-least-once across collectors that share
// nothing), batches stored but never acknowledged (in flight at the end),
// and the records of agents that are not the load generator's (a real
// agent's aggregates, counted once across databases, for the caller to
// compare with what it sent).
// With one shared database (`--shared-db`: the collectors of a cluster on
// one store) every collector's batches are looked up in it, and a batch
// acknowledged by two collectors must still be stored once.
#if canImport(Glibc)
import Glibc
#endif
import CollectorStore
import Reactor

public enum Verifier {
    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    /// Checks `options.ledgerPath` against the databases; returns the
    /// summary and whether the run passes (nothing lost, nothing duplicated).
    public static func run(_ options: VerifyOptions) throws -> (SummaryFields, ok: Bool) {
        let text = try readWholeFile(options.ledgerPath)
        let ledger: LedgerContents
        do { ledger = try LedgerReader.parse(text) } catch { throw Failure(description: "\(options.ledgerPath): \(error)") }
        if !options.shared && ledger.header.collectors.count > options.databases.count {
            throw Failure(description: "the ledger names \(ledger.header.collectors.count) collectors (\(ledger.header.collectors.joined(separator: ", "))) but \(options.databases.count) --db were given; pass one per collector, in list order")
        }
        var dbs: [SQLiteConnection] = []
        defer { dbs.forEach { $0.close() } }
        for path in options.databases {
            guard access(path, R_OK) == 0 else { throw Failure(description: "cannot read database '\(path)'") }
            do { dbs.append(try SQLiteConnection(path: path, readOnly: true)) } catch {
                throw Failure(description: "cannot open database '\(path)': \(error)")
            }
        }
        return try check(ledger, dbs, shared: options.shared)
    }

    /// The check itself, on open databases (tests call this). `shared`: `dbs`
    /// is one database holding every collector's batches.
    public static func check(_ ledger: LedgerContents, _ dbs: [SQLiteConnection], shared: Bool = false) throws -> (SummaryFields, ok: Bool) {
        let h = ledger.header
        let items = UInt64(h.items)
        var lostBatches: UInt64 = 0, lostRecords: UInt64 = 0, duplicateRows: UInt64 = 0
        var crossBatches: UInt64 = 0, storedUnacked: UInt64 = 0
        var examples: [String] = []
        do {
            // One pass per database (the measurements are indexed by time,
            // not by series): agent → sequence → rows.
            let perDB: [[String: [UInt64: UInt64]]] = try dbs.map { db in
                let q = try db.statement("""
                    SELECT s.agent_id, m.ts_ms, COUNT(*) FROM measurements m JOIN series s ON s.id = m.series_id
                    WHERE m.ts_ms > ?1 GROUP BY s.agent_id, m.ts_ms
                    """)
                defer { q.reset() }
                q.bind(1, h.baseMs)
                var byAgent: [String: [UInt64: UInt64]] = [:]
                while try q.step() {
                    let agent = q.text(0)
                    guard ledger.acks[agent] != nil else { continue }
                    byAgent[agent, default: [:]][UInt64(q.int64(1) - h.baseMs)] = UInt64(q.int64(2))
                }
                return byAgent
            }
            for (agent, ranges) in ledger.acks.sorted(by: { $0.key < $1.key }) {
                // Stored batches of this agent, per database: sequence → rows.
                let stored: [[UInt64: UInt64]] = perDB.map { $0[agent] ?? [:] }
                let ackedThrough = ranges.last?.to ?? 0
                for r in ranges {
                    for seq in r.from...r.to {
                        let index = shared ? 0 : r.collector
                        let found = index < stored.count ? stored[index][seq] ?? 0 : 0
                        if found < items {
                            lostBatches += 1
                            lostRecords += items - found
                            if examples.count < 10 {
                                examples.append("\(agent) batch \(seq): \(found) of \(items) aggregates in collector \(r.collector)'s database")
                            }
                        }
                    }
                }
                var sequences = Set<UInt64>()
                for counts in stored {
                    for (seq, n) in counts {
                        if n > items { duplicateRows += n - items }
                        if !sequences.insert(seq).inserted { crossBatches += 1 }
                    }
                }
                storedUnacked += UInt64(sequences.filter { $0 > ackedThrough }.count)
            }
        } catch {
            throw Failure(description: "reading the databases: \(error)")
        }
        // Duplicates of any agent: one row per (series, window) is the rule.
        var duplicateAll: UInt64 = 0
        var otherRows: UInt64 = 0, otherRecords: UInt64 = 0
        do {
            // Per database the rows are summed (an agent that sent two rows
            // for one window counts both); across databases a key counts
            // once (the same aggregate re-sent to the other collector).
            var others: [String: UInt64] = [:]
            for db in dbs {
                var here: [String: UInt64] = [:]
                duplicateAll += UInt64(try db.scalar("""
                    SELECT COALESCE(SUM(c - 1), 0) FROM
                      (SELECT COUNT(*) AS c FROM measurements GROUP BY series_id, ts_ms HAVING c > 1)
                    """) ?? 0)
                let q = try db.statement("""
                    SELECT s.agent_id, s.monitor, s.check_name, s.source, m.ts_ms, m.count
                    FROM measurements m JOIN series s ON s.id = m.series_id
                    WHERE substr(s.agent_id, 1, ?1) <> ?2
                    """)
                q.reset()
                q.bind(1, h.prefix.utf8.count + 1)
                q.bind(2, h.prefix + "-")
                while try q.step() {
                    let key = "\(q.text(0))\u{1}\(q.text(1))\u{1}\(q.text(2))\u{1}\(q.text(3))\u{1}\(q.int64(4))"
                    here[key, default: 0] += UInt64(max(0, q.int64(5)))
                }
                for (key, n) in here { others[key] = max(others[key] ?? 0, n) }
            }
            otherRows = UInt64(others.count)
            otherRecords = others.values.reduce(0, +)
        } catch {
            throw Failure(description: "reading the databases: \(error)")
        }
        for e in examples { Log.error("acknowledged batch missing", ["detail": e]) }

        var s = SummaryFields()
        s.add("databases", dbs.count)
        s.add("ledger_complete", ledger.complete ? 1 : 0)
        s.add("agents", ledger.acks.count)
        s.add("acked_batches", ledger.batches)
        s.add("acked_records", ledger.records)
        s.add("lost_batches", lostBatches)
        s.add("lost_records", lostRecords)
        s.add("duplicate_rows", duplicateRows)
        s.add("duplicate_rows_all", duplicateAll)
        s.add("cross_collector_batches", crossBatches)
        s.add("stored_unacked_batches", storedUnacked)
        s.add("other_agent_rows", otherRows)
        s.add("other_agent_records", otherRecords)
        let ok = lostRecords == 0 && duplicateRows == 0 && duplicateAll == 0
        s.add("ok", ok ? 1 : 0)
        return (s, ok)
    }

    /// A whole file as text (the ledger can be large).
    static func readWholeFile(_ path: String) throws -> String {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw Failure(description: "cannot open '\(path)': \(Syscalls.errorName(errno))") }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n < 0 { throw Failure(description: "cannot read '\(path)': \(Syscalls.errorName(errno))") }
            if n == 0 { break }
            bytes.append(contentsOf: chunk[0..<n])
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
