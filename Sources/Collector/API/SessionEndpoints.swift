// The console's sign-in endpoints: `POST /api/v1/session` trades the admin
// token for a session cookie and an anti-CSRF value, `GET` says how the
// caller is signed in (and gives a reloaded page its CSRF value back),
// `DELETE` signs out. See ConsoleSessions and docs/API.md.
//
// Thread: loop thread.
import HTTPServer
import JSON

extension APIHandler {
    /// `{"token": "<admin_token>"}` → 200 with the cookie; a wrong token is
    /// 401 and sets nothing.
    func signIn(_ req: HTTPRequest, _ r: CountingResponder) {
        let b: JSON
        do { b = try body(req) } catch { return r.fail(error) }
        guard let token = b["token"]?.stringValue else {
            return r.fail(APIError(422, "invalid request", .object([("token", .string("expected the admin token as a string"))])))
        }
        guard isAdminToken(Array(token.utf8)) else {
            sessions.noteRefusedSignIn()
            unauthorized &+= 1
            return r.fail(APIError(401, "unauthorized", .string("wrong token")))
        }
        let (id, s) = sessions.open()
        r.json(.object([("signed_in", .bool(true)), ("via", .string("cookie")), ("csrf", .string(s.csrf)),
                        ("expires_in_ms", .int(Int64(sessions.ttl * 1000)))]),
               headers: [("Set-Cookie", sessions.setCookie(id)), ("Cache-Control", "no-store")])
    }

    /// How the caller is signed in: `cookie` (with the session's CSRF value)
    /// or `bearer`.
    func sessionInfo(_ req: HTTPRequest, _ r: CountingResponder) {
        if !authorized(req), let (_, s) = sessions.session(for: req.header("cookie")) {
            return r.json(.object([("signed_in", .bool(true)), ("via", .string("cookie")), ("csrf", .string(s.csrf))]),
                          headers: [("Cache-Control", "no-store")])
        }
        r.json(.object([("signed_in", .bool(true)), ("via", .string("bearer"))]))
    }

    /// Ends the cookie's session (its requests are 401 from now on) and
    /// clears the cookie.
    func signOut(_ req: HTTPRequest, _ r: CountingResponder) {
        if let (id, _) = sessions.session(for: req.header("cookie")) { sessions.close(id) }
        r.json(.object([("signed_in", .bool(false))]),
               headers: [("Set-Cookie", ConsoleSessions.clearCookie), ("Cache-Control", "no-store")])
    }
}
