import XCTest
@testable import CollectorStore

final class ReceivedSequencesTests: XCTestCase {
    func testInOrderHasNoGaps() {
        var s = ReceivedSequences()
        for i in 0..<5 { XCTAssertEqual(s.insert(Int64(i), maxGaps: 4), 0) }
        XCTAssertEqual(s.high, 4)
        XCTAssertEqual(s.encodedGaps, "")
        XCTAssertTrue((0...4).allSatisfy { s.contains(Int64($0)) })
        XCTAssertFalse(s.contains(5))
    }

    func testGapsAreFilledExactly() {
        var s = ReceivedSequences()
        _ = s.insert(3, maxGaps: 4)
        XCTAssertEqual(s.encodedGaps, "0-2")
        _ = s.insert(8, maxGaps: 4)
        XCTAssertEqual(s.encodedGaps, "0-2,4-7")
        _ = s.insert(5, maxGaps: 4)
        XCTAssertEqual(s.encodedGaps, "0-2,4-4,6-7")
        XCTAssertTrue(s.contains(5))
        XCTAssertFalse(s.contains(4))
        XCTAssertFalse(s.contains(6))
        _ = s.insert(4, maxGaps: 4)
        _ = s.insert(0, maxGaps: 4)
        XCTAssertEqual(s.encodedGaps, "1-2,6-7")
        let again = ReceivedSequences(high: s.high, encodedGaps: s.encodedGaps)
        XCTAssertEqual(again, s)
    }

    func testTooManyGapsForgetsTheOldestAndCounts() {
        var s = ReceivedSequences()
        var forgotten = 0
        for i in stride(from: 1, through: 11, by: 2) { forgotten += s.insert(Int64(i), maxGaps: 3) }
        XCTAssertEqual(s.gaps.count, 3)
        XCTAssertEqual(forgotten, 3)
        XCTAssertTrue(s.contains(0), "a forgotten gap reads as received")
        XCTAssertFalse(s.contains(10))
    }

    func testMalformedEncodingIsIgnoredPartwise() {
        let s = ReceivedSequences(high: 10, encodedGaps: "1-2,x,5-3,7-20,4-4")
        XCTAssertEqual(s.encodedGaps, "1-2,4-4")
    }
}
