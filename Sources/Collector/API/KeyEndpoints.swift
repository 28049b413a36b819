// The access-key endpoints: list, create and revoke a project's keys, as
// `vigil-collector keys` does on the command line. A key's secret is shown
// once, in the answer that created it; listings never show secrets.
// Revoking a key closes the sessions that authenticated with it at once
// (KeyRevocations). Creating and revoking are audited (`keys.create`,
// `keys.revoke`, actor `api…`).
import CollectorStore
import HTTPServer
import JSON
import Reactor
import Wire

extension APIHandler {
    func keyJSON(_ k: KeyInfo) -> JSON {
        .object([("id", .int(k.id)), ("project", .string(k.project)), ("created", .int(k.created)),
                 ("revoked", k.revoked.map { .int($0) } ?? .null)])
    }

    /// `GET /api/v1/projects/{project}/keys`: ids and times, never secrets.
    func listKeys(_ project: String, _ r: CountingResponder) {
        store.projects { [self] result in
            switch result {
            case .failure(let e): r.fail(.store(e))
            case .success(let projects) where !projects.contains(where: { $0.name == project }):
                r.fail(.store(.notFound("project '\(project)'")))
            case .success:
                store.keys(project: project) { [self] result in
                    r.result(result) { keys in .object([("project", .string(project)), ("keys", .array(keys.map(keyJSON)))]) }
                }
            }
        }
    }

    /// `POST /api/v1/projects/{project}/keys`: a new key for an existing
    /// project (`{"create_project": true}` creates the project too, as
    /// `--create-project` does). The answer carries the key text, once.
    func createKey(_ project: String, _ req: HTTPRequest, _ r: CountingResponder) {
        var create = false
        if !req.body.isEmpty {
            let b: JSON
            do { b = try body(req) } catch { return r.fail(error) }
            switch b["create_project"] {
            case nil: break
            case .bool(let v)?: create = v
            case let v?: return r.fail(APIError(422, "invalid request", .object([("create_project", .string("expected true or false, got \(APIHandler.kind(of: v))"))])))
            }
        }
        let key: AccessKey
        do { key = try AccessKey.generate(projectID: project, collectorKey: manager.collectorPublicKey) } catch {
            return r.fail(APIError(422, "invalid request", .object([("project", .string("use 1 to 64 of A-Z a-z 0-9 . _ -"))])))
        }
        let actor = actor(req)
        store.projects { [self] result in
            switch result {
            case .failure(let e): return r.fail(.store(e))
            case .success(let projects) where !create && !projects.contains(where: { $0.name == project }):
                return r.fail(.store(.notFound("project '\(project)' (pass {\"create_project\": true} to create it)")))
            case .success: break
            }
            store.createKey(project: project, secret: KeyDirectory.storedSecret(of: key), at: Clock.wallMillis()) { [self] result in
                switch result {
                case .failure(let e): r.fail(.store(e))
                case .success(let info):
                    store.appendAudit(AuditEntry(ts: Clock.wallMillis(), actor: actor, action: "keys.create", target: project,
                                                 detail: "key \(info.id)", result: "ok")) { _ in }
                    r.json(.object([("id", .int(info.id)), ("project", .string(info.project)), ("created", .int(info.created)),
                                    ("revoked", .null), ("access_key", .string(key.text))]))
                }
            }
        }
    }

    /// `DELETE /api/v1/projects/{project}/keys/{key_id}`: revokes the key
    /// (revoking twice keeps the first time) and closes its sessions.
    func revokeKey(_ project: String, _ idText: String, _ req: HTTPRequest, _ r: CountingResponder) {
        guard let id = Int64(idText), id > 0 else {
            return r.fail(APIError(404, "not found", .string("key '\(idText)'")))
        }
        let actor = actor(req)
        store.keys(project: project) { [self] result in
            switch result {
            case .failure(let e): return r.fail(.store(e))
            case .success(let keys) where !keys.contains(where: { $0.id == id }):
                return r.fail(.store(.notFound("key \(id) of project '\(project)'")))
            case .success: break
            }
            store.revokeKey(id: id, at: Clock.wallMillis()) { [self] result in
                switch result {
                case .failure(let e): r.fail(.store(e))
                case .success(let info):
                    manager.keyRevoked(id)
                    store.appendAudit(AuditEntry(ts: Clock.wallMillis(), actor: actor, action: "keys.revoke", target: project,
                                                 detail: "key \(id)", result: "ok")) { _ in }
                    r.json(keyJSON(info))
                }
            }
        }
    }
}
