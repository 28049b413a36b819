import XCTest
@testable import ConfigFile

final class ConfigParserTests: XCTestCase {
    func testCommentsBlankLinesSpacesAndQuotes() throws {
        let text = """
        # whole-line comment
           # indented comment

        server_port=6601
          agent_name   =   edge one   # trailing comment
        access_key = abc#def
        log_format = "json"   # quoted, then a comment
        server_host = 'a.example, b.example'
        listen = "[::1]:7000"\r
        capture = off\r

        """
        let c = try agentLikeSchema().load(text: text, path: "agent.conf")
        XCTAssertEqual(c.int("server_port"), 6601)
        XCTAssertEqual(c.string("agent_name"), "edge one")
        XCTAssertEqual(c.string("access_key"), "abc#def", "a # not after a space is part of the value")
        XCTAssertEqual(c.string("log_format"), "json")
        XCTAssertEqual(c.list("server_host"), ["a.example", "b.example"])
        XCTAssertFalse(c.bool("capture"), "CRLF line endings are accepted")
        XCTAssertEqual(c.address("listen").host, "::1")
        XCTAssertEqual(c.origin("server_port"), .file(path: "agent.conf", line: 4))
        XCTAssertEqual(c.origin("agent_name"), .file(path: "agent.conf", line: 5))
    }

    func testQuotedValueKeepsHashAndSpaces() {
        XCTAssertEqual(try ConfigFileParser.value(" \" a # b \" # c").get(), " a # b ")
        XCTAssertEqual(try ConfigFileParser.value(" 'x\"y'").get(), "x\"y")
        XCTAssertEqual(try ConfigFileParser.value(" # only a comment").get(), "")
        XCTAssertEqual(try ConfigFileParser.value("").get(), "")
        XCTAssertEqual(try ConfigFileParser.value(" a\t# tab comment").get(), "a")
    }

    func testEmptyValueIsEmptyString() throws {
        let c = try agentLikeSchema().load(text: "agent_name =\naccess_key = k", path: "agent.conf")
        XCTAssertEqual(c.string("agent_name"), "")
    }

    func testLineWithoutEquals() {
        XCTAssertEqual(loadErrors("access_key = k\nserver_port 6600\n"),
                       ["agent.conf:2: expected 'key = value', got \"server_port 6600\""])
    }

    func testMissingKeyName() {
        XCTAssertEqual(loadErrors("access_key = k\n = 5\n"), ["agent.conf:2: expected 'key = value', got \"= 5\""])
    }

    func testBadKeyName() {
        XCTAssertEqual(loadErrors("access_key = k\nserver port = 1\n"),
                       ["agent.conf:2: expected a key name of lower-case letters, digits and '_', got \"server port\""])
    }

    func testUnterminatedQuote() {
        XCTAssertEqual(loadErrors("access_key = k\nagent_name = \"edge\n"),
                       ["agent.conf:2: key 'agent_name': unterminated quote"])
    }

    func testTextAfterClosingQuote() {
        XCTAssertEqual(loadErrors("access_key = k\nagent_name = \"edge\" one\n"),
                       ["agent.conf:2: key 'agent_name': unexpected text after the closing quote: \"one\""])
    }

    func testParserReportsLinesAndKeys() {
        let (lines, errors) = ConfigFileParser.parse("a = 1\n\n# c\nb=2 # x\n", path: "f")
        XCTAssertEqual(errors, [])
        XCTAssertEqual(lines, [ConfigLine(line: 1, key: "a", value: "1"), ConfigLine(line: 4, key: "b", value: "2")])
    }
}
