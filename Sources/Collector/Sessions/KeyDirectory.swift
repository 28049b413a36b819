// KeyDirectory: a project's keys for a handshake, read from the store for
// every handshake — so a key created or revoked by `vigil-collector keys`
// in another process applies to the next handshake, without a restart or a
// cache to invalidate.
//
// Lookups for one project that arrive while a read for it is queued share
// that read: it has not run yet, so its answer is at least as fresh as each
// handshake that joins it. A reconnect storm of 10^4 agents of one project
// then costs a handful of reads, not 10^4.
//
// Thread: loop thread. Secrets pass through; nothing here logs them.
import CollectorStore
import Wire

final class KeyDirectory {
    typealias Completion = (Result<ProjectKeys, StoreError>) -> Void

    private let store: MeasurementStore
    private var waiting: [String: [Completion]] = [:]
    private(set) var reads: UInt64 = 0
    private(set) var shared: UInt64 = 0

    init(store: MeasurementStore) {
        self.store = store
    }

    /// Completes on a later iteration with the project's keys, or
    /// `.notFound` for an unknown project.
    func lookup(project: String, _ completion: @escaping Completion) {
        if waiting[project] != nil {
            waiting[project]!.append(completion)
            shared &+= 1
            return
        }
        waiting[project] = [completion]
        reads &+= 1
        store.handshakeKeys(project: project) { [weak self] result in
            guard let self, let list = self.waiting.removeValue(forKey: project) else { return }
            for c in list { c(result) }
        }
    }

    /// The 32-byte PSK of a stored secret (43 characters of base64url), or
    /// nil for a secret the store holds in another form.
    static func psk(fromSecret secret: String) -> Key32? {
        guard secret.utf8.count == AccessKey.secretTextLength, let bytes = Base64URL.decode(secret) else { return nil }
        return Key32(bytes: bytes)
    }

    /// How `keys create` stores a new key's secret.
    static func storedSecret(of key: AccessKey) -> String { Base64URL.encode(key.secret.bytes) }
}
