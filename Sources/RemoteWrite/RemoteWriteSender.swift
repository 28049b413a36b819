// RemoteWriteSender: Prometheus remote write 1.0 from the loop — a bounded
// queue of series, cut into requests of at most `maxSamplesPerRequest`
// samples, each a protobuf WriteRequest compressed with snappy and POSTed
// by `HTTPPoster`, one request at a time.
//
// What the spec asks, and how:
//  - 2xx: sent. 4xx (but 429): the receiver will never take these bytes;
//    the request's samples are dropped and counted (`rejected`), never
//    retried. 5xx, 429, connection errors and timeouts: the same request
//    is sent again after a backoff (Reactor's `Backoff`, jittered, doubling
//    to `backoffCap`), its samples counted as retried each time.
//  - Memory is bounded: at most `maxQueuedSamples` samples wait, plus the
//    one request in flight. When the receiver is slow or down the queue
//    fills and the *oldest* series are dropped, counted (`queue_full`):
//    recent data matters most, and the sender only ever drops its own
//    copies — the store and the agents' acknowledgements never wait on it.
//  - `enqueue` only appends; requests are built from a timer (every
//    `flushInterval`) or a deferred slice once a full request is waiting,
//    never inside the caller's call.
//  - Lag: how long the oldest sample not yet accepted has been waiting
//    (queued or in flight), in seconds.
//
// The Authorization header's value (from a file) is sent and never logged.
//
// Thread: the loop thread.
import Reactor

public struct RemoteWriteOptions: Sendable {
    public var url: RemoteWriteURL
    /// The whole Authorization header value (`Basic …`, `Bearer …`), or nil.
    public var authorization: String?
    /// The CAs that verify an https receiver; required for an https URL.
    public var tlsCredentials: TLSCredentials?
    public var maxSamplesPerRequest = 2000
    public var maxQueuedSamples = 100_000
    public var flushInterval = 1.0
    public var timeout = 10.0
    public var backoffMin = 0.5
    public var backoffMax = 1.0
    public var backoffCap = 30.0
    public var userAgent = "vigil"

    public init(url: RemoteWriteURL) { self.url = url }
}

public struct RemoteWriteStats: Sendable {
    public var samplesQueued: UInt64 = 0
    public var samplesSent: UInt64 = 0
    /// Oldest samples dropped for a full queue.
    public var droppedQueueFull: UInt64 = 0
    /// Samples of requests a receiver refused with a 4xx (not retried).
    public var droppedRejected: UInt64 = 0
    /// Samples sent again after a 5xx, 429, connection error or timeout.
    public var samplesRetried: UInt64 = 0
    public var requestsOK: UInt64 = 0
    public var requestsRejected: UInt64 = 0
    public var requestsServerError: UInt64 = 0
    public var requestsFailed: UInt64 = 0
    /// Compressed body bytes of accepted requests.
    public var bytesSent: UInt64 = 0

    public init() {}
}

public final class RemoteWriteSender {
    public let loop: EventLoop
    public let options: RemoteWriteOptions
    public private(set) var stats = RemoteWriteStats()
    private let poster: HTTPPoster
    private var queue: [(series: Series, at: Double)] = []
    private var head = 0
    public private(set) var queuedSamples = 0
    private var inFlight: (body: [UInt8], samples: Int, oldest: Double)?
    private var backoff: Backoff<XorShiftRandom>
    private var waitingToRetry = false
    private var flushTimer: TimerWatcher?
    private var retryTimer: TimerWatcher?
    private var sendSoon: DeferOnce!
    private var closed = false
    /// A 4xx is logged at most once a minute (a receiver that refuses one
    /// request usually refuses the next as well).
    private var lastRejectLog = -1e9

    public init(loop: EventLoop, options: RemoteWriteOptions) {
        self.loop = loop
        self.options = options
        poster = HTTPPoster(loop: loop, url: options.url, timeout: options.timeout, credentials: options.tlsCredentials)
        backoff = Backoff(min: options.backoffMin, max: options.backoffMax, flatRounds: 1, cap: options.backoffCap,
                          random: XorShiftRandom())
        sendSoon = DeferOnce(loop: loop) { [weak self] in self?.sendNext() }
    }

    public func start() {
        let t = TimerWatcher(loop: loop) { [weak self] _ in self?.sendNext() }
        t.start(after: options.flushInterval, repeat: options.flushInterval)
        flushTimer = t
    }

    /// Stops sending; what is queued or in flight is dropped.
    public func close() {
        closed = true
        flushTimer?.stop()
        retryTimer?.stop()
        poster.close()
    }

