// store-bench: SQLite insert rate for aggregate rows, raw (the baseline:
// one prepared INSERT in big transactions, nothing else) and through
// SQLiteStore's write path (batches, de-duplication, series lookup, group
// commit, completions after COMMIT), for synchronous=FULL and NORMAL; plus
// the price of one durable commit. Prints figures; asserts nothing.
//
//   swift build -c release --product store-bench
//   .build/release/store-bench [--rows N] [--batch ROWS] [--inflight BATCHES] [--dir DIR]
//                              [--tx-rows ROWS] [--sync full|normal] [--repeat N]
//                              [--baseline-only] [--series N]
//
// --baseline-only measures the raw insert rate alone and prints it as
// `baseline_rows_per_s=N sync=MODE` (scripts/load.sh's ratio baseline);
// --series spreads the raw rows over N series (default 1000), each with
// increasing timestamps, to match a workload's (agent, check) count.
//
// The machine is shared, so each figure is the median of N runs (raw and
// store runs alternate); the latency lines come from the median store run.
import CollectorStore
import CSQLite
import Reactor
#if canImport(Glibc)
import Glibc
#endif

var rows = 200_000
var batchRows = 50
var inflight = 1_000
var dir = "/tmp/vigil-store-bench-\(getpid())"
var txRows = StoreOptions(dataDirectory: "").maxRowsPerTransaction
var modes: [StoreOptions.Synchronous] = [.full, .normal]
var repeats = 3
var baselineOnly = false
var baselineSeries = 1000
var args = CommandLine.arguments.dropFirst()
while let a = args.popFirst() {
    if a == "--baseline-only" { baselineOnly = true; continue }
    guard let v = args.popFirst() else { fatalError("\(a) needs a value") }
    switch a {
    case "--rows": rows = Int(v)!
    case "--batch": batchRows = Int(v)!
    case "--inflight": inflight = Int(v)!
    case "--dir": dir = v
    case "--tx-rows": txRows = Int(v)!
    case "--sync": modes = [v == "normal" ? .normal : .full]
    case "--repeat": repeats = max(1, Int(v)!)
    case "--series": baselineSeries = max(1, Int(v)!)
    default: fatalError("unknown option \(a)")
    }
}

func removeDatabase(_ d: String) {
    for f in ["vigil.db", "vigil.db-wal", "vigil.db-shm"] { unlink(d + "/" + f) }
}

func fmt(_ v: Double) -> String {
    let i = Int(v.rounded())
    var s = String(i), out = ""
    for (n, c) in s.reversed().enumerated() { if n > 0 && n % 3 == 0 { out.append(",") }; out.append(c) }
    s = String(out.reversed())
    return s
}

func options(_ sync: StoreOptions.Synchronous) -> StoreOptions {
    var o = StoreOptions(dataDirectory: dir)
    o.synchronous = sync
    o.maxRowsPerTransaction = txRows
    return o
}

func row(_ i: Int) -> MeasurementRow {
    MeasurementRow(ts: 1_700_000_000_000 + Int64(i / 1000) * 10_000, windowMs: 10_000, monitor: "m\(i % 20)", check: "c\(i % 50)",
                   source: "ipa", count: 100, sumUs: 1_234_500, minUs: 1_500, maxUs: 99_250, p50Us: 10_500, p95Us: 50_250, p99Us: 90_750)
}

/// Raw SQLite: a prepared INSERT, `batchRows * 100` rows per transaction.
func rawBaseline(_ sync: StoreOptions.Synchronous) throws -> Double {
    removeDatabase(dir)
    let loop = EventLoop()
    var done = false
    let store = try SQLiteStore.open(loop: loop, options: options(sync))   // creates the schema
    store.close { done = true }
    _ = loop.run(until: { done }, timeout: 60)
    let db = try SQLiteConnection(path: dir + "/vigil.db")
    defer { db.close() }
    try db.exec("PRAGMA journal_mode = WAL; PRAGMA synchronous = \(sync.rawValue)")
    let s = try db.statement("""
        INSERT INTO measurements(series_id, ts_ms, window_ms, count, errors, sum_us, min_us, max_us, p50_us, p95_us, p99_us)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
        """)
    let perTx = batchRows * 100
    let t0 = Clock.monotonic()
    var i = 0
    while i < rows {
        try db.exec("BEGIN")
        for _ in 0..<min(perTx, rows - i) {
            let m = row(i)
            let ts = 1_700_000_000_000 + Int64(i / baselineSeries) * 10_000
            s.bind(1, Int64(i % baselineSeries + 1)); s.bind(2, ts); s.bind(3, m.windowMs); s.bind(4, m.count)
            s.bind(5, m.errors); s.bind(6, m.sumUs); s.bind(7, m.minUs); s.bind(8, m.maxUs); s.bind(9, m.p50Us)
            s.bind(10, m.p95Us); s.bind(11, m.p99Us)
            try s.run()
            s.reset()
            i += 1
        }
        try db.exec("COMMIT")
    }
    return Double(rows) / (Clock.monotonic() - t0)
}

struct StoreRun {
    var rate = 0.0
    var stats = StoreStats()
    var lag = LogHistogram()
}

