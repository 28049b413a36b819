// The per-session, per-direction string table: StringDef(id, text) on the
// wire, StringRef ids in records. The receiver keeps a StringTable, the
// sender a StringInterner; both are bounded by an id range and a byte
// budget, and StringClear resets both ends in step (records are processed
// in order, so a definition always precedes its first use).

/// Received definitions: id → text. Owned by one session.
public struct StringTable {
    public let maxID: UInt32
    public let maxBytes: Int
    private var texts: [UInt32: String] = [:]
    /// Text bytes currently held.
    public private(set) var bytes = 0

    public init(maxID: UInt32, maxBytes: Int) {
        self.maxID = maxID
        self.maxBytes = maxBytes
    }

    public var count: Int { texts.count }

    /// The text for `id`; "" for 0 (the "none" reference); nil if undefined.
    public subscript(id: StringRef) -> String? {
        id == 0 ? "" : texts[id]
    }

    /// Defines or redefines `id`. Throws when the id is out of range or the
    /// byte budget would be exceeded (the table is left unchanged).
    public mutating func define(_ id: StringRef, _ text: String) throws(WireError) {
        guard id >= 1 && id <= maxID else { throw .limitExceeded(field: "string_table.id", value: Int(id)) }
        let old = texts[id]?.utf8.count ?? 0
        let newBytes = bytes - old + text.utf8.count
        guard newBytes <= maxBytes else { throw .limitExceeded(field: "string_table.bytes", value: newBytes) }
        texts[id] = text
        bytes = newBytes
    }

    public mutating func clear() {
        texts.removeAll()
        bytes = 0
    }
}

/// Sending side: text → id, assigning ids 1, 2, 3, ... Owned by one session.
public struct StringInterner {
    public private(set) var maxID: UInt32
    public private(set) var maxBytes: Int
    private var ids: [String: UInt32] = [:]
    private var nextID: UInt32 = 1
    public private(set) var bytes = 0

    public init(maxID: UInt32, maxBytes: Int) {
        self.maxID = maxID
        self.maxBytes = maxBytes
    }

    public var count: Int { ids.count }

    /// Narrows the bounds to what the peer announced (never widens).
    public mutating func restrict(maxID: UInt32, maxBytes: Int) {
        if maxID > 0 { self.maxID = min(self.maxID, maxID) }
        if maxBytes > 0 { self.maxBytes = min(self.maxBytes, maxBytes) }
    }

    public enum Lookup: Equatable {
        case known(StringRef)
        /// A new id: the caller must send StringDef(id, text) before using it.
        case new(StringRef)
        /// No id or byte budget left: clear (StringClear) and start over.
        case full
    }

    public mutating func intern(_ text: String) -> Lookup {
        if text.isEmpty { return .known(0) }
        if let id = ids[text] { return .known(id) }
        let n = text.utf8.count
        guard nextID <= maxID, bytes + n <= maxBytes else { return .full }
        let id = nextID
        nextID += 1
        ids[text] = id
        bytes += n
        return .new(id)
    }

    /// Forgets a just-assigned id whose StringDef could not be sent.
    mutating func forget(_ text: String) {
        guard let id = ids.removeValue(forKey: text) else { return }
        bytes -= text.utf8.count
        if id == nextID - 1 { nextID -= 1 }
    }

    public mutating func clear() {
        ids.removeAll()
        nextID = 1
        bytes = 0
    }
}
