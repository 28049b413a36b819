// MonitorID: the API's string id of a monitor mapped to the varint id the
// Wire records carry (MonitorSpec.id, MonitorResult.monitor_id).
//
// The mapping is a hash, not a table: FNV-1a 64 over the id's UTF-8 bytes,
// masked to 53 bits. It is stable across collector restarts and databases,
// both programs compute it without state, and 53 bits stay exact as a JSON
// number and as a SQLite INTEGER. Two ids of one project that happen to
// hash alike are refused by `MonitorDocument.validate` ("rename one"),
// so within a project the mapping is one-to-one. 0 is never produced
// (it would read as "none").

public enum MonitorID {
    /// 53 bits: exactly representable in a double (JSON numbers).
    public static let mask: UInt64 = (1 << 53) - 1

    public static func numeric(_ id: String) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in id.utf8 {
            h ^= UInt64(byte)
            h &*= 0x0000_0100_0000_01B3
        }
        let v = h & mask
        return v == 0 ? 1 : v
    }
}
