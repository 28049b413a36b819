// ConsoleSessions: the console's sign-in sessions. Signing in with the
// admin token (`POST /api/v1/session`) creates one: a random id the browser
// keeps in an HttpOnly, SameSite=Strict cookie, and a random anti-CSRF
// value the page keeps in memory and sends as `X-Vigil-CSRF` with every
// request that changes something. The admin token itself never reaches the
// page's storage.
//
// The table is bounded (`console_max_sessions`): a sign-in beyond it ends
// the least recently used session (counted). Sessions expire
// `console_session_ttl_ms` after sign-in; expired ones are dropped when met
// and swept at every sign-in. Changing the admin token (SIGHUP) ends them
// all: a session stands for the token it was opened with.
//
// Cookie parsing lives here, in the API layer, not in HTTPServer.
//
// Thread: loop thread.
import Reactor
import Wire

final class ConsoleSessions {
    static let cookieName = "vigil_session"
    static let csrfHeader = "x-vigil-csrf"

    struct Session {
        let csrf: String
        let created: Double
        let expires: Double
        var lastUsed: Double
    }

    var maxSessions: Int
    var ttl: Double
    /// Injected for tests; monotonic seconds.
    var now: () -> Double = Clock.monotonic
    private var table: [String: Session] = [:]

    private(set) var signIns: UInt64 = 0
    private(set) var refusedSignIns: UInt64 = 0
    private(set) var evicted: UInt64 = 0
    private(set) var expired: UInt64 = 0
    private(set) var signOuts: UInt64 = 0

    init(maxSessions: Int, ttl: Double) {
        self.maxSessions = max(1, maxSessions)
        self.ttl = ttl
    }

    var count: Int { table.count }

    /// A new session: its id (the cookie's value) and its CSRF value.
    func open() -> (id: String, session: Session) {
        sweep()
        while table.count >= maxSessions, let oldest = table.min(by: { $0.value.lastUsed < $1.value.lastUsed }) {
            table.removeValue(forKey: oldest.key)
            evicted &+= 1
        }
        let t = now()
        let id = Base64URL.encode(Key32.random().bytes)
        let s = Session(csrf: Base64URL.encode(Key32.random().bytes), created: t, expires: t + ttl, lastUsed: t)
        table[id] = s
        signIns &+= 1
        return (id, s)
    }

    func noteRefusedSignIn() { refusedSignIns &+= 1 }

    /// The live session named by the request's cookie, if any.
    func session(for cookieHeader: String?) -> (id: String, session: Session)? {
        guard let id = ConsoleSessions.cookie(ConsoleSessions.cookieName, in: cookieHeader), var s = table[id] else { return nil }
        let t = now()
        if t >= s.expires {
            table.removeValue(forKey: id)
            expired &+= 1
            return nil
        }
        s.lastUsed = t
        table[id] = s
        return (id, s)
    }

    func close(_ id: String) {
        if table.removeValue(forKey: id) != nil { signOuts &+= 1 }
    }

    func closeAll() { table.removeAll() }

    /// Whether `given` is the session's CSRF value (constant time).
    static func csrfMatches(_ given: String?, _ s: Session) -> Bool {
        guard let given else { return false }
        return constantTimeEqual(Array(given.utf8), Array(s.csrf.utf8))
    }

    static func constantTimeEqual(_ given: [UInt8], _ want: [UInt8]) -> Bool {
        var diff = UInt8(given.count == want.count ? 0 : 1)
        for i in 0..<want.count { diff |= want[i] ^ (i < given.count ? given[i] : 0) }
        return diff == 0 && !want.isEmpty
    }

    private func sweep() {
        let t = now()
        let dead = table.filter { t >= $0.value.expires }.map(\.key)
        for id in dead { table.removeValue(forKey: id) }
        expired &+= UInt64(dead.count)
    }

    /// The value of cookie `name` in a `Cookie:` header (RFC 6265 §5.4:
    /// `name=value` pairs separated by `; `); nil when absent. A value in
    /// double quotes is unquoted; a name given twice takes the first.
    static func cookie(_ name: String, in header: String?) -> String? {
        guard let header else { return nil }
        for pair in header.split(separator: ";") {
            let p = pair.drop(while: { $0 == " " || $0 == "\t" })
            guard let eq = p.firstIndex(of: "="), p[..<eq] == name else { continue }
            var v = p[p.index(after: eq)...]
            while v.last == " " || v.last == "\t" { v = v.dropLast() }
            if v.count >= 2, v.first == "\"", v.last == "\"" { v = v.dropFirst().dropLast() }
            return String(v)
        }
        return nil
    }

    /// The Set-Cookie value that opens `id` for the browser.
    func setCookie(_ id: String) -> String {
        "\(ConsoleSessions.cookieName)=\(id); Path=/; HttpOnly; SameSite=Strict; Max-Age=\(Int(ttl))"
    }

    /// The Set-Cookie value that removes the cookie.
    static let clearCookie = "\(cookieName)=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"
}
