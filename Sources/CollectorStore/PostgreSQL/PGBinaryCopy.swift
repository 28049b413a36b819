// PGBinaryCopy: rows in COPY's binary format (`COPY … FROM STDIN (FORMAT
// binary)`, PostgreSQL's manual, "COPY", "Binary Format"), written straight
// into a byte buffer. Measurement rows are almost all bigint: in the text
// format the server parses ~16 decimal numbers and a hex bytea per row, on
// the one backend that does all of the ingest; in the binary format each
// field is its length and its bytes in network order, read with a copy.
//
// The stream: the 11-byte signature, a flags word and a header-extension
// length (both 0); per row the number of fields (int16), then per field its
// length (int32; -1 for NULL) and its bytes; at the end the trailer, -1 as
// int16. bigint is 8 bytes big-endian; bytea its bytes as they are (the
// only types the measurement rows have; the other tables go by text COPY).
//
// Thread: any (values only); used by the store's writer on the loop.

enum PGBinaryCopy {
    /// "PGCOPY\n\377\r\n\0", flags 0, header extension 0.
    static let header: [UInt8] = [0x50, 0x47, 0x43, 0x4F, 0x50, 0x59, 0x0A, 0xFF, 0x0D, 0x0A, 0x00,
                                  0, 0, 0, 0, 0, 0, 0, 0]
    /// The field count -1: no more rows.
    static let trailer: [UInt8] = [0xFF, 0xFF]

    /// Starts a row of `fields` fields.
    @inline(__always)
    static func beginRow(fields: Int16, into out: inout [UInt8]) {
        let v = UInt16(bitPattern: fields)
        out.append(UInt8(truncatingIfNeeded: v >> 8))
        out.append(UInt8(truncatingIfNeeded: v))
    }

    @inline(__always)
    private static func appendLength(_ n: Int32, into out: inout [UInt8]) {
        withUnsafeBytes(of: n.bigEndian) { out.append(contentsOf: $0) }
    }

    /// A bigint field: length 8, the value in network order.
    @inline(__always)
    static func appendInt8(_ v: Int64, into out: inout [UInt8]) {
        // Length and value in one 12-byte write (no padding between two
        // separate 4- and 8-byte stores).
        withUnsafeBytes(of: (Int32(8).bigEndian, UInt32(truncatingIfNeeded: UInt64(bitPattern: v) >> 32).bigEndian,
                             UInt32(truncatingIfNeeded: UInt64(bitPattern: v)).bigEndian)) { out.append(contentsOf: $0) }
    }

    /// A bytea field: its bytes as they are; nil is NULL (-1), empty is length 0.
    static func appendBytea(_ bytes: [UInt8]?, into out: inout [UInt8]) {
        guard let bytes else { return appendLength(-1, into: &out) }
        appendLength(Int32(truncatingIfNeeded: bytes.count), into: &out)
        out.append(contentsOf: bytes)
    }
}
