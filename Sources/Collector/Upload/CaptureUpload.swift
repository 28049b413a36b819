// CaptureUpload: one capture file uploaded to a project — IPA records, one
// per line, as `vigil-agent replay` reads them — streamed through the
// agent's own parse → filter → aggregate code (IPAPipeline's IngestPipeline
// with the project's filter rules, as the agent receives them) into the
// store, under the project's virtual agent of mode `upload`.
//
//   preparing (project, rules, virtual agent) ─▶ reading (the body, a slice
//   per loop iteration) ─▶ storing (the last batches commit) ─▶ done | failed
//
// Memory is bounded whatever the file's size: the body is read a slice
// (`sliceBytes`) at a time from libmicrohttpd's buffer and never kept; what
// stays is a line cut by a slice's end (IPALineFramer), the multipart
// reader's few bytes, and one histogram per (monitor, check). Back-pressure:
// while `maxBatchesInFlight` batches wait for the store, or while the store
// is more than half full, no more is read — the connection stays suspended
// (HTTPServer) and TCP holds the client back — until a batch commits.
// Records with a time of their own (IPA version 2) go to the window of
// their time, as the agent's replay places them (a day back at most, a
// minute ahead; the rest dropped as `too_old` / `future`; at most 64 windows
// held, the oldest closed first); records without one (versions 0 and 1)
// to the window of the time they are read. Windows are `windowMs` long.
//
// Thread: loop thread (HTTPServer's callbacks, store completions).
import CollectorStore
import HTTPServer
import IPAPipeline
import JSON
import Reactor
import Wire

final class CaptureUpload: HTTPBodyStream {
    /// Body bytes read per loop iteration.
    static let sliceBytes = 128 * 1024
    static let maxBatchesInFlight = 4
    static let windowMs: Int64 = 60_000

    enum State: String { case preparing, reading, storing, done, failed }

    let id: String
    let project: String
    /// The project's virtual agent (`upload-<project>`).
    let agentId: String
    let started: Int64
    private(set) var state = State.preparing
    private(set) var error: String?
    private(set) var bytes: Int64 = 0
    /// Records in batches the store committed (or already held), and in
    /// batches it refused.
    private(set) var stored: Int64 = 0
    private(set) var storeFailed: Int64 = 0

    private let loop: EventLoop
    private let store: MeasurementStore
    private let maxBytes: Int64
    private var multipart: MultipartReader?
    private var framer = IPALineFramer()
    private var pipeline: IngestPipeline?
    private var projectId: Int64 = 0
    private var window: Int64 = 0
    private var sequence: Int64 = 0
    private var inFlight = 0
    private var waitingForStore = false
    private var responder: HTTPResponder?
    /// Told once, when the upload is done or failed.
    var ended: ((CaptureUpload) -> Void)?

    init(id: String, project: String, loop: EventLoop, store: MeasurementStore, maxBytes: Int64, multipart: MultipartReader?) {
        self.id = id
        self.project = project
        agentId = "upload-" + project
        self.loop = loop
        self.store = store
        self.maxBytes = maxBytes
        self.multipart = multipart
        started = Clock.wallMillis()
    }

    // MARK: preparing

