// CurlLibrary: libcurl, loaded on first use.
//
// Linking libcurl costs an idle agent ~6 MB of resident memory (its ~30
// dependencies are mapped and relocated at start; docs/PERFORMANCE.md,
// "Synthetic monitors"), so the agent does not link it: the first HTTP
// monitor scheduled dlopens libcurl.so.4 through CCurl and it stays loaded.
import CCurl

enum CurlLibrary {
    private static var loadError: String?
    private static var attempted = false

    /// Loads and initialises libcurl once; later calls return the first
    /// outcome. Throws with the dlopen/dlsym/curl_global_init message.
    static func load(soname: String? = nil) throws(CurlUnavailable) {
        if attempted {
            if let loadError { throw CurlUnavailable(message: loadError) }
            return
        }
        attempted = true
        var err = [CChar](repeating: 0, count: 512)
        let rc: Int32 = soname.map { ccurl_load($0, &err, err.count) } ?? ccurl_load(nil, &err, err.count)
        if rc != 0 {
            loadError = String(cString: err)
            throw CurlUnavailable(message: loadError!)
        }
    }

    static var isLoaded: Bool { ccurl_is_loaded() != 0 }

    /// e.g. "libcurl/7.88.1 OpenSSL/3.0.11 zlib/1.2.13 ...".
    static var version: String { isLoaded ? String(cString: ccurl_version()) : "" }
}

/// libcurl could not be loaded: HTTP monitors report this as their error.
struct CurlUnavailable: Error, CustomStringConvertible {
    let message: String
    var description: String { "libcurl unavailable: \(message)" }
}
