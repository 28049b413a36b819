// CollectorCommand: the `vigil-collector` command line.
//
//   vigil-collector run [--config FILE] [--set key=value]…
//   vigil-collector keys create --project NAME [--create-project] [--config FILE]
//   vigil-collector keys list [--project NAME] [--config FILE]
//   vigil-collector keys revoke KEY_ID [--config FILE]
//   vigil-collector check-config [--config FILE] [--set key=value]…
//   vigil-collector cluster status [--config FILE] [--set key=value]…
//   vigil-collector --version
//   vigil-collector [COMMAND] --help
//
// Exit status: 0 success; 1 a runtime failure (database, socket); 2 a usage
// or configuration error — reported before any socket is opened. The agent
// uses the same three meanings.
//
// `--version` and `--create-project` are flags (no value), which the shared
// grammar (CommandArguments) does not have; they are taken out here before
// it parses the rest.
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
                    summary: "create an access key for an existing project (--create-project: create it if new); prints only the key"),
        CommandSpec(["keys", "list"], options: [OptionSpec("project", valueName: "NAME")], set: true,
                    summary: "list access keys (never their secrets)"),
        CommandSpec(["keys", "revoke"], positionals: ["KEY_ID"], set: true,
                    summary: "revoke a key by the id `keys list` shows; takes effect at the next handshake"),
        CommandSpec(["check-config"], set: true, summary: "validate the configuration and print it (secrets redacted)"),
        CommandSpec(["cluster", "status"], set: true,
                    summary: "the collectors sharing the database: heartbeat age, live or dead, sessions, leases, loop lag"),
    ]

    /// Runs the command line (without the program name) and returns the exit status.
    public static func main(_ arguments: [String]) -> Int32 {
        let options = arguments.prefix { $0 != "--" }
        if options.contains("--version") {
            print("\(program) \(CollectorVersion.current)")
            return 0
        }
        var arguments = arguments
        var createProject = false
        if arguments.starts(with: ["keys", "create"]), let i = options.firstIndex(of: "--create-project") {
            arguments.remove(at: i)
            createProject = true
        }
        let parsed: ParsedArguments
        do {
            parsed = try CommandArguments.parse(arguments, program: program, commands: commands)
        } catch {
            if error.isHelp {
                print(helpText(for: arguments), terminator: "")
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
            server.notify = ServiceNotify.fromEnvironment()
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
            return KeysCommand.create(project: parsed.options["project"]!, createProject: createProject, settings: settings)
        case "keys list":
            return KeysCommand.list(project: parsed.options["project"], settings: settings)
        case "keys revoke":
            return KeysCommand.revoke(id: parsed.positionals[0], settings: settings)
        case "cluster status":
            return ClusterCommand.status(settings: settings)
        default:
            printError("\(program): unhandled command \(parsed.commandName)")
            return exitUsage
        }
    }

    static func printError(_ line: String) {
        let text = line + "\n"
        _ = text.withCString { Glibc.write(2, $0, strlen($0)) }
    }

    /// `--help` alone: every command, key, signal and exit status.
    /// `COMMAND --help`: that command's usage and what it does.
    static func helpText(for arguments: [String]) -> String {
        let words = Array(arguments.prefix { !$0.hasPrefix("-") })
        let spec = commands.filter { words.starts(with: $0.words) }.max { $0.words.count < $1.words.count }
        guard let spec else {
            return CommandArguments.usage(program: program, commands: commands)
                .replacing("keys create --project NAME", with: "keys create --project NAME [--create-project]", maxReplacements: 1)
                + "  \(program) --version\n      print the version\n\n" + help
        }
        var out = CommandArguments.usage(program: program, commands: [spec])
            .replacing("keys create --project NAME", with: "keys create --project NAME [--create-project]", maxReplacements: 1) + "\n"
        out += commandHelp[spec.name] ?? ""
        if spec.acceptsSet {
            out += "\nconfiguration: --config FILE, VIGIL_COLLECTOR_<KEY>, --set key=value (`\(program) --help` lists every key)\n"
        }
        out += "\nexit status: \(exitStatusText)\n"
        return out
    }

    static let exitStatusText = "0 success, 1 runtime failure (database, socket), 2 usage or configuration error"

    /// What each command's `--help` says beyond its synopsis.
    static let commandHelp: [String: String] = [
        "run": """
        Serves agent sessions on `listen` and the HTTP API, /healthz and /metrics on `http_listen`
        (HTTPS with `http_tls_cert` and `http_tls_key`; /metrics and /healthz alone also on
        `metrics_listen` when set) until SIGTERM or SIGINT; SIGHUP re-reads the configuration file.

        """,
        "keys create": """
        Prints the new access key, PROJECT.SECRET (the project name, a dot, 43 base64url
        characters), and nothing else on stdout. The project must exist (it has a key already);
        --create-project creates it when it does not, so a misspelt name is refused rather
        than made into a new project.

        """,
        "keys list": """
        One line per key: its id, project, creation time and revocation time (UTC, ISO 8601).
        Secrets are never printed.

        """,
        "keys revoke": """
        Revokes the key with the id `keys list` shows; a running collector refuses it at the
        next handshake.

        """,
        "cluster status": """
        Reads the collectors of the configured database (`store`, `postgresql_url`): one line
        each with its collector_id, live or dead (no heartbeat within the \(ClusterNode.leaseMs / 1000) s lease), the
        heartbeat's age, established sessions, agent leases held, loop lag p99, version and
        addresses, then the totals. On SQLite the database is one collector's: it prints that one.

        """,
        "check-config": """
        Checks the configuration (file, environment, --set) and prints every key with its value
        and origin, secrets redacted. Every error is reported, each naming where the value came from.

        """,
    ]

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

        exit status: \(exitStatusText).

        """
        return out
    }
}
