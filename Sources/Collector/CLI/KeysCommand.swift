// KeysCommand: `vigil-collector keys create|list|revoke`, run against the
// database in `data_dir` — also while a collector is running on it (SQLite
// WAL; the store retries when the collector holds the write lock). A
// running collector reads a project's keys at every handshake, so changes
// apply to the next one without a restart.
//
// `create` prints the new key — `<project>.<secret>.<collector-public-key>`,
// the last part read from `data_dir/collector_key` (created if missing) —
// and nothing else on stdout, so a script can capture it; everything else
// goes to stderr. Secrets are never listed.
// `create` makes a new project only when asked (`--create-project`): a
// misspelt name must not silently become a project whose agents nobody sees.
import CollectorStore
import Reactor
import Wire

enum KeysCommand {
    static func create(project: String, createProject: Bool, settings: CollectorSettings) -> Int32 {
        guard ProjectID.isValid(project) else {
            CollectorCommand.printError("vigil-collector: invalid project name '\(project)': use 1 to 64 of A-Z a-z 0-9 . _ -")
            return CollectorCommand.exitUsage
        }
        return withStore(settings) { store, done in
            // The store created data_dir; the installation's key lives there.
            let key: AccessKey
            do {
                let collector = try CollectorKey.load(dataDir: settings.dataDir)
                key = try AccessKey.generate(projectID: project, collectorKey: collector.key.publicKey)
            } catch {
                return done(fail("\(error)"))
            }
            store.projects { listed in
                switch listed {
                case .failure(let e):
                    done(fail("listing projects: \(e)"))
                case .success(let projects) where createProject || projects.contains(where: { $0.name == project }):
                    store.createKey(project: project, secret: KeyDirectory.storedSecret(of: key), at: Clock.wallMillis()) { result in
                        finishCreate(store: store, project: project, key: key, result: result, done: done)
                    }
                case .success(let projects):
                    let known = projects.map(\.name)
                    let hint = known.isEmpty ? "no project exists yet"
                        : "projects: " + known.sorted().prefix(20).joined(separator: ", ") + (known.count > 20 ? ", …" : "")
                    CollectorCommand.printError("vigil-collector: project '\(project)' does not exist (\(hint)); "
                                                + "pass --create-project to create it")
                    done(CollectorCommand.exitUsage)
                }
            }
        }
    }

    private static func finishCreate(store: any OperatedStore, project: String, key: AccessKey, result: Result<KeyInfo, StoreError>,
                                     done: @escaping (Int32) -> Void) {
        switch result {
        case .failure(let e):
            done(fail("creating a key for \(project): \(e)"))
        case .success(let info):
            store.appendAudit(AuditEntry(ts: Clock.wallMillis(), actor: "cli", action: "keys.create", target: project,
                                         detail: "key \(info.id)", result: "ok")) { _ in
                print(key.text)
                CollectorCommand.printError("vigil-collector: created key \(info.id) for project \(project)")
                done(0)
            }
        }
    }

    static func list(project: String?, settings: CollectorSettings) -> Int32 {
        withStore(settings) { store, done in
            store.keys(project: project) { result in
                switch result {
                case .failure(let e):
                    done(fail("listing keys: \(e)"))
                case .success(let keys):
                    let width = max(7, keys.map { $0.project.count }.max() ?? 0)
                    func pad(_ s: String, _ w: Int) -> String { s + String(repeating: " ", count: max(0, w - s.count)) }
                    print(pad("ID", 6) + "  " + pad("PROJECT", width) + "  " + pad("CREATED", 24) + "  REVOKED")
                    for k in keys {
                        print(pad(String(k.id), 6) + "  " + pad(k.project, width) + "  " + pad(Log.timestamp(millis: k.created), 24)
                              + "  " + (k.revoked.map { Log.timestamp(millis: $0) } ?? "-"))
                    }
                    done(0)
                }
            }
        }
    }

    static func revoke(id text: String, settings: CollectorSettings) -> Int32 {
        guard let id = Int64(text), id > 0 else {
            CollectorCommand.printError("vigil-collector: KEY_ID must be a key id from `keys list`, got '\(text)'")
            return CollectorCommand.exitUsage
        }
        return withStore(settings) { store, done in
            store.revokeKey(id: id, at: Clock.wallMillis()) { result in
                switch result {
                case .failure(let e):
                    done(fail("revoking key \(id): \(e)"))
                case .success(let info):
                    store.appendAudit(AuditEntry(ts: Clock.wallMillis(), actor: "cli", action: "keys.revoke", target: info.project,
                                                 detail: "key \(id)", result: "ok")) { _ in
                        CollectorCommand.printError("vigil-collector: revoked key \(id) of project \(info.project)")
                        done(0)
                    }
                }
            }
        }
    }

    private static func fail(_ message: String) -> Int32 {
        CollectorCommand.printError("vigil-collector: \(message)")
        return CollectorCommand.exitFailure
    }

    /// Opens the store on a private loop, runs `body`, waits for it to call
    /// `done` with an exit status, and closes the store.
    static func withStore(_ settings: CollectorSettings,
                                  _ body: (any OperatedStore, @escaping (Int32) -> Void) -> Void) -> Int32 {
        let loop = EventLoop()
        let store: any OperatedStore
        do {
            store = try StoreSelection.open(loop: loop, settings: settings)
        } catch {
            return fail("cannot open \(StoreSelection.describe(settings)): \(error)")
        }
        var status: Int32?
        body(store) { status = $0 }
        // Generous: another process may hold the write lock for a while.
        guard loop.run(until: { status != nil }, timeout: 60) else {
            return fail("the database did not answer within 60 s")
        }
        var closed = false
        store.close { closed = true }
        loop.run(until: { closed }, timeout: 60)
        return status!
    }
}
