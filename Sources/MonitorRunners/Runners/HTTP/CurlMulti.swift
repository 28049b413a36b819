// CurlMulti: libcurl's multi-socket interface driven by the Reactor.
//
// libcurl tells us which sockets to watch (CURLMOPT_SOCKETFUNCTION) and
// when to call it back (CURLMOPT_TIMERFUNCTION); we map the first to one
// IOWatcher per socket and the second to one TimerWatcher, and call
// curl_multi_socket_action from those watchers (curl_multi_socket_action(3),
// "the hiredis adapter" shape: the protocol library owns no loop). Nothing
// blocks: name lookups run in libcurl's resolver thread, transfers are
// nonblocking sockets.
//
// Rules kept here:
//  - Never call into libcurl from inside its callbacks: the socket callback
//    only edits watchers and the timer callback only arms the timer (a 0 ms
//    timeout fires on the next iteration instead of at once).
//  - CURL_POLL_REMOVE stops the socket's watcher before libcurl closes the
//    descriptor; a later socket with the same number gets a new watcher.
//  - Finished transfers are collected (curl_multi_info_read) after each
//    socket_action and completed from there, outside libcurl's callbacks.
//
// Thread: loop thread only. Ownership: the engine owns the one CurlMulti;
// it holds each transfer until completion or `remove`.
import CCurl
import Reactor

final class CurlMulti {
    let loop: EventLoop
    private var multi: UnsafeMutableRawPointer?
    private var sockets: [Int32: IOWatcher] = [:]
    private var timer: TimerWatcher!
    private var transfers: [UnsafeMutableRawPointer: CurlTransfer] = [:]

    /// Transfers in progress.
    var activeCount: Int { transfers.count }
    /// Sockets libcurl asked us to watch right now.
    var watchedSockets: Int { sockets.count }

    init(loop: EventLoop) throws(CurlUnavailable) {
        self.loop = loop
        guard let m = ccurl_multi_init() else { throw CurlUnavailable(message: "curl_multi_init failed") }
        multi = m
        timer = TimerWatcher(loop: loop) { [unowned self] _ in self.action(CURL_SOCKET_BAD, 0) }
        let me = Unmanaged.passUnretained(self).toOpaque()
        ccurl_multi_setopt_socketfunction(m) { _, fd, what, userp, _ in
            let multi = Unmanaged<CurlMulti>.fromOpaque(userp!).takeUnretainedValue()
            multi.watch(fd: fd, what: what)
            return 0
        }
        ccurl_multi_setopt_ptr(m, CURLMOPT_SOCKETDATA, me)
        ccurl_multi_setopt_timerfunction(m) { _, timeoutMs, userp in
            let multi = Unmanaged<CurlMulti>.fromOpaque(userp!).takeUnretainedValue()
            multi.armTimer(timeoutMs)
            return 0
        }
        ccurl_multi_setopt_ptr(m, CURLMOPT_TIMERDATA, me)
    }

    deinit { shutdown() }

    /// Starts `t`. Its completion comes from a later loop callback.
    func add(_ t: CurlTransfer) throws(CurlFailure) {
        guard let m = multi else { throw CurlFailure(message: "HTTP engine shut down") }
        let rc = ccurl_multi_add_handle(m, t.easy)
        guard rc == CURLM_OK else { throw CurlFailure(message: "curl_multi_add_handle: \(String(cString: ccurl_multi_strerror(rc)))") }
        transfers[t.easy] = t
    }

    /// Cancels `t` (no completion is delivered).
    func remove(_ t: CurlTransfer) {
        guard let m = multi, transfers.removeValue(forKey: t.easy) != nil else { return }
        ccurl_multi_remove_handle(m, t.easy)
    }

    /// Cancels everything and frees the multi handle.
    func shutdown() {
        guard let m = multi else { return }
        for t in transfers.values { ccurl_multi_remove_handle(m, t.easy) }
        transfers.removeAll()
        for w in sockets.values { w.stop() }
        sockets.removeAll()
        timer.stop()
        // No callbacks into a dying object during cleanup.
        ccurl_multi_setopt_socketfunction(m, nil)
        ccurl_multi_setopt_timerfunction(m, nil)
        ccurl_multi_cleanup(m)
        multi = nil
    }

    // MARK: libcurl's callbacks (no calls back into libcurl here)

    private func watch(fd: Int32, what: Int32) {
        if what == CURL_POLL_REMOVE {
            sockets.removeValue(forKey: fd)?.stop()
            return
        }
        var events: IOEvents = []
        if what & CURL_POLL_IN != 0 { events.insert(.read) }
        if what & CURL_POLL_OUT != 0 { events.insert(.write) }
        if let w = sockets[fd] {
            if events.isEmpty { w.stop() } else { w.set(events: events); w.start() }
            return
        }
        guard !events.isEmpty else { return }
        let w = IOWatcher(loop: loop, fd: fd, events: events) { [unowned self] w, ev in
            var flags: Int32 = 0
            if ev.contains(.read) { flags |= CURL_CSELECT_IN }
            if ev.contains(.write) { flags |= CURL_CSELECT_OUT }
            self.action(w.fd, flags)
        }
        sockets[fd] = w
        w.start()
    }

