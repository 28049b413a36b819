// Record: one `[type u8][varint length][body]` unit inside a Noise payload.
//
// `decode` reads exactly one record and moves the reader past it; the body
// is decoded from a sub-reader bounded by the length, so a body decoder can
// never read into the next record, and bytes it does not understand at the
// end of a body are ignored (fields are only ever appended). An unknown
// type byte yields `.unknown` with the body skipped.

/// Any record, typed. A value type with no thread affinity.
public enum Record: Equatable, Sendable {
    case ping(Ping)
    case pong(Ping)
    case error(ErrorRecord)
    case hello(Hello)
    case welcome(Welcome)
    case stringDef(StringDef)
    case stringClear(StringClear)
    case dataBatch(DataBatch)
    case ack(Ack)
    case status(Status)
    case interfaces(Interfaces)
    case effectiveConfig(EffectiveConfig)
    case scheduleRequest(ScheduleRequest)
    case scheduleUnchanged(ScheduleUnchanged)
    case schedule(Schedule)
    case patternsRequest(PatternsRequest)
    case patternsUnchanged(PatternsUnchanged)
    case patterns(Patterns)
    case controlRequest(ControlRequest)
    case controlResponse(ControlResponse)
    /// A type this version does not know; `length` body bytes were skipped.
    case unknown(type: UInt8, length: Int)

    /// The type byte (for `.unknown`, the byte that was read).
    public var typeByte: UInt8 {
        switch self {
        case .ping: return RecordType.ping.rawValue
        case .pong: return RecordType.pong.rawValue
        case .error: return RecordType.error.rawValue
        case .hello: return RecordType.hello.rawValue
        case .welcome: return RecordType.welcome.rawValue
        case .stringDef: return RecordType.stringDef.rawValue
        case .stringClear: return RecordType.stringClear.rawValue
        case .dataBatch: return RecordType.dataBatch.rawValue
        case .ack: return RecordType.ack.rawValue
        case .status: return RecordType.status.rawValue
        case .interfaces: return RecordType.interfaces.rawValue
        case .effectiveConfig: return RecordType.effectiveConfig.rawValue
        case .scheduleRequest: return RecordType.scheduleRequest.rawValue
        case .scheduleUnchanged: return RecordType.scheduleUnchanged.rawValue
        case .schedule: return RecordType.schedule.rawValue
        case .patternsRequest: return RecordType.patternsRequest.rawValue
        case .patternsUnchanged: return RecordType.patternsUnchanged.rawValue
        case .patterns: return RecordType.patterns.rawValue
        case .controlRequest: return RecordType.controlRequest.rawValue
        case .controlResponse: return RecordType.controlResponse.rawValue
        case .unknown(let t, _): return t
        }
    }

    public var type: RecordType? { RecordType(rawValue: typeByte) }

    /// Appends the full record (type, length, body) and returns the body
    /// length. `.unknown` encodes with an empty body. Check `w.overflowed`
    /// afterwards.
    @discardableResult
    public func encode(into w: inout WireWriter) -> Int {
        w.u8(typeByte)
        let start = w.beginLengthPrefixed()
        switch self {
        case .ping(let b), .pong(let b): b.encode(into: &w)
        case .error(let b): b.encode(into: &w)
        case .hello(let b): b.encode(into: &w)
        case .welcome(let b): b.encode(into: &w)
        case .stringDef(let b): b.encode(into: &w)
        case .stringClear(let b): b.encode(into: &w)
        case .dataBatch(let b): b.encode(into: &w)
        case .ack(let b): b.encode(into: &w)
        case .status(let b): b.encode(into: &w)
        case .interfaces(let b): b.encode(into: &w)
        case .effectiveConfig(let b): b.encode(into: &w)
        case .scheduleRequest(let b): b.encode(into: &w)
        case .scheduleUnchanged(let b): b.encode(into: &w)
        case .schedule(let b): b.encode(into: &w)
        case .patternsRequest(let b): b.encode(into: &w)
        case .patternsUnchanged(let b): b.encode(into: &w)
        case .patterns(let b): b.encode(into: &w)
        case .controlRequest(let b): b.encode(into: &w)
        case .controlResponse(let b): b.encode(into: &w)
        case .unknown: break
        }
        return w.endLengthPrefixed(start)
    }

