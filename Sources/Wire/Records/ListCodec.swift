// Lists and key/value pairs, shared by the record codecs:
//   list<T> = varint count, then count × T
//   KeyValue = string key, string value

extension WireWriter {
    public mutating func list<T>(_ items: [T], _ each: (inout WireWriter, T) -> Void) {
        varint(UInt64(items.count))
        for item in items { each(&self, item) }
    }

    public mutating func strings(_ items: [String]) {
        list(items) { w, s in w.string(s) }
    }
}

extension WireReader {
    public mutating func list<T>(_ field: String, max: Int,
                                 _ each: (inout WireReader) throws(WireError) -> T) throws(WireError) -> [T] {
        let n = try count(field, max: max)
        var out: [T] = []
        out.reserveCapacity(n)
        for _ in 0..<n { out.append(try each(&self)) }
        return out
    }

    public mutating func strings(_ field: String, limits: WireLimits) throws(WireError) -> [String] {
        try list(field, max: limits.maxListCount) { (r) throws(WireError) -> String in
            try r.string(field, maxLength: limits.maxStringLength)
        }
    }
}

/// A string pair (parameters, config values, per-key errors).
public struct KeyValue: Equatable, Hashable, Sendable {
    public var key: String
    public var value: String

    public init(_ key: String, _ value: String) {
        self.key = key
        self.value = value
    }

    func encode(into w: inout WireWriter) {
        w.string(key)
        w.string(value)
    }

    static func decode(from r: inout WireReader, limits: WireLimits) throws(WireError) -> KeyValue {
        KeyValue(try r.string("key", maxLength: limits.maxStringLength),
                 try r.string("value", maxLength: limits.maxStringLength))
    }
}

extension WireWriter {
    public mutating func keyValues(_ items: [KeyValue]) {
        list(items) { w, kv in kv.encode(into: &w) }
    }
}

extension WireReader {
    public mutating func keyValues(_ field: String, limits: WireLimits) throws(WireError) -> [KeyValue] {
        try list(field, max: limits.maxListCount) { (r) throws(WireError) -> KeyValue in
            try KeyValue.decode(from: &r, limits: limits)
        }
    }
}
