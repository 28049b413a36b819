// APIError: how the HTTP API fails — `{"error": "...", "detail": ...}`
// with a fitting status code.
import CollectorStore
import JSON

/// An API failure: the status, a short error text and a detail value.
struct APIError: Error {
    let status: Int
    let error: String
    let detail: JSON

    init(_ status: Int, _ error: String, _ detail: JSON = .null) {
        self.status = status
        self.error = error
        self.detail = detail
    }

    static func badRequest(_ why: String, _ detail: JSON = .null) -> APIError { APIError(400, why, detail) }
    static func notFound(_ what: String) -> APIError { APIError(404, "not found", .string(what)) }

    /// A store failure as the API reports it: unknown things are 404,
    /// an overloaded store 503, everything else 500.
    static func store(_ e: StoreError) -> APIError {
        switch e {
        case .notFound(let what): return APIError(404, "not found", .string(what))
        case .invalid(let why): return APIError(400, "invalid request", .string(why))
        case .overloaded, .tooManyReads: return APIError(503, "store overloaded", .string(e.description))
        case .closed: return APIError(503, "shutting down", .null)
        case .readTooLong: return APIError(400, "query too broad", .string(e.description))
        default: return APIError(500, "store error", .string(e.description))
        }
    }

    var body: JSON { .object([("error", .string(error)), ("detail", detail)]) }
}