    /// The record's encoding as a new array (tests, examples).
    public var encoded: [UInt8] {
        var w = WireWriter()
        encode(into: &w)
        return w.bytes
    }

    /// Reads one record. Throws `.truncated` if the header or body runs past
    /// the reader's end, `.recordTooLarge` above `limits.maxRecordLength`,
    /// and whatever the body's decoder throws.
    public static func decode(from r: inout WireReader, limits: WireLimits = .default) throws(WireError) -> Record {
        let typeByte = try r.u8()
        let length = try r.varint()
        guard length <= UInt64(limits.maxRecordLength) else {
            throw .recordTooLarge(length > UInt64(Int.max) ? Int.max : Int(length))
        }
        guard length <= UInt64(r.remaining) else { throw .truncated }
        var body = WireReader(try r.bytes(Int(length)))
        guard let type = RecordType(rawValue: typeByte) else {
            return .unknown(type: typeByte, length: Int(length))
        }
        switch type {
        case .ping: return .ping(try Ping.decode(from: &body, limits: limits))
        case .pong: return .pong(try Ping.decode(from: &body, limits: limits))
        case .error: return .error(try ErrorRecord.decode(from: &body, limits: limits))
        case .hello: return .hello(try Hello.decode(from: &body, limits: limits))
        case .welcome: return .welcome(try Welcome.decode(from: &body, limits: limits))
        case .stringDef: return .stringDef(try StringDef.decode(from: &body, limits: limits))
        case .stringClear: return .stringClear(try StringClear.decode(from: &body, limits: limits))
        case .dataBatch: return .dataBatch(try DataBatch.decode(from: &body, limits: limits))
        case .ack: return .ack(try Ack.decode(from: &body, limits: limits))
        case .status: return .status(try Status.decode(from: &body, limits: limits))
        case .interfaces: return .interfaces(try Interfaces.decode(from: &body, limits: limits))
        case .effectiveConfig: return .effectiveConfig(try EffectiveConfig.decode(from: &body, limits: limits))
        case .scheduleRequest: return .scheduleRequest(try ScheduleRequest.decode(from: &body, limits: limits))
        case .scheduleUnchanged: return .scheduleUnchanged(try ScheduleUnchanged.decode(from: &body, limits: limits))
        case .schedule: return .schedule(try Schedule.decode(from: &body, limits: limits))
        case .patternsRequest: return .patternsRequest(try PatternsRequest.decode(from: &body, limits: limits))
        case .patternsUnchanged: return .patternsUnchanged(try PatternsUnchanged.decode(from: &body, limits: limits))
        case .patterns: return .patterns(try Patterns.decode(from: &body, limits: limits))
        case .controlRequest: return .controlRequest(try ControlRequest.decode(from: &body, limits: limits))
        case .controlResponse: return .controlResponse(try ControlResponse.decode(from: &body, limits: limits))
        }
    }

    /// Decodes every record in `payload` (a whole decrypted Noise payload).
    public static func decodeAll(_ payload: UnsafeRawBufferPointer, limits: WireLimits = .default) throws(WireError) -> [Record] {
        var r = WireReader(payload)
        var out: [Record] = []
        while !r.isAtEnd { out.append(try decode(from: &r, limits: limits)) }
        return out
    }

    public static func decodeAll(_ payload: [UInt8], limits: WireLimits = .default) throws(WireError) -> [Record] {
        var result: Result<[Record], WireError> = .success([])
        payload.withUnsafeBytes { p in
            do throws(WireError) { result = .success(try decodeAll(p, limits: limits)) } catch { result = .failure(error) }
        }
        return try result.get()
    }
}
