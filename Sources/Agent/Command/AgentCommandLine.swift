// AgentCommandLine: `vigil-agent`'s commands, in the library so tests can
// call them; Sources/vigil-agent/main.swift only forwards argv.
//
//   vigil-agent run [--config FILE] [--set key=value]…
//   vigil-agent check-config [--config FILE] [--set key=value]…
//   vigil-agent replay FILE [--config FILE] [--set key=value]…
//   vigil-agent version            (also: vigil-agent --version)
//   vigil-agent [COMMAND] --help   (that command's usage, or everything)
//
// Exit status, as the collector's where they overlap: 0 success; 1 a start
// failure (a socket that cannot be bound); 2 a usage or configuration error
// (printed before any socket is opened); 3 replay: no collector reachable
// or acknowledging; 4 replay: the file cannot be read.
//
// The command line sits above the rest: it builds an AgentRuntime and, for
// `replay`, a ReplayDriver on top of it; neither knows the command line.
//
// Thread: the main thread, which then runs the default loop.
#if canImport(Glibc)
import Glibc
#endif
import ConfigFile
import Wire
import Reactor

public enum AgentCommandLine {
    public enum ExitCode {
        public static let ok: Int32 = 0
        /// A start failure after the configuration was accepted.
        public static let failure: Int32 = 1
        public static let usage: Int32 = 2
        /// The same status as a usage error, as the collector's.
        public static let config: Int32 = 2
    }

    /// What every `--help` ends with.
    static let exitStatuses = """
        exit status: 0 success; 1 start failure (e.g. the instrumentation port cannot be bound);
          2 usage or configuration error (every error printed, before any socket is opened);
          3 replay: no collector reachable or acknowledging; 4 replay: the file cannot be read.

        """

    public static let commands: [CommandSpec] = [
        CommandSpec(["run"], set: true, summary: "receive, filter, aggregate and ship to the collector until SIGTERM"),
        CommandSpec(["check-config"], set: true, summary: "validate the configuration and print it (secrets redacted)"),
        CommandSpec(["replay"], positionals: ["FILE"], set: true,
                    summary: "send the IPA records of FILE (one per line) and wait until all are acknowledged"),
        CommandSpec(["version"], config: false, summary: "print the version"),
    ]

