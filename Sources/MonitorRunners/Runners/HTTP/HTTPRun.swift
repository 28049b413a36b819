// HTTPRun: one HTTP(S) request through the engine's CurlMulti.
//
// Each run measures a fresh request: no connection reuse and no DNS cache
// (CURLOPT_FORBID_REUSE, CURLOPT_FRESH_CONNECT, CURLOPT_DNS_CACHE_TIMEOUT 0),
// only http and https (also for redirects), no signals (CURLOPT_NOSIGNAL),
// and the monitor's timeout as CURLOPT_TIMEOUT_MS for the whole request.
//
// Phases, from libcurl's cumulative CURLINFO_*_TIME_T (µs since the start):
//   dns      = NAMELOOKUP
//   connect  = CONNECT − NAMELOOKUP
//   tls      = APPCONNECT − CONNECT                       (https only)
//   ttfb     = STARTTRANSFER − max(APPCONNECT, CONNECT)   (request sent → first byte)
//   transfer = TOTAL − STARTTRANSFER
//   redirect = REDIRECT                                   (when redirects were followed)
import CCurl
import MonitorModel
import Reactor
import Wire

final class HTTPRun: MonitorRun {
    private let multi: CurlMulti
    private let loop: EventLoop
    private let context: RunContext
    private let check: HTTPCheck
    private let env: EnvResolver
    private let userAgent: String
    private var transfer: CurlTransfer?
    private var done = false

    /// `check` has its `${env:…}` references resolved already; `env`
    /// redacts their values from messages.
    init(multi: CurlMulti, context: RunContext, check: HTTPCheck, env: EnvResolver, userAgent: String) {
        self.multi = multi
        self.loop = multi.loop
        self.context = context
        self.check = check
        self.env = env
        self.userAgent = userAgent
    }

    func start() {
        do {
            let t = try makeTransfer()
            t.onFinish = { [unowned self] code in self.finished(code) }
            transfer = t
            try multi.add(t)
        } catch {
            transfer = nil
            let message = env.redact("request setup failed: \(error.message)")
            loop.defer { [self] in
                guard !done else { return }
                done = true
                context.complete(context.result(.error, message: message, durationUs: 0))
            }
        }
    }

    func cancel() {
        done = true
        if let t = transfer { multi.remove(t) }
        transfer = nil
    }

    private func makeTransfer() throws(CurlFailure) -> CurlTransfer {
        let t = try CurlTransfer()
        try t.set(CURLOPT_URL, check.url)
        try t.set(CURLOPT_PROTOCOLS_STR, "http,https")
        try t.set(CURLOPT_REDIR_PROTOCOLS_STR, "http,https")
        try t.set(CURLOPT_NOSIGNAL, 1)
        try t.set(CURLOPT_TIMEOUT_MS, Int(context.definition.timeoutMs))
        try t.set(CURLOPT_FORBID_REUSE, 1)
        try t.set(CURLOPT_FRESH_CONNECT, 1)
        try t.set(CURLOPT_DNS_CACHE_TIMEOUT, 0)
        try t.set(CURLOPT_USERAGENT, userAgent)
        try t.set(CURLOPT_FOLLOWLOCATION, check.followRedirects ? 1 : 0)
        try t.set(CURLOPT_MAXREDIRS, 10)
        try t.set(CURLOPT_SSL_VERIFYPEER, check.tlsVerify ? 1 : 0)
        try t.set(CURLOPT_SSL_VERIFYHOST, check.tlsVerify ? 2 : 0)
        switch check.method {
        case "GET": break
        case "HEAD": try t.set(CURLOPT_NOBODY, 1)
        default: try t.set(CURLOPT_CUSTOMREQUEST, check.method)
        }
        if let body = check.body {
            // COPYPOSTFIELDS: libcurl keeps its own copy for the transfer.
            try t.set(CURLOPT_POSTFIELDSIZE_LARGE, offset: Int64(body.utf8.count))
            try t.set(CURLOPT_COPYPOSTFIELDS, body)
            if check.method != "POST" { try t.set(CURLOPT_CUSTOMREQUEST, check.method) }
        }
        if !check.headers.isEmpty {
            try t.setHeaders(check.headers.map { "\($0.name): \($0.value)" })
        }
        return t
    }

