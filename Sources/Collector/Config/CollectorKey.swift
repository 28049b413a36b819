// CollectorKey: the installation's static key pair, `data_dir/collector_key`
// (mode 0600), created at the first start (or the first `keys create`).
// Every access key carries its public half, and agents talk only to a
// collector that proves it holds the secret half — so every collector of
// one installation must use the same file (copy it; docs/COLLECTOR.md).
// Replacing it means new access keys for every agent.
import Wire

enum CollectorKey {
    static let fileName = "collector_key"

    /// The key pair, created if missing; `dataDir` must exist. Refuses,
    /// naming the file, one that is unreadable, corrupt or readable by
    /// group or others.
    static func load(dataDir: String) throws(StaticKeyFile.Failure) -> (key: StaticKeyPair, path: String, created: Bool) {
        let path = StaticKeyFile.path(directory: AdminToken.path(dataDir: dataDir).dropLastComponent, name: fileName)
        let (key, created) = try StaticKeyFile.loadOrCreate(path: path)
        return (key, path, created)
    }
}

private extension String {
    /// "a/b/c" → "a/b".
    var dropLastComponent: String {
        guard let slash = lastIndex(of: "/") else { return "." }
        return String(self[..<slash])
    }
}
