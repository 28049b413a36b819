// Capture uploads over the API: `POST /api/v1/projects/{project}/uploads`
// (the body streamed: HTTPServer hands it to a CaptureUpload piece by piece,
// see `stream`) and `GET …/uploads/{id}` (its progress and counts).
// docs/API.md describes both.
//
// The POST is claimed when its headers arrive, before any body is read, so
// a refusal — no credentials (401), no anti-CSRF value with the cookie
// (403), a content type that is no capture (415), a declared length over
// `upload_max_bytes` (413), `upload_max_concurrent` uploads running (429)
// — is answered before the client sends the file.
//
// Thread: loop thread.
import CollectorStore
import HTTPServer
import JSON

extension APIHandler {
    /// HTTPServer's streamer: a CaptureUpload for a POST to a project's
    /// uploads; nil for every other request (collected and routed as usual).
    public func stream(_ req: HTTPRequest, _ responder: HTTPResponder) -> HTTPBodyStream? {
        guard req.method == "POST", case .success(let target) = APITarget.parse(req.target) else { return nil }
        let s = target.segments
        guard s.count == 5, s[0] == "api", s[1] == "v1", s[2] == "projects", s[4] == "uploads" else { return nil }
        requests &+= 1
        let r = CountingResponder(responder) { [weak self] status in
            guard let self else { return }
            self.count(status)
        }
        if let (e, headers) = refusal(req) { r.fail(e, headers: headers); return nil }
        let project = s[3]
        if let why = APITarget.invalidIdentifier(project) { r.fail(.badRequest("invalid project", .object([("project", .string(why))]))); return nil }
        if !target.query.isEmpty {
            r.fail(.badRequest("unknown query parameter", .object([("unknown", .array(target.query.keys.sorted().map(JSON.string))),
                                                                  ("accepted", .array([]))])))
            return nil
        }
        guard let uploads else { r.fail(APIError(503, "uploads not available")); return nil }
        let type = String((req.header("content-type") ?? "").lowercased().prefix { $0 != ";" }.filter { $0 != " " && $0 != "\t" })
        var multipart: MultipartReader?
        switch type {
        case "text/plain", "application/octet-stream": break
        case "multipart/form-data":
            guard let m = MultipartReader(contentType: req.header("content-type") ?? "") else {
                uploads.refused("refused_type")
                r.fail(.badRequest("invalid multipart body", .string("Content-Type multipart/form-data without a usable boundary")))
                return nil
            }
            multipart = m
        default:
            uploads.refused("refused_type")
            r.fail(APIError(415, "unsupported content type",
                            .object([("content_type", .string(type.isEmpty ? "(none)" : type)),
                                     ("accepted", .array(["text/plain", "application/octet-stream", "multipart/form-data"].map(JSON.string)))])))
            return nil
        }
        let length = req.header("content-length").flatMap { Int64($0) }
        switch uploads.start(project: project, contentLength: length, multipart: multipart) {
        case .failure(let e):
            r.fail(e)
            return nil
        case .success(let u):
            u.prepare(responder)
            return u
        }
    }

    /// The route table's POST: reached only when the body was not streamed
    /// (an HTTPServer without the streamer), which the collector never runs.
    func uploadNotStreamed(_ r: CountingResponder) {
        r.fail(APIError(500, "uploads need a streamed body", .string("this server collects request bodies whole")))
    }

    func uploadStatus(_ project: String, _ id: String, _ r: CountingResponder) {
        guard let u = uploads?.upload(id), u.project == project else {
            return r.fail(.notFound("upload '\(id)' of project '\(project)' (the \(Uploads.keptFinished) most recent are kept, until a restart)"))
        }
        r.json(u.json)
    }

    /// `s` percent-encoded for a path segment (unreserved characters kept).
    static func pathSegment(_ s: String) -> String {
        var out = ""
        for b in s.utf8 {
            switch b {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                 UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"):
                out.unicodeScalars.append(Unicode.Scalar(b))
            default:
                let hex = Array("0123456789ABCDEF".utf8)
                out += "%" + String(decoding: [hex[Int(b >> 4)], hex[Int(b & 15)]], as: UTF8.self)
            }
        }
        return out
    }
}
