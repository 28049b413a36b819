import XCTest
import Foundation
@testable import Collector

final class AdminTokenTests: XCTestCase {
    private func tempDir() -> String {
        let dir = NSTemporaryDirectory() + "vigil-admin-token-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try! FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: dir) }
        return dir
    }

    private func mode(_ path: String) -> Int {
        (try! FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as! NSNumber).intValue
    }

    func testGeneratedOnceIntoAPrivateFileAndReadBackLater() throws {
        let dir = tempDir()
        let first = try AdminToken.resolve(configured: "", dataDir: dir)
        guard case .generated(let path) = first.source else { return XCTFail("expected a generated token, got \(first.source)") }
        XCTAssertEqual(mode(path), 0o600)
        XCTAssertEqual(try String(contentsOfFile: path, encoding: .utf8), first.token + "\n")
        XCTAssertGreaterThanOrEqual(first.token.count, 43)

        let again = try AdminToken.resolve(configured: "", dataDir: dir)
        XCTAssertEqual(again.token, first.token)
        XCTAssertEqual(again.source, .file(path: path))
    }

    func testAnExistingFileIsMadePrivateAndAShortOneIsRefused() throws {
        let dir = tempDir()
        let path = AdminToken.path(dataDir: dir)
        try "operator-chosen-token-value\n".write(toFile: path, atomically: false, encoding: .utf8)
        chmod(path, 0o644)
        let r = try AdminToken.resolve(configured: "", dataDir: dir)
        XCTAssertEqual(r.token, "operator-chosen-token-value")
        XCTAssertEqual(mode(path), 0o600)

        try "short\n".write(toFile: path, atomically: false, encoding: .utf8)
        XCTAssertThrowsError(try AdminToken.resolve(configured: "", dataDir: dir)) { error in
            XCTAssertTrue("\(error)".contains("holds no usable token"), "\(error)")
        }
    }

    func testAnUnwritableDirectoryIsAnErrorNamingThePath() {
        let dir = tempDir() + "/missing"
        XCTAssertThrowsError(try AdminToken.resolve(configured: "", dataDir: dir)) { error in
            XCTAssertTrue("\(error)".contains("missing/admin_token"), "\(error)")
        }
        XCTAssertEqual(try? AdminToken.resolve(configured: "configured-token", dataDir: dir).source, .configuration)
    }
}