    /// Queues one series (its samples in timestamp order). Returns at once;
    /// the oldest series make room when the queue is full.
    public func enqueue(_ s: Series) {
        guard !closed, !s.samples.isEmpty else { return }
        let n = s.samples.count
        stats.samplesQueued &+= UInt64(n)
        if n > options.maxQueuedSamples {
            stats.droppedQueueFull &+= UInt64(n)
            return
        }
        while queuedSamples + n > options.maxQueuedSamples, head < queue.count {
            let dropped = queue[head].series.samples.count
            queue[head] = (Series(name: "", labels: [], samples: []), 0)
            head += 1
            queuedSamples -= dropped
            stats.droppedQueueFull &+= UInt64(dropped)
        }
        compact()
        queue.append((s, Clock.monotonic()))
        queuedSamples += n
        if queuedSamples >= options.maxSamplesPerRequest && inFlight == nil && !waitingToRetry { sendSoon.schedule() }
    }

    /// Seconds the oldest sample not yet accepted has waited; 0 if none.
    public var lagSeconds: Double {
        let oldest = inFlight?.oldest ?? (head < queue.count ? queue[head].at : nil)
        guard let oldest else { return 0 }
        return max(0, Clock.monotonic() - oldest)
    }

    public var isIdle: Bool { inFlight == nil && queuedSamples == 0 }

    private func compact() {
        if head > 0 && head * 2 >= queue.count {
            queue.removeFirst(head)
            head = 0
        }
    }

    // MARK: requests

    private func sendNext() {
        guard !closed, inFlight == nil, !waitingToRetry, head < queue.count else { return }
        var batch: [Series] = []
        var samples = 0
        let oldest = queue[head].at
        while head < queue.count {
            let n = queue[head].series.samples.count
            if samples > 0 && samples + n > options.maxSamplesPerRequest { break }
            batch.append(queue[head].series)
            queue[head] = (Series(name: "", labels: [], samples: []), 0)
            head += 1
            samples += n
        }
        queuedSamples -= samples
        compact()
        let body = Snappy.compress(WriteRequestEncoder.encode(batch))
        inFlight = (body, samples, oldest)
        post()
    }

    private func post() {
        guard let f = inFlight else { return }
        var headers = [("Content-Encoding", "snappy"), ("Content-Type", "application/x-protobuf"),
                       ("User-Agent", options.userAgent), ("X-Prometheus-Remote-Write-Version", "0.1.0")]
        if let a = options.authorization { headers.append(("Authorization", a)) }
        poster.post(headers: headers, body: f.body) { [weak self] r in self?.answered(r) }
    }

    private func answered(_ r: Result<HTTPResponse, HTTPPoster.Failure>) {
        guard let f = inFlight, !closed else { return }
        switch r {
        case .success(let resp) where (200..<300).contains(resp.status):
            stats.requestsOK &+= 1
            stats.samplesSent &+= UInt64(f.samples)
            stats.bytesSent &+= UInt64(f.body.count)
            backoff.reset()
            inFlight = nil
            if queuedSamples >= options.maxSamplesPerRequest { sendSoon.schedule() }
        case .success(let resp) where (400..<500).contains(resp.status) && resp.status != 429:
            stats.requestsRejected &+= 1
            stats.droppedRejected &+= UInt64(f.samples)
            inFlight = nil
            let now = Clock.monotonic()
            if now - lastRejectLog >= 60 {
                lastRejectLog = now
                Log.warn("remote write: request refused; its samples are dropped",
                         ["url": options.url.description, "status": "\(resp.status)", "samples": "\(f.samples)",
                          "answer": RemoteWriteSender.printable(resp.body)])
            }
            if queuedSamples >= options.maxSamplesPerRequest { sendSoon.schedule() }
        case .success(let resp):
            stats.requestsServerError &+= 1
            retryLater("status \(resp.status)")
        case .failure(let e):
            stats.requestsFailed &+= 1
            retryLater(e.description)
        }
    }

    private func retryLater(_ why: String) {
        guard let f = inFlight else { return }
        let delay = backoff.next()
        if backoff.round == 1 || backoff.round % 10 == 0 {
            Log.warn("remote write: request failed; retrying", ["url": options.url.description, "error": why,
                                                                 "retry_in_s": "\(Double(Int(delay * 10)) / 10)",
                                                                 "attempt": "\(backoff.round)"])
        }
        waitingToRetry = true
        let t = retryTimer ?? TimerWatcher(loop: loop) { [weak self] _ in self?.retry() }
        retryTimer = t
        t.start(after: delay)
        _ = f
    }

    private func retry() {
        guard let f = inFlight, !closed else { return }
        waitingToRetry = false
        stats.samplesRetried &+= UInt64(f.samples)
        post()
    }

    /// A receiver's answer as one log field: printable ASCII, at most 200 bytes.
    static func printable(_ body: [UInt8]) -> String {
        String(decoding: body.prefix(200).map { $0 >= 0x20 && $0 < 0x7F ? $0 : UInt8(ascii: " ") }, as: UTF8.self)
    }
}
