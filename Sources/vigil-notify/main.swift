// vigil-notify: delivers one alert notification with libcurl and exits —
// an https webhook POST, or an e-mail over SMTP (smtp:// with STARTTLS when
// the server offers it, or smtps://). The collector never links libcurl
// (docs/ARCHITECTURE.md: its loader costs an idle process ~6 MB and the
// collector keeps the runners' dependencies out), so it spawns this program
// per delivery, a few at a time, with a deadline.
//
// The request comes on stdin as one JSON object — never in argv or the
// environment, which other users of the host can read (ps, /proc) — because
// it carries secrets (webhook tokens in the URL, SMTP passwords):
//   {"kind":"webhook","url":"https://…","content_type":"application/json","body":"…","timeout_ms":10000}
//   {"kind":"email","url":"smtp://host:25","from":"a@b","to":["c@d"],"username":"","password":"",
//    "subject":"…","text":"…","timeout_ms":10000}
// Both may carry `"headers":[["X-Vigil-Notification-Id","12"]]` (added to
// the POST or the e-mail) and `"parent_pid"`: the collector's pid. The
// helper then asks for SIGKILL when its parent dies (PR_SET_PDEATHSIG) and,
// if the parent is already gone, sends nothing — a delivery no collector
// could record would only be repeated by the one taking over.
// The answer is one JSON line on stdout, `{"ok":true,"status":200}` or
// `{"ok":false,"retry":true,"error":"…"}`, and the exit status: 0 sent,
// 1 failed but worth retrying (connection, timeout, 5xx, 429, SMTP 4xx),
// 2 failed for good (4xx, a refused recipient, a bad request). Errors name
// the server by scheme and host only.
//
// Single-threaded, blocking: it is its own short-lived process.
import CCurl
import CSystem
import Glibc
import JSON

func answer(_ ok: Bool, status: Int = 0, retry: Bool = false, error: String = "") -> Never {
    var o: [(String, JSON)] = [("ok", .bool(ok))]
    if status != 0 { o.append(("status", .int(status))) }
    if !ok { o.append(("retry", .bool(retry))); o.append(("error", .string(error))) }
    let line = JSON.object(o).serialized + "\n"
    _ = line.withCString { fputs($0, stdout) }
    fflush(stdout)
    exit(ok ? 0 : retry ? 1 : 2)
}

// stdin may arrive nonblocking (the pipe's file description is shared with the parent).
_ = fcntl(0, F_SETFL, fcntl(0, F_GETFL) & ~O_NONBLOCK)
_ = fcntl(1, F_SETFL, fcntl(1, F_GETFL) & ~O_NONBLOCK)
var input: [UInt8] = []
var chunk = [UInt8](repeating: 0, count: 16_384)
while input.count <= 1 << 20 {
    let n = read(0, &chunk, chunk.count)
    if n < 0 && errno == EINTR { continue }
    if n <= 0 { break }
    input.append(contentsOf: chunk[0..<n])
}
guard let req = try? JSON.parse(input), let kind = req["kind"]?.stringValue, let url = req["url"]?.stringValue else {
    answer(false, error: "expected a JSON request with kind and url on stdin")
}
let timeoutMs = Int(req["timeout_ms"]?.int64Value ?? 10_000)
// Die with the collector; refuse to start once it is gone (checked after the
// request, so a parent that died before prctl is seen too).
if let parent = req["parent_pid"]?.int64Value {
    guard csys_set_parent_death_signal(SIGKILL) == 0, Int64(getppid()) == parent else {
        answer(false, retry: true, error: "the collector is gone; nothing sent")
    }
}
let extraHeaders: [(String, String)] = (req["headers"]?.arrayValue ?? []).compactMap { h in
    guard let pair = h.arrayValue, pair.count == 2, let name = pair[0].stringValue, let value = pair[1].stringValue,
          !name.isEmpty, !(name + value).contains(where: { $0 == "\r" || $0 == "\n" || $0 == "\0" }), !name.contains(":") else { return nil }
    return (name, value)
}

var err = [CChar](repeating: 0, count: 256)
guard ccurl_load(nil, &err, err.count) == 0 else { answer(false, retry: true, error: "libcurl: " + String(cString: err)) }
guard let easy = ccurl_easy_init() else { answer(false, retry: true, error: "libcurl: curl_easy_init failed") }
var errorBuffer = [CChar](repeating: 0, count: Int(CURL_ERROR_SIZE) + 1)

func set(_ o: CURLoption, _ v: String) { _ = ccurl_easy_setopt_str(easy, o, v) }
func set(_ o: CURLoption, _ v: Int) { _ = ccurl_easy_setopt_long(easy, o, v) }

