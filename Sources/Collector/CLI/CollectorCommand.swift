// CollectorCommand: the `vigil-collector` command line.
//
//   vigil-collector run [--config FILE] [--set key=value]…
//   vigil-collector keys create --project NAME [--config FILE]
//   vigil-collector keys list [--project NAME] [--config FILE]
//   vigil-collector keys revoke KEY_ID [--config FILE]
//   vigil-collector check-config [--config FILE] [--set key=value]…
//
// Exit status: 0 success; 1 a runtime failure (database, socket); 2 a usage
// or configuration error — reported before any socket is opened.
import CollectorStore
import ConfigFile
import Reactor
#if canImport(Glibc)
import Glibc
#endif

public enum CollectorCommand {
    public static let program = "vigil-collector"
    public static let exitUsage: Int32 = 2
    public static let exitFailure: Int32 = 1

    static let commands: [CommandSpec] = [
        CommandSpec(["run"], set: true, summary: "serve agent sessions and the HTTP API"),
        CommandSpec(["keys", "create"], options: [OptionSpec("project", valueName: "NAME", required: true)], set: true,
                    summary: "create an access key for a project (created if new); prints only the key"),
        CommandSpec(["keys", "list"], options: [OptionSpec("project", valueName: "NAME")], set: true,
                    summary: "list access keys (never their secrets)"),
        CommandSpec(["keys", "revoke"], positionals: ["KEY_ID"], set: true,
                    summary: "revoke a key by the id `keys list` shows; takes effect at the next handshake"),
        CommandSpec(["check-config"], set: true, summary: "validate the configuration and print it (secrets redacted)"),
    ]

    /// Runs the command line (without the program name) and returns the exit status.
    public static func main(_ arguments: [String]) -> Int32 {
        let parsed: ParsedArguments
        do {
            parsed = try CommandArguments.parse(arguments, program: program, commands: commands)
        } catch {
            if error.isHelp {
                print(error.usage + "\n" + help, terminator: "")
                return 0
            }
            printError(error.description)
            return exitUsage
        }
        let environment = ConfigEnvironment.current()
        let configuration: Configuration
        let settings: CollectorSettings
        do {
            (configuration, settings) = try CollectorSettings.load(file: parsed.configPath, environment: environment,
                                                                   overrides: parsed.overrides)
        } catch {
            printError("\(program): configuration error\(error.errors.count == 1 ? "" : "s"):")
            for e in error.errors { printError("  \(e)") }
            return exitUsage
        }
        Log.level = settings.logLevel
        Log.format = settings.logFormat

        switch parsed.commandName {
        case "run":
            let loop = EventLoop.makeDefault()
            let server = CollectorServer(loop: loop, configuration: configuration, settings: settings,
                                         configPath: parsed.configPath, overrides: parsed.overrides, environment: environment)
            do {
                try server.start()
            } catch {
                Log.error(error.description)
                return exitFailure
            }
            loop.run()
            return server.exitCode
        case "check-config":
            print(configuration.render(), terminator: "")
            printError("\(program): configuration ok")
            return 0
        case "keys create":
            return KeysCommand.create(project: parsed.options["project"]!, settings: settings)
        case "keys list":
            return KeysCommand.list(project: parsed.options["project"], settings: settings)
        case "keys revoke":
            return KeysCommand.revoke(id: parsed.positionals[0], settings: settings)
        default:
            printError("\(program): unhandled command \(parsed.commandName)")
            return exitUsage
        }
    }

    static func printError(_ line: String) {
        let text = line + "\n"
        _ = text.withCString { Glibc.write(2, $0, strlen($0)) }
    }

    /// What `--help` adds to the usage: every configuration key with its
    /// default, the environment, signals, files and exit codes.
    static var help: String {
        var out = "configuration (file lines `key = value`, # comments; VIGIL_COLLECTOR_<KEY>; --set key=value):\n"
        let width = CollectorSchema.keys.map { $0.name.count }.max() ?? 0
        for k in CollectorSchema.keys {
            let pad = String(repeating: " ", count: width - k.name.count)
            let def = k.defaultText.map { $0.isEmpty ? "\"\"" : $0 } ?? "(required)"
            out += "  \(k.name)\(pad)  \(def)\(k.live ? "  [live]" : "")\n      \(k.help)\n"
        }
        out += """

        signals:
          SIGTERM, SIGINT  stop accepting, let batches in flight commit and be acknowledged,
                           close sessions, exit 0 (within \(Int(CollectorServer.shutdownBound)) s)
          SIGHUP           re-read the configuration file; [live] keys apply at once, an invalid
                           file is rejected and the running configuration kept

        files (in data_dir):
          vigil.db          the database (SQLite, WAL)
          admin_token       the HTTP API's bearer token when admin_token is empty (mode 0600)

        logs: one line per event on stderr; `run` announces `listening on ADDR`, `http on ADDR`,
        `ready`, and writes a `report` line every \(Int(CollectorServer.reportInterval)) s.

        exit status: 0 success, 1 runtime failure, 2 usage or configuration error.

        """
        return out
    }
}
