import XCTest
import ConfigFile

final class CommandArgumentsTests: XCTestCase {
    let commands = [
        CommandSpec(["run"], set: true, summary: "run the collector"),
        CommandSpec(["check-config"]),
        CommandSpec(["keys", "create"], options: [OptionSpec("project", valueName: "NAME", required: true)]),
        CommandSpec(["keys", "list"], options: [OptionSpec("project", valueName: "NAME")]),
        CommandSpec(["replay"], positionals: ["FILE"], set: true),
        CommandSpec(["version"], config: false),
    ]

    private func parse(_ args: [String]) throws -> ParsedArguments {
        try CommandArguments.parse(args, program: "vigil", commands: commands)
    }

    private func usageError(_ args: [String]) -> String {
        do { _ = try parse(args); return "no error" } catch { return (error as! UsageError).message }
    }

    func testRunWithConfigAndSets() throws {
        let p = try parse(["run", "--config", "c.conf", "--set", "server_port=7000", "--set=log_format = json"])
        XCTAssertEqual(p.commandName, "run")
        XCTAssertEqual(p.configPath, "c.conf")
        XCTAssertEqual(p.overrides.map(\.key), ["server_port", "log_format"])
        XCTAssertEqual(p.overrides.map(\.value), ["7000", "json"])
    }

    func testValueMayContainEquals() throws {
        let p = try parse(["run", "--config=c.conf", "--set", "access_key=a=b"])
        XCTAssertEqual(p.configPath, "c.conf")
        XCTAssertEqual(p.overrides.first?.value, "a=b")
    }

    func testSubcommandWithRequiredOption() throws {
        let p = try parse(["keys", "create", "--project", "demo"])
        XCTAssertEqual(p.commandName, "keys create")
        XCTAssertEqual(p.options["project"], "demo")
        XCTAssertEqual(usageError(["keys", "create"]), "vigil: 'keys create' needs --project NAME")
        XCTAssertNil(try parse(["keys", "list"]).options["project"])
    }

    func testPositionals() throws {
        XCTAssertEqual(try parse(["replay", "f.txt", "--set", "capture=on"]).positionals, ["f.txt"])
        XCTAssertEqual(try parse(["replay", "--", "-odd-name"]).positionals, ["-odd-name"])
        XCTAssertEqual(usageError(["replay"]), "vigil: 'replay' needs FILE")
        XCTAssertEqual(usageError(["replay", "a", "b"]), "vigil: unexpected argument \"b\" for 'replay'")
    }

    func testUsageErrors() {
        XCTAssertEqual(usageError([]), "vigil: missing command")
        XCTAssertEqual(usageError(["rnu"]), "vigil: unknown command 'rnu' (did you mean 'run'?)")
        XCTAssertEqual(usageError(["frobnicate"]), "vigil: unknown command 'frobnicate'")
        XCTAssertEqual(usageError(["keys"]), "vigil: 'keys' needs a subcommand (one of create, list)")
        XCTAssertEqual(usageError(["keys", "delete"]), "vigil: unknown command 'keys delete' (one of create, list)")
        XCTAssertEqual(usageError(["run", "--verbose"]), "vigil: unknown option '--verbose' for 'run'")
        XCTAssertEqual(usageError(["check-config", "--set", "a=b"]), "vigil: unknown option '--set' for 'check-config'")
        XCTAssertEqual(usageError(["version", "--config", "x"]), "vigil: unknown option '--config' for 'version'")
        XCTAssertEqual(usageError(["run", "--config"]), "vigil: --config needs a value")
        XCTAssertEqual(usageError(["run", "--config="]), "vigil: --config needs a file name")
        XCTAssertEqual(usageError(["run", "--config", "a", "--config", "b"]), "vigil: --config given twice")
        XCTAssertEqual(usageError(["run", "--set", "novalue"]), "vigil: --set expects key=value, got \"novalue\"")
        XCTAssertEqual(usageError(["run", "--set", "=v"]), "vigil: --set expects key=value, got \"=v\"")
        XCTAssertEqual(usageError(["keys", "list", "--project", "a", "--project", "b"]), "vigil: --project given twice")
        XCTAssertEqual(usageError(["run", "extra"]), "vigil: unexpected argument \"extra\" for 'run'")
    }

    func testUsageTextAndHelp() {
        do {
            _ = try parse(["--help"])
            XCTFail("expected help")
        } catch {
            let u = error as! UsageError
            XCTAssertTrue(u.isHelp)
            XCTAssertNil(u.command)
            XCTAssertEqual(u.description, u.usage)
            XCTAssertTrue(u.usage.contains("  vigil run [--config FILE] [--set key=value]…\n      run the collector\n"), u.usage)
            XCTAssertTrue(u.usage.contains("  vigil keys create --project NAME [--config FILE]\n"), u.usage)
            XCTAssertTrue(u.usage.contains("  vigil replay FILE [--config FILE] [--set key=value]…\n"), u.usage)
        }
        let e = UsageError(message: "vigil: bad", usage: "usage:\n", isHelp: false)
        XCTAssertEqual(e.description, "vigil: bad\nusage:\n")
    }

    func testVersionOptionIsTheVersionCommand() throws {
        XCTAssertEqual(try parse(["--version"]).commandName, "version")
        let without = [CommandSpec(["run"])]
        XCTAssertThrowsError(try CommandArguments.parse(["--version"], program: "vigil", commands: without))
    }

    /// `COMMAND --help` is that command's usage alone; unknown words before
    /// `--help` get the whole program's.
    func testCommandHelpIsThatCommandsAlone() {
        for (args, name) in [(["run", "--help"], "run"), (["keys", "create", "-h"], "keys create"),
                             (["replay", "--set", "a=b", "--help"], "replay")] {
            do {
                _ = try parse(args)
                XCTFail("expected help for \(args)")
            } catch {
                let u = error as! UsageError
                XCTAssertTrue(u.isHelp)
                XCTAssertEqual(u.command?.name, name)
                XCTAssertEqual(u.usage.components(separatedBy: "\n  vigil ").count, 2, u.usage)
                XCTAssertTrue(u.usage.contains("  vigil \(name)"), u.usage)
            }
        }
        do {
            _ = try parse(["nope", "--help"])
            XCTFail("expected help")
        } catch {
            let u = error as! UsageError
            XCTAssertNil(u.command)
            XCTAssertTrue(u.usage.contains("vigil keys create") && u.usage.contains("vigil run"), u.usage)
        }
    }
}