    /// Reads the project's id and rules and registers its virtual agent;
    /// the body waits (unread) meanwhile.
    func prepare(_ responder: HTTPResponder) {
        self.responder = responder
        store.projects { [self] result in
            guard state == .preparing else { return }
            switch result {
            case .failure(let e): return fail(APIError.store(e))
            case .success(let all):
                guard let p = all.first(where: { $0.name == project }) else {
                    return fail(.notFound("project '\(project)'"))
                }
                projectId = p.id
            }
            store.patterns(project: project) { [self] result in
                guard state == .preparing else { return }
                switch result {
                case .failure(let e): return fail(APIError.store(e))
                case .success(let set):
                    // The rules exactly as an agent of the project receives and reads them.
                    let wire = PatternDirectory.record(set)
                    let p = IngestPipeline(patterns: IPAPipeline.PatternSet(rules: wire.rules.map(FilterRule.init(wire:)),
                                                                            version: wire.version),
                                           aggregationIntervalMs: CaptureUpload.windowMs)
                    p.placeByTimestamp(TimePlacement(nowMs: { Clock.wallMillis() })) { [weak self] in self?.submit($0) }
                    pipeline = p
                }
                let hello = AgentHello(id: agentId, projectId: projectId, name: "upload", hostname: "collector",
                                       version: CollectorVersion.current, bootId: id, at: Clock.wallMillis(),
                                       mode: AgentRecord.uploadMode)
                store.agentConnected(hello) { [self] result in
                    guard state == .preparing else { return }
                    if case .failure(let e) = result { return fail(APIError.store(e)) }
                    setAgentState(.capturing)
                    state = .reading
                    window = windowStart(Clock.wallMillis())
                    responder.resumeBody()
                }
            }
        }
    }

    // MARK: HTTPBodyStream

    func consume(_ piece: UnsafeRawBufferPointer, _ responder: HTTPResponder) -> Int {
        guard state == .reading, let pipeline else { return 0 }
        if inFlight >= CaptureUpload.maxBatchesInFlight || store.stats.pendingRows > store.limits.maxPendingRows / 2 {
            waitingForStore = true
            return 0
        }
        let n = min(piece.count, CaptureUpload.sliceBytes)
        bytes += Int64(n)
        if bytes > maxBytes {
            fail(APIError(413, "upload too large", .object([("limit_bytes", .int(maxBytes))])))
            return n
        }
        let slice = UnsafeRawBufferPointer(rebasing: piece[0..<n])
        if multipart != nil {
            do {
                try multipart!.feed(slice) { content in framer.feed(content) { pipeline.ingest($0) } }
            } catch {
                fail(.badRequest("invalid multipart body", .string(error.description)))
                return n
            }
        } else {
            framer.feed(slice) { pipeline.ingest($0) }
        }
        flushIfWindowEnded()
        // The rest on a later iteration: one slice per iteration.
        if n < piece.count { loop.defer { [weak responder] in responder?.resumeBody() } }
        return n
    }

    func finish(_ responder: HTTPResponder) {
        guard state == .reading, let pipeline else { return }
        if let m = multipart {
            do { try m.finish() } catch { return fail(.badRequest("invalid multipart body", .string(error.description))) }
        }
        framer.finish { pipeline.ingest($0) }
        pipeline.closeTimedWindows()
        submit(pipeline.aggregator.flush(windowStartMs: window))
        state = .storing
        CountingResponder(responder, count: { _ in }).json(.object([
            ("id", .string(id)), ("url", .string(url)),
        ]), status: 202)
        if inFlight == 0 { complete() }
    }

    func cancelled() {
        guard state == .preparing || state == .reading else { return }
        fail(APIError(499, "upload cancelled", .string("the client went away before the whole file was sent")))
    }

    var url: String { "/api/v1/projects/\(APIHandler.pathSegment(project))/uploads/\(id)" }

    // MARK: storing

    private func windowStart(_ ms: Int64) -> Int64 { ms - ms % CaptureUpload.windowMs }

    private func flushIfWindowEnded() {
        let now = windowStart(Clock.wallMillis())
        guard now != window, let pipeline else { return }
        submit(pipeline.aggregator.flush(windowStartMs: window))
        window = now
    }

