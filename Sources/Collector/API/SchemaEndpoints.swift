// `GET /api/v1/schema/agent-config`: the agent's configuration keys as data
// — type, range or choices, default, help, whether a running agent takes a
// change — so a client (the console's configuration editor) can check a
// value before sending it. The collector still checks every update itself.
//
// Thread: loop thread.
import ConfigFile
import JSON

extension APIHandler {
    func agentConfigSchema(_ r: CountingResponder) {
        r.json(.object([("keys", .array(AgentSchema.schema.keys.map { k in
            var fields: [(String, JSON)] = [("key", .string(k.name))]
            fields += APIHandler.typeFields(k.type)
            fields += [("expects", .string(k.type.expectation)), ("default", .optional(k.secret ? nil : k.defaultText)),
                       ("help", .string(k.help)), ("secret", .bool(k.secret)),
                       ("live", .bool(k.live && !AgentConfigView.neverRemote.contains(k.name)))]
            return .object(fields)
        }))]))
    }

    /// `type` and its bounds: `min`/`max` for numbers (milliseconds, bytes),
    /// `choices`, `allow_empty`, a list's `element` type.
    static func typeFields(_ t: ConfigValueType) -> [(String, JSON)] {
        func range(_ name: String, _ r: ClosedRange<Int>) -> [(String, JSON)] {
            [("type", .string(name)), ("min", .int(Int64(r.lowerBound))), ("max", .int(Int64(r.upperBound)))]
        }
        switch t {
        case .string(let allowEmpty): return [("type", .string("string")), ("allow_empty", .bool(allowEmpty))]
        case .integer(let r): return range("integer", r)
        case .milliseconds(let r): return range("milliseconds", r)
        case .bytes(let r): return range("bytes", r)
        case .bool: return [("type", .string("bool"))]
        case .choice(let words): return [("type", .string("choice")), ("choices", .array(words.map(JSON.string)))]
        case .list(let element, let allowEmpty):
            return [("type", .string("list")), ("allow_empty", .bool(allowEmpty)), ("element", .object(typeFields(element)))]
        case .address: return [("type", .string("address"))]
        case .host: return [("type", .string("host"))]
        case .ipAddress: return [("type", .string("ip_address"))]
        @unknown default: return [("type", .string("string"))]
        }
    }
}