    private func armTimer(_ timeoutMs: Int) {
        if timeoutMs < 0 {
            timer.stop()
        } else {
            timer.start(after: Double(timeoutMs) / 1000)
        }
    }

    // MARK: driving

    private func action(_ fd: Int32, _ flags: Int32) {
        guard let m = multi else { return }
        var running: Int32 = 0
        _ = ccurl_multi_socket_action(m, fd, flags, &running)
        var easy: UnsafeMutableRawPointer?
        var code = CURLE_OK
        while multi != nil, ccurl_multi_next_done(m, &easy, &code) == 1 {
            guard let e = easy, let t = transfers.removeValue(forKey: e) else { continue }
            ccurl_multi_remove_handle(m, e)
            t.finish(code)
        }
    }
}

/// A libcurl call failed while setting up a transfer.
struct CurlFailure: Error, CustomStringConvertible {
    let message: String
    var description: String { message }
}

/// One easy handle and what it needs to stay alive while libcurl uses it:
/// the header list, the error buffer, the body counter. `onFinish` runs once
/// with libcurl's result; the transfer frees everything in deinit.
final class CurlTransfer {
    let easy: UnsafeMutableRawPointer
    private var headers: UnsafeMutablePointer<curl_slist>?
    let errorBuffer: UnsafeMutablePointer<CChar>
    private(set) var bodyBytes: UInt64 = 0
    var onFinish: ((CURLcode) -> Void)?

    init() throws(CurlFailure) {
        guard let e = ccurl_easy_init() else { throw CurlFailure(message: "curl_easy_init failed") }
        easy = e
        errorBuffer = .allocate(capacity: Int(CURL_ERROR_SIZE))
        errorBuffer.initialize(repeating: 0, count: Int(CURL_ERROR_SIZE))
        try set(CURLOPT_ERRORBUFFER, pointer: UnsafeMutableRawPointer(errorBuffer))
        // The body is counted and discarded: memory stays flat whatever the size.
        ccurl_easy_setopt_writefunction(easy) { _, size, n, userdata in
            let t = Unmanaged<CurlTransfer>.fromOpaque(userdata!).takeUnretainedValue()
            t.bodyBytes &+= UInt64(size * n)
            return size * n
        }
        try set(CURLOPT_WRITEDATA, pointer: Unmanaged.passUnretained(self).toOpaque())
    }

    deinit {
        ccurl_easy_cleanup(easy)
        if let headers { ccurl_slist_free_all(headers) }
        errorBuffer.deallocate()
    }

    func finish(_ code: CURLcode) {
        let f = onFinish
        onFinish = nil
        f?(code)
    }

    /// libcurl's own message for the last failure, or its generic one.
    func errorText(_ code: CURLcode) -> String {
        errorBuffer.pointee != 0 ? String(cString: errorBuffer) : String(cString: ccurl_easy_strerror(code))
    }

    func set(_ option: CURLoption, _ value: Int) throws(CurlFailure) {
        try check(ccurl_easy_setopt_long(easy, option, value), option)
    }

    func set(_ option: CURLoption, _ value: String) throws(CurlFailure) {
        try check(ccurl_easy_setopt_str(easy, option, value), option)
    }

    func set(_ option: CURLoption, pointer: UnsafeMutableRawPointer?) throws(CurlFailure) {
        try check(ccurl_easy_setopt_ptr(easy, option, pointer), option)
    }

    func set(_ option: CURLoption, offset: Int64) throws(CurlFailure) {
        try check(ccurl_easy_setopt_off(easy, option, curl_off_t(offset)), option)
    }

    /// CURLOPT_HTTPHEADER; the list lives as long as the transfer.
    func setHeaders(_ lines: [String]) throws(CurlFailure) {
        var list: UnsafeMutablePointer<curl_slist>?
        for l in lines {
            guard let next = ccurl_slist_append(list, l) else {
                if let list { ccurl_slist_free_all(list) }
                throw CurlFailure(message: "curl_slist_append failed")
            }
            list = next
        }
        headers = list
        try check(ccurl_easy_setopt_slist(easy, CURLOPT_HTTPHEADER, list), CURLOPT_HTTPHEADER)
    }

    func info(_ i: CURLINFO) -> Int {
        var v = 0
        return ccurl_easy_getinfo_long(easy, i, &v) == CURLE_OK ? v : 0
    }

    /// A CURLINFO_*_T value (times in µs, sizes in bytes); 0 when unknown.
    func infoOff(_ i: CURLINFO) -> UInt64 {
        var v: curl_off_t = 0
        return ccurl_easy_getinfo_off(easy, i, &v) == CURLE_OK && v > 0 ? UInt64(v) : 0
    }

    private func check(_ rc: CURLcode, _ option: CURLoption) throws(CurlFailure) {
        guard rc == CURLE_OK else {
            throw CurlFailure(message: "curl_easy_setopt(\(option.rawValue)): \(String(cString: ccurl_easy_strerror(rc)))")
        }
    }
}
