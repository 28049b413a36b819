// ConsoleFiles: the console's static files — its own HTML, CSS and
// JavaScript from the console directory, and the chart library from
// Debian's `libjs-dygraphs` where that package installs it — read once at
// start into memory and served with their Content-Type and the console's
// security headers (strict Content-Security-Policy: scripts and styles
// only from this origin, nothing inline; nosniff; no framing).
//
// Where the console directory is (docs/CONSOLE.md): `console_dir` when
// set; otherwise `../share/vigil/console` next to the program (an installed
// layout, `/usr/bin` + `/usr/share/vigil/console`), else the `console/`
// folder of the source tree the program was built from (its path is
// recorded at build time by `#filePath`, so `swift build` needs no extra
// step and a fresh clone's `scripts/run.sh` shows the console).
//
// Bounded: at most `maxFiles` files of at most `maxFileBytes` each.
//
// Thread: loaded before the loop serves; read on the loop thread.
import HTTPServer
import Reactor
#if canImport(Glibc)
import Glibc
#endif

struct ConsoleFiles {
    struct File {
        let contentType: String
        let body: [UInt8]
        let cacheControl: String
    }

    static let maxFiles = 128
    static let maxFileBytes = 4 << 20
    /// Where Debian's libjs-dygraphs puts the library.
    static let dygraphsDir = "/usr/share/javascript/dygraphs"
    static let dygraphsFiles = ["dygraph.min.js", "dygraph.js", "dygraph.min.css", "dygraph.css"]

    /// URL path → file. `/` is the console's index.html; its other files are
    /// under `/console/`; dygraphs under `/vendor/dygraphs/`.
    private(set) var files: [String: File] = [:]
    private(set) var directory: String?
    private(set) var warnings: [String] = []

    static let securityHeaders: [(String, String)] = [
        ("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
            + "connect-src 'self'; font-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"),
        ("X-Content-Type-Options", "nosniff"),
        ("X-Frame-Options", "DENY"),
        ("Referrer-Policy", "no-referrer"),
    ]

    /// The directories tried when `console_dir` is empty, in order.
    static func defaultDirectories() -> [String] {
        var out: [String] = []
        if let exe = executableDirectory() { out.append(exe + "/../share/vigil/console") }
        // This file is Sources/Collector/API/ConsoleFiles.swift: three folders below the root.
        var root = #filePath
        for _ in 0..<4 {
            guard let slash = root.lastIndex(of: "/") else { break }
            root = String(root[..<slash])
        }
        out.append(root + "/console")
        return out
    }

    /// Loads the console. With `configured` set, a missing index.html is an
    /// error naming the directory; otherwise the first default directory
    /// holding one is used, and none is a warning (the API still serves).
    static func load(configured: String) throws(ConsoleFilesError) -> ConsoleFiles {
        var c = ConsoleFiles()
        let candidates = configured.isEmpty ? defaultDirectories() : [configured]
        guard let dir = candidates.first(where: { isFile($0 + "/index.html") }) else {
            if !configured.isEmpty {
                throw ConsoleFilesError(description: "console_dir \(configured): no index.html there")
            }
            c.warnings.append("console not found (looked in \(candidates.joined(separator: ", "))); set console_dir")
            c.loadDygraphs()
            return c
        }
        c.directory = canonical(dir)
        for name in listDirectory(dir).sorted() {
            guard let type = contentType(name) else { continue }
            guard c.files.count < maxFiles else {
                c.warnings.append("console: more than \(maxFiles) files in \(dir); \(name) and later ones not served")
                break
            }
            guard let bytes = readFile(dir + "/" + name) else {
                c.warnings.append("console: cannot read \(dir)/\(name) (or larger than \(maxFileBytes) bytes)")
                continue
            }
            let file = File(contentType: type, body: bytes, cacheControl: "no-cache")
            c.files["/console/" + name] = file
            if name == "index.html" { c.files["/"] = file }
        }
        c.loadDygraphs()
        return c
    }

    private mutating func loadDygraphs() {
        var found = false
        for name in ConsoleFiles.dygraphsFiles {
            let path = ConsoleFiles.dygraphsDir + "/" + name
            guard ConsoleFiles.isFile(path), let bytes = ConsoleFiles.readFile(path), let type = ConsoleFiles.contentType(name) else { continue }
            files["/vendor/dygraphs/" + name] = File(contentType: type, body: bytes, cacheControl: "public, max-age=3600")
            found = true
        }
        if !found { warnings.append("charts: \(ConsoleFiles.dygraphsDir) not found (install libjs-dygraphs)") }
    }

    /// The answer for `path` (GET or HEAD), or nil when it is not a console file.
    func response(_ path: String) -> HTTPResponse? {
        guard let f = files[path] else { return nil }
        return HTTPResponse(status: 200, contentType: f.contentType, body: f.body,
                            headers: [("Cache-Control", f.cacheControl)] + ConsoleFiles.securityHeaders)
    }

    /// Whether `path` belongs to the console's URL space.
    static func isConsolePath(_ segments: [String]) -> Bool {
        segments.isEmpty || segments.first == "console" || (segments.count == 3 && segments[0] == "vendor")
    }

    static func contentType(_ name: String) -> String? {
        guard !name.hasPrefix("."), let dot = name.lastIndex(of: ".") else { return nil }
        switch name[name.index(after: dot)...] {
        case "html": return "text/html; charset=utf-8"
        case "js": return "text/javascript; charset=utf-8"
        case "css": return "text/css; charset=utf-8"
        case "svg": return "image/svg+xml"
        case "png": return "image/png"
        case "ico": return "image/x-icon"
        default: return nil
        }
    }

    // MARK: files (start-up only)

    /// The directory of the running program (/proc/self/exe).
    static func executableDirectory() -> String? {
        var buf = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/self/exe", &buf, buf.count - 1)
        guard n > 0 else { return nil }
        let path = String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        guard let slash = path.lastIndex(of: "/") else { return nil }
        return String(path[..<slash])
    }

    private static func canonical(_ path: String) -> String {
        guard let p = realpath(path, nil) else { return path }
        defer { free(p) }
        return String(cString: p)
    }

    private static func isFile(_ path: String) -> Bool {
        var st = stat()
        return stat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFREG
    }

    private static func listDirectory(_ dir: String) -> [String] {
        guard let d = opendir(dir) else { return [] }
        defer { closedir(d) }
        var names: [String] = []
        while let e = readdir(d) {
            let name = withUnsafePointer(to: e.pointee.d_name) {
                $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
            }
            if isFile(dir + "/" + name) { names.append(name) }
        }
        return names
    }

    private static func readFile(_ path: String) -> [UInt8]? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { Glibc.close(fd) }
        var out: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buf.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress!, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n < 0 { return nil }
            if n == 0 { break }
            out += buf[0..<n]
            if out.count > maxFileBytes { return nil }
        }
        return out
    }
}

struct ConsoleFilesError: Error, CustomStringConvertible {
    let description: String
}