    /// Runs the command in `arguments` (argv without the program name) and
    /// returns the exit status.
    public static func main(_ arguments: [String]) -> Int32 {
        let parsed: ParsedArguments
        do throws(UsageError) {
            parsed = try CommandArguments.parse(arguments, program: "vigil-agent", commands: commands)
        } catch {
            if error.isHelp {
                if let command = error.command {
                    var text = error.usage
                    if command.acceptsConfig {
                        text += "\nConfiguration: --config FILE (`key = value`), env VIGIL_<KEY>"
                            + (command.acceptsSet ? ", --set key=value" : "") + "; `vigil-agent --help` lists the keys.\n"
                    }
                    print(text + "\n" + exitStatuses, terminator: "")
                    return ExitCode.ok
                }
                print(error.usage + "\nConfiguration keys (file `key = value`, env VIGIL_<KEY>, --set key=value):\n"
                      + AgentSchema.keys.map { "  \($0.name) (default \($0.defaultText.map { $0.isEmpty ? "\"\"" : $0 } ?? "required"))  \($0.help)" }
                          .joined(separator: "\n") + "\n\n" + exitStatuses, terminator: "")
                return ExitCode.ok
            }
            printError(error.description)
            return ExitCode.usage
        }
        let source = ConfigSource(path: parsed.configPath, environment: ConfigEnvironment.current(),
                                  overrides: parsed.overrides)
        switch parsed.commandName {
        case "version":
            print("vigil-agent \(AgentVersion.current)")
            return ExitCode.ok
        case "check-config":
            guard let (config, _) = load(source) else { return ExitCode.config }
            print(config.render(), terminator: "")
            return ExitCode.ok
        case "run":
            return run(source, replay: nil)
        case "replay":
            return run(source, replay: parsed.positionals[0])
        default:
            printError("vigil-agent: unknown command \(parsed.commandName)")
            return ExitCode.usage
        }
    }

    /// Seconds after start when `run` trims mapped pages: the session and
    /// the first rule install are done by then on any reachable collector.
    static let trimDelaySeconds = 5.0
    /// The agent's static key pair, in `state_dir` (StaticKeyFile).
    static let keyFileName = "agent_key"

    static func load(_ source: ConfigSource) -> (Configuration, AgentSettings)? {
        do throws(ConfigErrors) {
            return try source.load()
        } catch {
            for e in error.errors { printError(e.description) }
            printError("vigil-agent: configuration invalid (\(error.errors.count) error\(error.errors.count == 1 ? "" : "s"))")
            return nil
        }
    }

    static func run(_ source: ConfigSource, replay path: String?) -> Int32 {
        guard let (config, settings) = load(source) else { return ExitCode.config }
        Log.level = settings.logLevel
        Log.format = settings.logFormat
        do throws(StateDirectory.Failure) {
            try StateDirectory.prepare(settings.stateDir)
        } catch {
            printError("vigil-agent: cannot start: \(error)")
            return ExitCode.failure
        }
        // The agent's identity: made at the first start, the same key ever
        // after (the collector refuses another key for this agent id).
        let identity: StaticKeyPair
        do throws(StaticKeyFile.Failure) {
            let path = StaticKeyFile.path(directory: settings.stateDir, name: AgentCommandLine.keyFileName)
            let (key, created) = try StaticKeyFile.loadOrCreate(path: path)
            identity = key
            Log.info(created ? "agent key created" : "agent key read", ["path": path, "public_key": key.publicText])
        } catch {
            printError("vigil-agent: cannot start: \(error)")
            return ExitCode.failure
        }
        // The spool (run mode): an unusable spool_dir stops the start, named.
        var spool: Spool?
        if path == nil, let s = settings.spool {
            do throws(Spool.Failure) { spool = try Spool.open(s) } catch {
                printError("vigil-agent: cannot start: \(error)")
                return ExitCode.failure
            }
        }
        let loop = EventLoop.makeDefault()
        let runtime = AgentRuntime(loop: loop, mode: path == nil ? .run : .replay, source: source,
                                   config: config, settings: settings, identity: identity, spool: spool)
        if path == nil { runtime.rulesPath = RuleFile.path(stateDir: settings.stateDir) }
        var status = ExitCode.ok
        runtime.onExit = { code in
            status = code
            loop.stop()
        }
        runtime.installSignalHandlers()
        var driver: ReplayDriver?
        do {
            if let path {
                let d = ReplayDriver(runtime: runtime, path: path)
                driver = d
                do {
                    try d.start()
                } catch let e as SyscallError where e.call.hasPrefix("open(") {
                    printError("vigil-agent replay: cannot read \(path): \(Syscalls.errorName(e.errno))")
                    return ReplayDriver.ExitCode.unreadable
                }
            } else {
                runtime.notify = ServiceNotify.fromEnvironment()
                try runtime.start()
            }
        } catch {
            printError("vigil-agent: cannot start: \(error)")
            return ExitCode.failure
        }
        // Start-up code (configuration, handshake, rule install) is mapped
        // by now; give back what idle operation does not use
        // (MappedPageTrim). The process only: tests that run the agent
        // in-process keep their mappings.
        let trim = TimerWatcher(loop: loop) { _ in trimMappedPages(reason: "start-up") }
        // libcurl and its ~30 libraries, mapped when the first HTTP monitor
        // is scheduled, and their one-time paths (relocation, constructors,
        // curl_global_init, the first TLS context): once the first http and
        // the first https run are done, the same again (docs/PERFORMANCE.md,
        // "Footprint with HTTP monitors").
        if path == nil { runtime.onHTTPWarm = { scheme in trimMappedPages(reason: "first-\(scheme)-run") } }
        if path == nil { trim.start(after: trimDelaySeconds) }
        loop.run()
        trim.stop()
        withExtendedLifetime(driver) {}
        return status
    }

    /// One MappedPageTrim pass, logged with what it follows (`start-up`,
    /// `first-http-run`, `first-https-run`); then the ranges once more, so
    /// the logging code drops out too.
    static func trimMappedPages(reason: String) {
        let t = MappedPageTrim.run()
        Log.info("mapped pages trimmed", [
            "after": reason,
            "rss_before_kib": "\(t.rssBefore / 1024)", "rss_after_kib": "\(t.rssAfter / 1024)",
            "mappings": "\(t.mappings)", "failures": "\(t.failures)",
        ])
        MappedPageTrim.repeatAdvice(t)
    }

    static func printError(_ s: String) {
        Syscalls.writeMessage(2, s + "\n")
    }
}
