// WriteRequestEncoder: Prometheus remote write 1.0's `WriteRequest` in
// protobuf wire format, written by hand.
//
// Why by hand: the message is four small types (WriteRequest, TimeSeries,
// Label, Sample) with six fields between them, all of them length-delimited,
// double or varint. Encoding them is ~80 lines; a generated encoder would
// bring swift-protobuf (a Swift package the project does not use) or a
// protoc step into the build for the same bytes. Nothing is decoded here:
// the collector only sends. The field numbers are those of
// prometheus/prompb/types.proto and remote.proto:
//   WriteRequest { repeated TimeSeries timeseries = 1; }
//   TimeSeries   { repeated Label labels = 1; repeated Sample samples = 2; }
//   Label        { string name = 1; string value = 2; }
//   Sample       { double value = 1; int64 timestamp = 2; }   // ms
// The spec requires labels sorted by name, `__name__` among them, and a
// series' samples in timestamp order; `Series` keeps that contract.
//
// Thread: any (pure values).

/// One label set with its samples, ready to encode.
public struct Series: Equatable, Sendable {
    /// Sorted by name (the encoder sorts again when built with `init`).
    public private(set) var labels: [(name: String, value: String)]
    public var samples: [(value: Double, timestampMs: Int64)]

    /// `name` becomes `__name__`; the labels are sorted by name.
    public init(name: String, labels: [(String, String)], samples: [(value: Double, timestampMs: Int64)]) {
        var all = [(name: "__name__", value: name)]
        for (k, v) in labels { all.append((name: k, value: v)) }
        self.labels = all.sorted { $0.name < $1.name }
        self.samples = samples
    }

    public var name: String { labels.first { $0.name == "__name__" }?.value ?? "" }

    public static func == (a: Series, b: Series) -> Bool {
        a.labels.elementsEqual(b.labels) { $0 == $1 } && a.samples.elementsEqual(b.samples) { $0 == $1 }
    }
}

public enum WriteRequestEncoder {
    /// The protobuf bytes of `WriteRequest { timeseries: series }`.
    public static func encode(_ series: [Series]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(series.count * 96)
        var ts: [UInt8] = []
        for s in series {
            ts.removeAll(keepingCapacity: true)
            for l in s.labels {
                let nameLen = l.name.utf8.count, valueLen = l.value.utf8.count
                let inner = 1 + varintSize(UInt64(nameLen)) + nameLen + 1 + varintSize(UInt64(valueLen)) + valueLen
                ts.append(0x0A)  // labels = 1, length-delimited
                varint(UInt64(inner), &ts)
                ts.append(0x0A); varint(UInt64(nameLen), &ts); ts.append(contentsOf: l.name.utf8)
                ts.append(0x12); varint(UInt64(valueLen), &ts); ts.append(contentsOf: l.value.utf8)
            }
            for sample in s.samples {
                let t = UInt64(bitPattern: sample.timestampMs)
                ts.append(0x12)  // samples = 2, length-delimited
                varint(UInt64(9 + 1 + varintSize(t)), &ts)
                ts.append(0x09)  // value = 1, fixed64 (double, little-endian)
                var bits = sample.value.bitPattern
                for _ in 0..<8 { ts.append(UInt8(truncatingIfNeeded: bits)); bits >>= 8 }
                ts.append(0x10)  // timestamp = 2, varint (int64: two's complement)
                varint(t, &ts)
            }
            out.append(0x0A)  // timeseries = 1, length-delimited
            varint(UInt64(ts.count), &out)
            out.append(contentsOf: ts)
        }
        return out
    }

    static func varint(_ v: UInt64, _ out: inout [UInt8]) {
        var v = v
        while v >= 0x80 {
            out.append(UInt8(truncatingIfNeeded: v) | 0x80)
            v >>= 7
        }
        out.append(UInt8(v))
    }

    static func varintSize(_ v: UInt64) -> Int {
        var n = 1, v = v
        while v >= 0x80 { v >>= 7; n += 1 }
        return n
    }
}
