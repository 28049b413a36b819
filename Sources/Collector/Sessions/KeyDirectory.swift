// KeyDirectory: a project's keys for a handshake, read from the store for
// every handshake — so a key created or revoked by `vigil-collector keys`
// in another process applies to the next handshake, without a restart or a
// cache to invalidate.
//
// The one exception is a negative cache: a project the store said it does
// not know is answered "unknown" without a read for `negativeTTL` (1 s),
// for at most `negativeCapacity` (4096) names — so preambles that keep
// naming a project that does not exist cost one read a second, not one
// each. (A project created with `keys create` or on another collector is
// seen as soon as the change log shows it — ChangeFollower, 250 ms — and
// within that second at the latest.)
// Hits are counted (`vigil_key_lookups_total{kind="negative_cache"}`).
//
// Lookups for one project that arrive while a read for it is queued share
// that read: it has not run yet, so its answer is at least as fresh as each
// handshake that joins it. A reconnect storm of 10^4 agents of one project
// then costs a handful of reads, not 10^4 — and one decoding of the stored
// secrets into PSKs, whose result (`HandshakeKeys`) every waiting session
// holds by reference until its handshake runs.
//
// Thread: loop thread. Secrets pass through; nothing here logs them.
import CollectorStore
import Reactor
import Wire

/// A project's keys as a handshake tries them: the 32-byte PSKs of the
/// active keys, then of the revoked ones (tried only to answer "access key
/// revoked" instead of nothing). Immutable; shared by every handshake that
/// waited for the same read, and wiped when the last one lets go.
final class HandshakeKeys {
    let projectId: Int64
    /// Active keys first, then revoked ones.
    private(set) var candidates: [Key32]
    /// The store's id of each candidate (0 when not known): a session
    /// remembers the key it authenticated with, so revoking it ends the
    /// session.
    let ids: [Int64]
    /// `candidates[..<active]` are active.
    let active: Int

    init(projectId: Int64, active: [Key32], revoked: [Key32], ids: [Int64] = []) {
        self.projectId = projectId
        self.active = active.count
        candidates = active + revoked
        self.ids = ids
    }

    /// The stored secrets as PSKs (a secret held in another form is skipped).
    convenience init(_ keys: ProjectKeys) {
        let active = keys.keys.compactMap { k in KeyDirectory.psk(fromSecret: k.secret).map { (k.id, $0) } }
        let revoked = keys.revoked.compactMap { k in KeyDirectory.psk(fromSecret: k.secret).map { (k.id, $0) } }
        self.init(projectId: keys.projectId, active: active.map(\.1), revoked: revoked.map(\.1),
                  ids: active.map(\.0) + revoked.map(\.0))
    }

    /// The store's id of the key at `index` of `candidates` (0: unknown).
    func id(at index: Int) -> Int64 { index < ids.count ? ids[index] : 0 }

    /// Whether the key at `index` of `candidates` was revoked.
    func isRevoked(_ index: Int) -> Bool { index >= active }

    deinit {
        for i in candidates.indices { candidates[i].wipe() }
    }
}

final class KeyDirectory {
    /// How a lookup ends.
    enum Answer {
        case keys(HandshakeKeys)
        case unknownProject
        case failed(StoreError)
    }

    typealias Completion = (Answer) -> Void

    static let negativeTTL = 1.0
    static let negativeCapacity = 4096

    private let loop: EventLoop
    private let store: MeasurementStore
    private var waiting: [String: [Completion]] = [:]
    /// Unknown projects, and until when (monotonic seconds) that holds.
    private var unknown: [String: Double] = [:]
    private(set) var reads: UInt64 = 0
    private(set) var shared: UInt64 = 0
    private(set) var negativeHits: UInt64 = 0

    init(loop: EventLoop, store: MeasurementStore) {
        self.loop = loop
        self.store = store
    }

    /// Completes on a later iteration with the project's keys, or
    /// `.unknownProject` for a project the store does not know.
    func lookup(project: String, _ completion: @escaping Completion) {
        if let until = unknown[project] {
            if Clock.monotonic() < until {
                negativeHits &+= 1
                loop.defer { completion(.unknownProject) }
                return
            }
            unknown.removeValue(forKey: project)
        }
        if waiting[project] != nil {
            waiting[project]!.append(completion)
            shared &+= 1
            return
        }
        waiting[project] = [completion]
        reads &+= 1
        store.handshakeKeys(project: project) { [weak self] result in
            guard let self, let list = self.waiting.removeValue(forKey: project) else { return }
            let answer: Answer
            switch result {
            case .success(let k): answer = .keys(HandshakeKeys(k))
            case .failure(.notFound):
                answer = .unknownProject
                self.rememberUnknown(project)
            case .failure(let e): answer = .failed(e)
            }
            for c in list { c(answer) }
        }
    }

    /// A key of `project` was created (the change log says so): a handshake
    /// naming it reads the store at once instead of the cached "unknown".
    func forgetUnknown(project: String) { unknown.removeValue(forKey: project) }

    /// Everything may have changed (a gap in the change log).
    func forgetAllUnknown() { unknown.removeAll(keepingCapacity: true) }

    /// Bounded: when full, expired entries go first, and if none has
    /// expired the table starts over (a flood of distinct names costs a
    /// read each either way; the cache is for names that repeat).
    private func rememberUnknown(_ project: String) {
        let now = Clock.monotonic()
        if unknown.count >= KeyDirectory.negativeCapacity {
            unknown = unknown.filter { $0.value > now }
            if unknown.count >= KeyDirectory.negativeCapacity { unknown.removeAll(keepingCapacity: true) }
        }
        unknown[project] = now + KeyDirectory.negativeTTL
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