/// Through SQLiteStore: batches of `batchRows` rows from 1,000 agents, with
/// up to `inflight` batches outstanding (as many sessions would have).
func throughStore(_ sync: StoreOptions.Synchronous) throws -> StoreRun {
    removeDatabase(dir)
    let loop = EventLoop()
    let store = try SQLiteStore.open(loop: loop, options: options(sync))
    var project: Int64 = 0
    var ready = false
    store.createKey(project: "bench", secret: "bench-secret", at: 0) { _ in
        store.activeKeys(project: "bench") { project = (try! $0.get()).projectId; ready = true }
    }
    _ = loop.run(until: { ready }, timeout: 60)
    let batches = rows / batchRows
    var next = 0, completed = 0, failed = 0
    var submit: () -> Void = {}
    submit = {
        guard next < batches else { return }
        let n = next
        next += 1
        let base = n * batchRows
        let b = Batch(projectId: project, agentId: "agent-\(n % 1000)", bootId: "boot", sequence: Int64(n / 1000),
                      receivedAt: Int64(n), measurements: (0..<batchRows).map { row(base + $0) })
        store.submitBatch(b) { r in
            if case .failure = r { failed += 1 }
            completed += 1
            submit()
        }
    }
    loop.resetLag()
    let t0 = Clock.monotonic()
    for _ in 0..<min(inflight, batches) { submit() }
    _ = loop.run(until: { completed == batches }, timeout: 600)
    let elapsed = Clock.monotonic() - t0
    if failed > 0 { print("  warning: \(failed) batches failed") }
    var run = StoreRun(rate: Double(completed * batchRows) / elapsed, stats: store.stats, lag: loop.lag)
    var closed = false
    store.close { closed = true }
    _ = loop.run(until: { closed }, timeout: 60)
    run.stats = store.stats
    return run
}

/// One-row transactions, one at a time: the latency of a durable commit.
func singleCommits(_ sync: StoreOptions.Synchronous, count: Int = 300) throws -> LogHistogram {
    removeDatabase(dir)
    let loop = EventLoop()
    let store = try SQLiteStore.open(loop: loop, options: options(sync))
    var done = false
    var n = 0
    var one: () -> Void = {}
    one = {
        store.appendAudit(AuditEntry(ts: Int64(n), actor: "bench", action: "commit", target: "t", result: "ok")) { _ in
            n += 1
            if n < count { one() } else { done = true }
        }
    }
    one()
    _ = loop.run(until: { done }, timeout: 120)
    let h = store.stats.commitMicros
    var closed = false
    store.close { closed = true }
    _ = loop.run(until: { closed }, timeout: 60)
    return h
}

func q(_ h: LogHistogram) -> String {
    "p50 \(h.quantile(0.5)) µs, p99 \(h.quantile(0.99)) µs, max \(h.max) µs"
}

mkdir(dir, 0o700)
if baselineOnly {
    for sync in modes {
        let raws = try (0..<repeats).map { _ in try rawBaseline(sync) }
        print("baseline_rows_per_s=\(Int(raws.sorted()[raws.count / 2].rounded())) sync=\(sync.rawValue) rows=\(rows) rows_per_tx=\(batchRows * 100) series=\(baselineSeries) runs=\(raws.map { Int($0.rounded()) })")
    }
    removeDatabase(dir)
    rmdir(dir)
    exit(0)
}
print("store-bench: \(fmt(Double(rows))) aggregate rows, batches of \(batchRows), \(inflight) batches in flight, "
      + "transactions up to \(txRows) rows, dir \(dir)")
print("SQLite \(String(cString: sqlite3_libversion()))")
for sync in modes {
    var raws: [Double] = []
    var runs: [StoreRun] = []
    for _ in 0..<repeats {
        raws.append(try rawBaseline(sync))
        runs.append(try throughStore(sync))
    }
    let raw = raws.sorted()[raws.count / 2]
    let run = runs.sorted { $0.rate < $1.rate }[runs.count / 2]
    let commits = try singleCommits(sync)
    print("synchronous=\(sync.rawValue) (median of \(repeats))")
    print("  baseline raw insert:     \(fmt(raw)) rows/s (prepared INSERT, \(batchRows * 100) rows per transaction; runs \(raws.map { fmt($0) }.joined(separator: " ")))")
    print("  through SQLiteStore:     \(fmt(run.rate)) rows/s (\(format1(run.rate / raw * 100))% of baseline; runs \(runs.map { fmt($0.rate) }.joined(separator: " ")))")
    print("    transactions:          \(run.stats.transactions), rows/tx p50 \(run.stats.transactionRows.quantile(0.5)) max \(run.stats.transactionRows.max)")
    print("    commit (COMMIT only):  \(q(run.stats.commitMicros))")
    print("    transaction (writer):  \(q(run.stats.transactionMicros))")
    print("    checkpoints:           \(run.stats.checkpoints), \(q(run.stats.checkpointMicros))")
    print("    loop busy/iteration:   \(q(run.lag))")
    print("  single-row commit:       \(q(commits))")
}
removeDatabase(dir)
rmdir(dir)

func format1(_ v: Double) -> String {
    let t = (v * 10).rounded() / 10
    return String(t)
}
