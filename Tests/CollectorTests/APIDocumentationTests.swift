// docs/API.md against the server's routing table: every endpoint the server
// routes is documented under a heading of its own (`### GET /api/v1/agents/{id}`),
// every documented endpoint exists with that method, and each section lists
// exactly the query parameters the route accepts and the statuses it answers.
import Foundation
import XCTest
@testable import Collector

final class APIDocumentationTests: XCTestCase {
    /// One endpoint as the check sees it (from the route table or a test's own list).
    struct Endpoint {
        let method: String
        let path: String
        let query: [String]
    }

    static let methods: Set<String> = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]

    /// The endpoint sections of `doc`: a heading `## METHOD /api/v1/…` (any
    /// level) and the text up to the next heading.
    static func sections(_ doc: String) -> [(method: String, path: String, text: [String])] {
        var out: [(method: String, path: String, text: [String])] = []
        var inFence = false
        for line in doc.split(separator: "\n", omittingEmptySubsequences: false).map(String.init) {
            if line.hasPrefix("```") { inFence.toggle() }
            if !inFence && line.hasPrefix("#") {
                let words = line.drop(while: { $0 == "#" }).split(separator: " ").map(String.init)
                if words.count == 2, methods.contains(words[0]), words[1].hasPrefix("/api/v1/") {
                    out.append((words[0], words[1], []))
                    continue
                }
                if !out.isEmpty { out.append(("", "", [])) }   // another heading closes the section
                continue
            }
            if !out.isEmpty { out[out.count - 1].text.append(line) }
        }
        return out.filter { !$0.method.isEmpty }
    }

    /// The names in the section's parameter table (the rows under a header
    /// row `| parameter | …`), or nil when the section has no such table.
    static func parameters(_ text: [String]) -> [String]? {
        guard let header = text.firstIndex(where: { $0.hasPrefix("| parameter |") }) else { return nil }
        var names: [String] = []
        for row in text[(header + 2)...] {
            guard row.hasPrefix("|") else { break }
            let cell = row.split(separator: "|").first.map { $0.trimmingCharacters(in: .whitespaces) } ?? ""
            names.append(cell.trimmingCharacters(in: CharacterSet(charactersIn: "`")))
        }
        return names
    }

    /// Every difference between `doc` and `routes`, each naming the endpoint.
    static func problems(doc: String, routes: [Endpoint]) -> [String] {
        var out: [String] = []
        let documented = sections(doc)
        var seen: Set<String> = []
        for s in documented {
            let name = "\(s.method) \(s.path)"
            if !seen.insert(name).inserted { out.append("\(name) is documented twice") }
            guard let route = routes.first(where: { $0.method == s.method && $0.path == s.path }) else {
                let others = routes.filter { $0.path == s.path }.map(\.method)
                out.append(others.isEmpty ? "\(name) is documented but has no route"
                                          : "\(name) is documented but the route's method is \(others.joined(separator: ", "))")
                continue
            }
            if !s.text.contains(where: { $0.hasPrefix("No query parameters.") }) || !route.query.isEmpty {
                let listed = parameters(s.text)
                if listed == nil {
                    out.append("\(name): no parameter table (| parameter | … |) and not \"No query parameters.\"")
                } else if Set(listed!) != Set(route.query) || listed!.count != route.query.count {
                    out.append("\(name): documents parameters \(listed!.sorted()), the route accepts \(route.query.sorted())")
                }
            }
            if !s.text.contains(where: { $0.hasPrefix("Statuses:") }) {
                out.append("\(name): no \"Statuses:\" line")
            }
        }
        for route in routes where !documented.contains(where: { $0.method == route.method && $0.path == route.path }) {
            // Named above already when a section of this path has a method no route has.
            let mismatched = documented.contains { s in
                s.path == route.path && !routes.contains { $0.method == s.method && $0.path == s.path }
            }
            if mismatched { continue }
            out.append("\(route.method) \(route.path) has a route but no section in docs/API.md")
        }
        return out
    }

    static var serverRoutes: [Endpoint] {
        APIHandler.routes.map { r in
            let form = r.documentedForm
            let space = form.firstIndex(of: " ")!
            return Endpoint(method: String(form[..<space]), path: String(form[form.index(after: space)...]), query: r.query)
        }
    }

    func testDocsMatchTheRouteTable() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let doc = try String(contentsOf: root.appendingPathComponent("docs/API.md"), encoding: .utf8)
        XCTAssertEqual(Self.sections(doc).count, APIHandler.routes.count, "one section per route")
        XCTAssertEqual(Self.problems(doc: doc, routes: Self.serverRoutes), [])
    }

    /// The check itself: each kind of drift fails, naming the endpoint.
    func testTheCheckNamesEachDifference() {
        let routes = [Endpoint(method: "GET", path: "/api/v1/agents", query: ["project", "limit"]),
                      Endpoint(method: "PUT", path: "/api/v1/agents/{id}/config", query: []),
                      Endpoint(method: "GET", path: "/api/v1/projects", query: []),
                      Endpoint(method: "GET", path: "/api/v1/agents/{id}", query: []),
                      Endpoint(method: "DELETE", path: "/api/v1/agents/{id}", query: [])]
        let doc = """
        # API
        ### GET /api/v1/agents
        | parameter | unit | meaning |
        |---|---|---|
        | `project` | name | … |
        Statuses: 200.
        ### POST /api/v1/agents/{id}/config
        No query parameters.
        Statuses: 200.
        ### GET /api/v1/agents/{id}
        No query parameters.
        Statuses: 200.
        ### GET /api/v1/agents/{id}/states
        No query parameters.
        Statuses: 200.
        ```
        ### GET /api/v1/in-a-code-block
        ```
        """
        XCTAssertEqual(Self.problems(doc: doc, routes: routes), [
            "GET /api/v1/agents: documents parameters [\"project\"], the route accepts [\"limit\", \"project\"]",
            "POST /api/v1/agents/{id}/config is documented but the route's method is PUT",
            "GET /api/v1/agents/{id}/states is documented but has no route",
            "GET /api/v1/projects has a route but no section in docs/API.md",
            "DELETE /api/v1/agents/{id} has a route but no section in docs/API.md",
        ])
    }
}
