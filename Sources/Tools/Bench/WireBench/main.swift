// wire-bench: one-core throughput of the Wire session crypto.
//   wire-bench [seconds-per-test]   (default 2; run via scripts/bench-wire.sh)
// Prints: ChaCha20-Poly1305 seal and seal+open MB/s for 16 KiB messages,
// the full session pipeline (encode, seal, frame, open, decode) for
// DataBatch records, and responder / initiator handshakes per second.
// `wire-bench histogram-cost` prints instead what a latency histogram adds
// to an aggregate on the wire and in the store, for typical windows.
import Reactor
import Wire
#if canImport(Glibc)
import Glibc
#endif

let args = CommandLine.arguments
if args.count > 1 && (args[1] == "-h" || args[1] == "--help") {
    print("usage: wire-bench [seconds-per-test]")
    print("       wire-bench histogram-cost   bytes per aggregate with and without its latency histogram")
    exit(0)
}
if args.count > 1 && args[1] == "histogram-cost" {
    histogramCost()
    exit(0)
}
let seconds = args.count > 1 ? Double(args[1]) ?? 2 : 2

/// Runs `body` in rounds until `seconds` have passed; returns (operations, seconds).
func measure(_ opsPerRound: Int, _ body: () -> Void) -> (Double, Double) {
    for _ in 0..<3 { body() }  // warm up
    let start = Clock.monotonicNanos()
    var rounds = 0
    var elapsed: Double = 0
    repeat {
        body()
        rounds += 1
        elapsed = Double(Clock.monotonicNanos() - start) / 1e9
    } while elapsed < seconds
    return (Double(rounds * opsPerRound), elapsed)
}

func report(_ name: String, _ value: Double, _ unit: String) {
    let rounded = (value * 10).rounded() / 10
    print("\(name): \(rounded) \(unit)")
}

// MARK: raw cipher, 16 KiB messages

let messageSize = 16 * 1024
let key = Key32.random()
var plaintext = [UInt8](repeating: 0x61, count: messageSize)
var buffer = [UInt8](repeating: 0, count: messageSize + CipherState.tagLength)
let noAD = UnsafeRawBufferPointer(start: nil, count: 0)

do {
    var sender = CipherState(key: key)
    let perRound = 64
    let (ops, secs) = plaintext.withUnsafeBytes { p in
        buffer.withUnsafeMutableBytes { out in
            measure(perRound) {
                for _ in 0..<perRound { _ = try? sender.encrypt(ad: noAD, plaintext: p, into: out) }
            }
        }
    }
    report("seal 16KiB", ops * Double(messageSize) / secs / 1e6, "MB/s")
}

do {
    var sender = CipherState(key: key)
    var receiver = CipherState(key: key)
    let perRound = 64
    var failures = 0
    let (ops, secs) = plaintext.withUnsafeBytes { p in
        buffer.withUnsafeMutableBytes { out in
            measure(perRound) {
                for _ in 0..<perRound {
                    _ = try? sender.encrypt(ad: noAD, plaintext: p, into: out)
                    // Open in place, as the session does.
                    if (try? receiver.decrypt(ad: noAD, ciphertext: UnsafeRawBufferPointer(out), into: out)) == nil { failures += 1 }
                }
            }
        }
    }
    precondition(failures == 0)
    report("seal+open 16KiB (bytes through both)", ops * Double(messageSize) / secs / 1e6, "MB/s")
}

// MARK: session pipeline

let psk = Key32.random()
let collector = StaticKeyPair.generate()
let welcome = Welcome(sessionID: 1, collectorTimeMs: 0)
func newClient(_ id: String) -> ClientSession {
    ClientSession(preamble: Preamble(projectID: "bench")!, psk: psk, collectorKey: collector.publicKey,
                  identity: StaticKeyPair.generate(), hello: Hello(agentID: id))
}
/// Moves what `from` wrote into `to`.
func pass(_ from: ByteBuffer, _ to: (UnsafeRawBufferPointer) -> Void) {
    to(from.readable)
    from.consume(from.readableBytes)
}
func makePair() -> (ClientSession, ServerSession) {
    let client = newClient("bench")
    let server = ServerSession(staticKey: collector) { _ in psk }
    try! client.start()
    pass(client.outbound) { server.feed($0) { _ in } }       // preamble, message 1
    pass(server.outbound) { client.feed($0) { _ in } }       // message 2
    pass(client.outbound) { server.feed($0) { _ in } }       // message 3
    try! server.accept(welcome)
    pass(server.outbound) { client.feed($0) { _ in } }       // Welcome
    return (client, server)
}

do {
    let (client, server) = makePair()
    let aggregate = BatchItem.aggregate(Aggregate(
        windowStartMs: 1_700_000_000_000, windowLengthMs: 10_000, monitor: 3, check: 17, source: 2, count: 12_345,
        errors: 12, sumUs: 987_654_321, minUs: 150, maxUs: 2_500_000, p50Us: 12_000, p95Us: 95_000, p99Us: 480_000))
    let batch = Record.dataBatch(DataBatch(sequence: 1, items: [BatchItem](repeating: aggregate, count: 450)))
    let recordBytes = batch.encoded.count
    var received = 0
    let perRound = 16
    let (ops, secs) = measure(perRound) {
        for _ in 0..<perRound {
            try! client.send(batch)
            try! client.flush()
            server.feed(client.outbound.readable) { e in if case .record = e { received += 1 } }
            client.outbound.consume(client.outbound.readableBytes)
        }
    }
    precondition(server.closeReason == nil && received > 0)
    report("session DataBatch (\(recordBytes) B, 450 aggregates) send+seal+open+decode", ops * Double(recordBytes) / secs / 1e6, "MB/s")
    report("session DataBatch items", ops * 450 / secs, "items/s")
}