set(CURLOPT_URL, url)
set(CURLOPT_NOSIGNAL, 1)
set(CURLOPT_TIMEOUT_MS, timeoutMs)
set(CURLOPT_CONNECTTIMEOUT_MS, timeoutMs)
errorBuffer.withUnsafeMutableBytes { _ = ccurl_easy_setopt_ptr(easy, CURLOPT_ERRORBUFFER, $0.baseAddress) }
// The answer's body is not needed; without a write function libcurl would print it.
_ = ccurl_easy_setopt_writefunction(easy) { _, size, n, _ in size * n }

var headers: UnsafeMutablePointer<curl_slist>?
var recipients: UnsafeMutablePointer<curl_slist>?
var message: UnsafeMutablePointer<FILE>?
let bodyText: String
switch kind {
case "webhook":
    set(CURLOPT_PROTOCOLS_STR, "http,https")
    bodyText = req["body"]?.stringValue ?? ""
    headers = ccurl_slist_append(headers, "Content-Type: " + (req["content_type"]?.stringValue ?? "application/json"))
    headers = ccurl_slist_append(headers, "User-Agent: vigil-notify")
    for (name, value) in extraHeaders { headers = ccurl_slist_append(headers, "\(name): \(value)") }
    _ = ccurl_easy_setopt_slist(easy, CURLOPT_HTTPHEADER, headers)
    set(CURLOPT_POST, 1)
    set(CURLOPT_POSTFIELDSIZE, bodyText.utf8.count)
    set(CURLOPT_COPYPOSTFIELDS, bodyText)
case "email":
    set(CURLOPT_PROTOCOLS_STR, "smtp,smtps")
    set(CURLOPT_USE_SSL, Int(CURLUSESSL_TRY.rawValue))
    let from = req["from"]?.stringValue ?? ""
    let to = req["to"]?.arrayValue?.compactMap(\.stringValue) ?? []
    guard !from.isEmpty, !to.isEmpty else { answer(false, error: "an e-mail needs from and to") }
    set(CURLOPT_MAIL_FROM, "<\(from)>")
    for r in to { recipients = ccurl_slist_append(recipients, "<\(r)>") }
    _ = ccurl_easy_setopt_slist(easy, CURLOPT_MAIL_RCPT, recipients)
    if let u = req["username"]?.stringValue, !u.isEmpty { set(CURLOPT_USERNAME, u) }
    if let p = req["password"]?.stringValue, !p.isEmpty { set(CURLOPT_PASSWORD, p) }
    // Header lines must not carry a line break from a rule's name.
    let subject = (req["subject"]?.stringValue ?? "").filter { $0 != "\r" && $0 != "\n" }
    let text = (req["text"]?.stringValue ?? "").split(separator: "\n", omittingEmptySubsequences: false)
        .map { $0.hasPrefix(".") ? "." + $0 : String($0) }.joined(separator: "\r\n")
    bodyText = "From: <\(from)>\r\nTo: " + to.map { "<\($0)>" }.joined(separator: ", ") + "\r\nSubject: \(subject)\r\n"
        + extraHeaders.map { "\($0.0): \($0.1)\r\n" }.joined()
        + "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n" + text + "\r\n"
    // libcurl's default read function is fread on CURLOPT_READDATA.
    message = tmpfile()
    guard let message else { answer(false, retry: true, error: "tmpfile: errno \(errno)") }
    _ = bodyText.withCString { fputs($0, message) }
    rewind(message)
    _ = ccurl_easy_setopt_ptr(easy, CURLOPT_READDATA, UnsafeMutableRawPointer(message))
    set(CURLOPT_UPLOAD, 1)
    set(CURLOPT_INFILESIZE_LARGE, bodyText.utf8.count)
default:
    answer(false, error: "unknown kind \"\(kind)\" (webhook or email)")
}

let rc = ccurl_easy_perform(easy)
var code = 0
_ = ccurl_easy_getinfo_long(easy, CURLINFO_RESPONSE_CODE, &code)
if rc != CURLE_OK {
    let detail = String(cString: errorBuffer).isEmpty ? String(cString: ccurl_easy_strerror(rc)) : String(cString: errorBuffer)
    // A server's refusal (SMTP 5xx, a refused recipient) is final; the rest may pass later.
    let final = rc == CURLE_LOGIN_DENIED || rc == CURLE_UNSUPPORTED_PROTOCOL || rc == CURLE_URL_MALFORMAT
        || (kind == "email" && code >= 500) || rc == CURLE_SEND_FAIL_REWIND
    answer(false, status: code, retry: !final, error: detail)
}
if kind == "webhook" && !(200..<300).contains(code) {
    answer(false, status: code, retry: code >= 500 || code == 429, error: "HTTP \(code)")
}
answer(true, status: code)