    private func finished(_ code: CURLcode) {
        guard !done, let t = transfer else { return }
        done = true
        transfer = nil
        let dns = t.infoOff(CURLINFO_NAMELOOKUP_TIME_T)
        let connect = t.infoOff(CURLINFO_CONNECT_TIME_T)
        let app = t.infoOff(CURLINFO_APPCONNECT_TIME_T)
        let first = t.infoOff(CURLINFO_STARTTRANSFER_TIME_T)
        let total = t.infoOff(CURLINFO_TOTAL_TIME_T)
        let redirect = t.infoOff(CURLINFO_REDIRECT_TIME_T)
        let status = t.info(CURLINFO_RESPONSE_CODE)
        let bytes = t.bodyBytes

        var phases = [PhaseTiming("dns", dns)]
        if connect > 0 { phases.append(PhaseTiming("connect", connect &- min(dns, connect))) }
        if app > 0 { phases.append(PhaseTiming("tls", app &- min(connect, app))) }
        let sent = max(app, connect)
        if first > 0 { phases.append(PhaseTiming("ttfb", first &- min(sent, first))) }
        if first > 0 && total >= first { phases.append(PhaseTiming("transfer", total - first)) }
        if redirect > 0 { phases.append(PhaseTiming("redirect", redirect)) }

        let duration = total > 0 ? total : context.elapsedUs
        var outcome = MonitorStatus.ok
        var message = ""
        if code == CURLE_OK {
            if !check.accepts(status: status) {
                outcome = .error
                message = "unexpected HTTP status \(status) (expected \(check.expectStatus.map(\.description).joined(separator: ", ")))"
            }
        } else if code == CURLE_OPERATION_TIMEDOUT {
            outcome = .timeout
            let stage = dns == 0 ? "resolving the host" : connect == 0 ? "connecting"
                : (app == 0 && isHTTPS) ? "in the TLS handshake" : first == 0 ? "waiting for the first byte" : "reading the body"
            message = "timeout after \(context.definition.timeoutMs) ms \(stage)"
        } else {
            outcome = .error
            message = "\(HTTPRun.category(code)) (curl error \(code.rawValue)): \(t.errorText(code))"
        }
        context.complete(context.result(outcome, message: env.redact(message), durationUs: duration, phases: phases,
                                        protocolStatus: UInt32(clamping: status), bytes: bytes))
    }

    private var isHTTPS: Bool { HTTPRun.isHTTPS(check.url) }

    static func isHTTPS(_ url: String) -> Bool { url.utf8.count > 8 && url.prefix(8).lowercased() == "https://" }

    /// What kind of failure a libcurl result is, in words the message starts with.
    static func category(_ code: CURLcode) -> String {
        switch code {
        case CURLE_SSL_CONNECT_ERROR, CURLE_PEER_FAILED_VERIFICATION, CURLE_SSL_CERTPROBLEM, CURLE_SSL_CIPHER,
             CURLE_SSL_CACERT_BADFILE, CURLE_SSL_ISSUER_ERROR, CURLE_SSL_PINNEDPUBKEYNOTMATCH,
             CURLE_SSL_INVALIDCERTSTATUS, CURLE_SSL_CLIENTCERT, CURLE_SSL_ENGINE_NOTFOUND,
             CURLE_SSL_ENGINE_SETFAILED, CURLE_SSL_ENGINE_INITFAILED, CURLE_SSL_CRL_BADFILE,
             CURLE_SSL_SHUTDOWN_FAILED:
            return "TLS failure"
        case CURLE_COULDNT_RESOLVE_HOST: return "DNS failure"
        case CURLE_COULDNT_CONNECT: return "connect failed"
        case CURLE_TOO_MANY_REDIRECTS: return "too many redirects"
        case CURLE_GOT_NOTHING, CURLE_RECV_ERROR, CURLE_SEND_ERROR, CURLE_PARTIAL_FILE: return "connection failed"
        case CURLE_UNSUPPORTED_PROTOCOL, CURLE_URL_MALFORMAT: return "bad URL"
        default: return "request failed"
        }
    }
}

extension Error {
    /// The message of our own errors, else the error's description.
    var message: String {
        if let e = self as? CurlFailure { return e.message }
        return "\(self)"
    }
}
