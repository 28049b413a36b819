// JSONObject: a JSON object's members in document order, each key once.
//
// Order is kept so a round trip is byte-exact and an answer reads the way
// it was built; keys are unique because RFC 8259 leaves a repeated key's
// meaning to the reader, and two readers disagreeing about a document is
// how a check gets bypassed — the parser refuses a repeated key, and
// building replaces the earlier value.
//
// Plain value; no thread affinity.

/// One member of a JSON object.
public struct JSONMember: Hashable, Sendable {
    public var key: String
    public var value: JSON
    public init(_ key: String, _ value: JSON) {
        self.key = key
        self.value = value
    }
}

/// A JSON object: members in order, keys unique. Iterates as
/// `(key, value)` pairs, like a Dictionary.
public struct JSONObject: Hashable, Sendable, Sequence {
    public private(set) var members: [JSONMember]

    public init() { members = [] }

    /// Members in order; a later duplicate key replaces the earlier value
    /// (in the earlier one's place).
    public init(_ pairs: [(String, JSON)]) {
        members = []
        members.reserveCapacity(pairs.count)
        if pairs.count <= JSONObject.linearLimit {
            for (k, v) in pairs { self[k] = v }
            return
        }
        var index: [String: Int] = [:]
        index.reserveCapacity(pairs.count)
        for (k, v) in pairs {
            if let i = index[k] {
                members[i].value = v
            } else {
                index[k] = members.count
                members.append(JSONMember(k, v))
            }
        }
    }

    /// Up to this many members, a key is found by a linear scan (cheaper
    /// than hashing for the small objects most documents are made of).
    static let linearLimit = 16

    public var count: Int { members.count }
    public var isEmpty: Bool { members.isEmpty }
    public var keys: [String] { members.map(\.key) }

    public func contains(key: String) -> Bool { members.contains { $0.key == key } }

    public subscript(key: String) -> JSON? {
        get { members.first(where: { $0.key == key })?.value }
        set {
            if let i = members.firstIndex(where: { $0.key == key }) {
                if let newValue { members[i].value = newValue } else { members.remove(at: i) }
            } else if let newValue {
                members.append(JSONMember(key, newValue))
            }
        }
    }

    /// Appends without the uniqueness check (the parser checks it itself).
    mutating func appendUnchecked(_ key: String, _ value: JSON) {
        members.append(JSONMember(key, value))
    }

    public struct Iterator: IteratorProtocol {
        var inner: IndexingIterator<[JSONMember]>
        public mutating func next() -> (key: String, value: JSON)? {
            inner.next().map { ($0.key, $0.value) }
        }
    }

    public func makeIterator() -> Iterator { Iterator(inner: members.makeIterator()) }
    public var underestimatedCount: Int { members.count }
}