    private func submit(_ aggregates: [LatencyAggregate]) {
        guard !aggregates.isEmpty else { return }
        let rows = aggregates.map { a in
            MeasurementRow(ts: a.windowStartMs, windowMs: a.windowMs, monitor: a.monitor, check: a.check, source: a.source,
                           count: Int64(clamping: a.count), errors: Int64(clamping: a.outcomes.failures),
                           sumUs: Int64(clamping: a.sumUs), minUs: Int64(clamping: a.minUs),
                           maxUs: Int64(clamping: a.maxUs), p50Us: Int64(clamping: a.p50Us), p95Us: Int64(clamping: a.p95Us),
                           p99Us: Int64(clamping: a.p99Us),
                           outcomes: CollectorStore.Outcomes(s2xx: Int64(clamping: a.outcomes.s2xx), s3xx: Int64(clamping: a.outcomes.s3xx),
                                                             s4xx: Int64(clamping: a.outcomes.s4xx), s5xx: Int64(clamping: a.outcomes.s5xx),
                                                             error: Int64(clamping: a.outcomes.error)),
                           histogram: a.histogram)
        }
        let records = rows.reduce(Int64(0)) { $0 + $1.count }
        let batch = Batch(projectId: projectId, agentId: agentId, bootId: id, sequence: sequence, receivedAt: Clock.wallMillis(),
                          measurements: rows)
        sequence += 1
        inFlight += 1
        store.submitBatch(batch) { [self] result in
            inFlight -= 1
            switch result {
            case .success: stored += records
            case .failure(let e):
                storeFailed += records
                Log.warn("upload: a batch was not stored", ["upload": id, "project": project, "error": "\(e)"])
            }
            if waitingForStore {
                waitingForStore = false
                responder?.resumeBody()
            }
            if state == .storing && inFlight == 0 { complete() }
        }
    }

    private func complete() {
        state = .done
        setAgentState(.stopped)
        Log.info("upload done", ["upload": id, "project": project, "bytes": "\(bytes)", "read": "\(read)", "stored": "\(stored)"])
        ended?(self)
        ended = nil
    }

    /// Ends the upload with `e`; answered with it while the request is still open.
    private func fail(_ e: APIError) {
        guard state != .done && state != .failed else { return }
        let wasRegistered = state != .preparing
        state = .failed
        var text = e.error
        if let s = e.detail.stringValue {
            text += ": " + s
        } else if case .null = e.detail {} else {
            var b: [UInt8] = []
            e.detail.write(into: &b)
            text += ": " + String(decoding: b, as: UTF8.self)
        }
        error = text
        // Ignored once the request was answered (HTTPResponder keeps the first answer).
        if let responder, responder.isOpen { CountingResponder(responder, count: { _ in }).fail(e) }
        if wasRegistered { setAgentState(.stopped) }
        Log.info("upload failed", ["upload": id, "project": project, "error": error ?? ""])
        ended?(self)
        ended = nil
    }

    private func setAgentState(_ s: CollectorStore.AgentState) {
        store.setAgentState(agent: agentId, state: s, messages: [], at: Clock.wallMillis()) { r in
            if case .failure(let e) = r { Log.warn("upload: the virtual agent's state was not stored", ["error": "\(e)"]) }
        }
    }

    // MARK: what the API shows

    var read: Int64 {
        guard let c = pipeline?.counters else { return 0 }
        return Int64(clamping: c.records &+ c.parseDrops.total)
    }

    /// Lines and records not stored, by cause: the parser's causes, records
    /// no rule matched, records an exclude rule dropped, records the store refused.
    var dropped: [(String, Int64)] {
        let c = pipeline?.counters ?? IngestCounters()
        return IPADropCause.allCases.map { ($0.name, Int64(clamping: c.parseDrops[$0])) }
            + [("unmatched", Int64(clamping: c.unmatched)), ("excluded", Int64(clamping: c.excluded)), ("store_failed", storeFailed)]
    }

    var json: JSON {
        let shown = state == .preparing ? "running" : state == .reading || state == .storing ? "running" : state.rawValue
        return .object([
            ("id", .string(id)), ("project", .string(project)), ("agent", .string(agentId)), ("state", .string(shown)),
            ("bytes", .int(bytes)), ("read", .int(read)),
            ("dropped", .object(dropped.map { ($0.0, JSON.int($0.1)) })), ("stored", .int(stored)),
            ("error", .optional(error)), ("started", .int(started)),
        ])
    }
}