// MARK: handshakes

do {
    // Only the responder's calls are timed (a clock read around each, tens
    // of ns against hundreds of µs): the preamble and message 1, the keys
    // arriving in a second call (as the collector answers from its store)
    // with message 2 written there, message 3, and the Welcome. The
    // agents' side runs between them, untimed.
    func responderHandshakes(_ label: String, keys: [Key32]) {
        var established = 0
        var serverNanos: UInt64 = 0
        func timed(_ body: () -> Void) {
            let t0 = Clock.monotonicNanos()
            body()
            serverNanos += Clock.monotonicNanos() - t0
        }
        let start = Clock.monotonicNanos()
        var n = 0
        repeat {
            let client = newClient("agent-\(n)")
            try! client.start()
            let server = ServerSession(staticKey: collector)
            timed {
                pass(client.outbound) { server.feed($0) { _ in } }
                server.provideKeys(keys) { _ in }
            }
            pass(server.outbound) { client.feed($0) { _ in } }
            timed {
                pass(client.outbound) { server.feed($0) { _ in } }
                try! server.accept(welcome)
            }
            pass(server.outbound) { client.feed($0) { _ in } }
            if server.state == .established && client.state == .established { established += 1 }
            n += 1
        } while Double(Clock.monotonicNanos() - start) / 1e9 < seconds
        precondition(established == n)
        report(label, Double(n) / (Double(serverNanos) / 1e9), "/s")
    }
    responderHandshakes("responder handshakes (ServerSession: preamble, msg1, msg2, msg3, Welcome)", keys: [psk])
    responderHandshakes("responder handshakes, the right key third of three", keys: [Key32.random(), Key32.random(), psk])
}

do {
    let perRound = 100
    let identity = StaticKeyPair.generate()
    let (ops, secs) = measure(perRound) {
        for _ in 0..<perRound {
            let c = ClientSession(preamble: Preamble(projectID: "bench")!, psk: psk, collectorKey: collector.publicKey,
                                  identity: identity, hello: Hello(agentID: "agent"))
            try! c.start()
        }
    }
    report("initiator message 1 (ClientSession.start)", ops / secs, "/s")
}

// MARK: histogram cost

/// Bytes of one aggregate item in a DataBatch, and of its histogram (the
/// kind-4 item on the wire; the BLOB the store keeps), for windows of
/// `samples` values drawn from typical latency shapes. Deterministic.
func histogramCost() {
    var state: UInt64 = 0x9E37_79B9_7F4A_7C15
    func uniform() -> Double {                       // SplitMix64 in [0, 1)
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return Double((z ^ (z >> 31)) >> 11) / Double(1 << 53)
    }
    func normal() -> Double { sqrt(-2 * log(max(uniform(), 1e-300))) * cos(2 * Double.pi * uniform()) }
    let shapes: [(String, () -> UInt64)] = [
        ("API call, median 20 ms, sigma 0.5", { UInt64(20_000 * exp(0.5 * normal())) }),
        ("wide, median 50 ms, sigma 1.2", { UInt64(50_000 * exp(1.2 * normal())) }),
        ("cache hit/miss, 300 us or 60 ms", { uniform() < 0.8 ? UInt64(300 * exp(0.2 * normal())) : UInt64(60_000 * exp(0.3 * normal())) }),
    ]
    // The agent's per-record cost: one bucket index (a log) and an add,
    // beside the LogHistogram the aggregator used before.
    var values: [UInt64] = []
    for _ in 0..<(1 << 16) { values.append(shapes[0].1()) }
    let n = 200
    var sketch = LatencySketch(), old = LogHistogram()
    var start = Clock.monotonicNanos()
    for _ in 0..<n { for v in values { sketch.record(v) } }
    let sketchNs = Double(Clock.monotonicNanos() - start) / Double(n * values.count)
    start = Clock.monotonicNanos()
    for _ in 0..<n { for v in values { old.record(v) } }
    let oldNs = Double(Clock.monotonicNanos() - start) / Double(n * values.count)
    precondition(sketch.count == old.count)
    print("record: LatencySketch \((sketchNs * 10).rounded() / 10) ns/value, LogHistogram \((oldNs * 10).rounded() / 10) ns/value")
    print("| window | samples | aggregate item B (before) | histogram item B | after B | histogram BLOB B | buckets |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for (name, draw) in shapes {
        for samples in [1, 10, 100, 1_000, 10_000, 100_000] {
            var h = LatencySketch()
            var sum: UInt64 = 0, lo = UInt64.max, hi: UInt64 = 0
            for _ in 0..<samples {
                let v = draw()
                h.record(v); sum += v; lo = min(lo, v); hi = max(hi, v)
            }
            func item(_ histogram: LatencySketch?) -> Int {
                let a = Aggregate(windowStartMs: 1_700_000_000_000, windowLengthMs: 10_000, monitor: 3, check: 17, source: 2,
                                  count: h.count, sumUs: sum, minUs: lo, maxUs: hi,
                                  p50Us: UInt64(h.quantile(0.5, min: lo, max: hi)), p95Us: UInt64(h.quantile(0.95, min: lo, max: hi)),
                                  p99Us: UInt64(h.quantile(0.99, min: lo, max: hi)), histogram: histogram)
                // A batch of one, minus the batch header (sequence 1, count).
                return Record.dataBatch(DataBatch(sequence: 1, items: [.aggregate(a)])).encoded.count - 4
            }
            let before = item(nil), after = item(h)
            print("| \(name) | \(samples) | \(before) | \(after - before) | \(after) | \(h.encoded.count) | \(h.buckets.count) |")
        }
    }
}
