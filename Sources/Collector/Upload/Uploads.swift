// Uploads: the capture uploads of this collector — those running and the
// most recent finished ones (at most `keptFinished`), by id, for
// `GET /api/v1/projects/{project}/uploads/{id}` — and their limits: the
// size of one upload (`upload_max_bytes`) and how many run at once
// (`upload_max_concurrent`). Every refusal is counted by cause, for /metrics.
// A finished upload's figures live in memory only: a restart forgets them
// (what it stored stays in the store).
//
// Thread: loop thread.
import CollectorStore
import HTTPServer
import Reactor

final class Uploads {
    static let keptFinished = 64

    let loop: EventLoop
    let store: MeasurementStore
    var maxBytes: Int64
    var maxConcurrent: Int
    private var all: [String: CaptureUpload] = [:]
    /// Finished uploads' ids, oldest first.
    private var finished: [String] = []
    private var next: UInt64 = 0
    private let bootMark = Clock.wallMillis()

    private(set) var running = 0
    /// Uploads by how they ended or why they were refused (/metrics).
    private(set) var outcomes: [String: UInt64] = [:]
    private(set) var bytesRead: UInt64 = 0
    static let outcomeNames = ["done", "failed", "refused_size", "refused_concurrency", "refused_type"]

    init(loop: EventLoop, store: MeasurementStore, maxBytes: Int64, maxConcurrent: Int) {
        self.loop = loop
        self.store = store
        self.maxBytes = maxBytes
        self.maxConcurrent = maxConcurrent
    }

    func upload(_ id: String) -> CaptureUpload? { all[id] }

    func refused(_ cause: String) { outcomes[cause, default: 0] &+= 1 }

    /// A new upload, or the refusal to answer: 413 when the declared length
    /// is over the limit, 429 when `upload_max_concurrent` run already.
    func start(project: String, contentLength: Int64?, multipart: MultipartReader?) -> Result<CaptureUpload, APIError> {
        if let n = contentLength, n > maxBytes {
            refused("refused_size")
            return .failure(APIError(413, "upload too large", .object([("limit_bytes", .int(maxBytes)), ("bytes", .int(n))])))
        }
        guard running < maxConcurrent else {
            refused("refused_concurrency")
            return .failure(APIError(429, "too many uploads", .object([("running", .int(Int64(running))),
                                                                       ("limit", .int(Int64(maxConcurrent)))])))
        }
        next &+= 1
        let u = CaptureUpload(id: "\(bootMark)-\(next)", project: project, loop: loop, store: store, maxBytes: maxBytes,
                              multipart: multipart)
        running += 1
        all[u.id] = u
        u.ended = { [weak self] u in self?.ended(u) }
        return .success(u)
    }

    private func ended(_ u: CaptureUpload) {
        running -= 1
        bytesRead &+= UInt64(max(0, u.bytes))
        outcomes[u.state == .done ? "done" : "failed", default: 0] &+= 1
        finished.append(u.id)
        if finished.count > Uploads.keptFinished { all.removeValue(forKey: finished.removeFirst()) }
    }
}
