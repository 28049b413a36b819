// CommandArguments: `prog CMD [SUB] [--config FILE] [--set k=v]… [--opt V] [ARG]…`
// — the small command-line grammar every Vigil program shares. Options may
// be written `--name value` or `--name=value`; `--` ends options; `-h` or
// `--help` anywhere asks for usage (of the command named before it, else of
// every command); `--version` first is the `version` command, when the
// program has one. A mistake is a `UsageError` whose text says what was
// wrong and shows the usage.

/// An option with a value, other than `--config` and `--set`.
public struct OptionSpec: Sendable {
    public let name: String          // without dashes: "project"
    public let valueName: String     // "NAME"
    public let required: Bool

    public init(_ name: String, valueName: String, required: Bool = false) {
        self.name = name
        self.valueName = valueName
        self.required = required
    }
}

/// One command: its words (`["keys", "create"]`), options and positional
/// arguments (all positionals are required).
public struct CommandSpec: Sendable {
    public let words: [String]
    public let options: [OptionSpec]
    public let positionals: [String]
    public let acceptsConfig: Bool
    public let acceptsSet: Bool
    public let summary: String

    public init(_ words: [String], options: [OptionSpec] = [], positionals: [String] = [],
                config: Bool = true, set: Bool = false, summary: String = "") {
        precondition(!words.isEmpty)
        self.words = words
        self.options = options
        self.positionals = positionals
        self.acceptsConfig = config
        self.acceptsSet = set
        self.summary = summary
    }

    public var name: String { words.joined(separator: " ") }

    var synopsis: String {
        var s = name
        for o in options where o.required { s += " --\(o.name) \(o.valueName)" }
        for p in positionals { s += " \(p)" }
        for o in options where !o.required { s += " [--\(o.name) \(o.valueName)]" }
        if acceptsConfig { s += " [--config FILE]" }
        if acceptsSet { s += " [--set key=value]…" }
        return s
    }
}

public struct ParsedArguments: Sendable {
    public let command: CommandSpec
    public let configPath: String?
    /// `--set` arguments in order, split at the first `=` (key and value trimmed).
    public let overrides: [(key: String, value: String)]
    public let options: [String: String]
    public let positionals: [String]

    public var commandName: String { command.name }
}

public struct UsageError: Error, CustomStringConvertible, Sendable {
    /// Empty when help was asked for.
    public let message: String
    public let usage: String
    /// `-h`/`--help`: print `usage` to stdout and exit 0.
    public let isHelp: Bool
    /// With `isHelp`: the command help was asked for (`usage` is then that
    /// command's alone); nil for the whole program.
    public let command: CommandSpec?

    public init(message: String, usage: String, isHelp: Bool, command: CommandSpec? = nil) {
        self.message = message
        self.usage = usage
        self.isHelp = isHelp
        self.command = command
    }

    public var description: String { isHelp ? usage : "\(message)\n\(usage)" }
}

public enum CommandArguments {
    /// Parses `arguments` (without the program name, i.e.
    /// `CommandLine.arguments.dropFirst()`).
    public static func parse(_ arguments: [String], program: String,
                             commands: [CommandSpec]) throws(UsageError) -> ParsedArguments {
        let usageText = usage(program: program, commands: commands)
        func fail(_ m: String) -> UsageError { UsageError(message: "\(program): \(m)", usage: usageText, isHelp: false) }
        var arguments = arguments
        if arguments.first == "--version", commands.contains(where: { $0.words == ["version"] }) {
            arguments[0] = "version"
        }

        // The command is the longest run of leading words naming one.
        let words = Array(arguments.prefix { !$0.hasPrefix("-") })
        var found: CommandSpec?
        for c in commands where c.words.count <= words.count && Array(words.prefix(c.words.count)) == c.words {
            if c.words.count > (found?.words.count ?? 0) { found = c }
        }
        if arguments.contains(where: { $0 == "-h" || $0 == "--help" }) {
            guard let found else { throw UsageError(message: "", usage: usageText, isHelp: true) }
            throw UsageError(message: "", usage: usage(program: program, commands: [found]), isHelp: true, command: found)
        }
        guard let spec = found else {
            guard let first = words.first else { throw fail("missing command") }
            let subs = commands.filter { $0.words.count > 1 && $0.words[0] == first }
            if !subs.isEmpty {
                let choices = subs.map { $0.words[1] }.joined(separator: ", ")
                let what = words.count > 1 ? "unknown command '\(first) \(words[1])'" : "'\(first)' needs a subcommand"
                throw fail("\(what) (one of \(choices))")
            }
            let best = commands.map { ($0.words[0], ConfigText.distance(first, $0.words[0])) }.min { $0.1 < $1.1 }
            let hint = best.flatMap { $0.1 <= 2 ? " (did you mean '\($0.0)'?)" : nil } ?? ""
            throw fail("unknown command '\(first)'\(hint)")
        }

        var configPath: String?
        var overrides: [(key: String, value: String)] = []
        var options: [String: String] = [:]
        var positionals: [String] = []
        var rest = arguments.dropFirst(spec.words.count)
        var optionsEnded = false
        while let arg = rest.popFirst() {
            if optionsEnded || !arg.hasPrefix("-") || arg == "-" { positionals.append(arg); continue }
            if arg == "--" { optionsEnded = true; continue }
            var name = String(arg.drop { $0 == "-" })
            var inline: String?
            if let eq = name.firstIndex(of: "=") {
                inline = String(name[name.index(after: eq)...])
                name = String(name[..<eq])
            }
            func value() throws(UsageError) -> String {
                if let inline { return inline }
                guard let v = rest.popFirst() else { throw fail("--\(name) needs a value") }
                return v
            }
            switch name {
            case "config" where spec.acceptsConfig:
                if configPath != nil { throw fail("--config given twice") }
                configPath = try value()
                if configPath!.isEmpty { throw fail("--config needs a file name") }
            case "set" where spec.acceptsSet:
                let kv = try value()
                guard let eq = kv.firstIndex(of: "="), !ConfigText.trimmed(kv[..<eq]).isEmpty else {
                    throw fail("--set expects key=value, got \(ConfigText.quoted(kv))")
                }
                overrides.append((key: ConfigText.trimmed(kv[..<eq]), value: ConfigText.trimmed(kv[kv.index(after: eq)...])))
            default:
                guard spec.options.contains(where: { $0.name == name }) else {
                    throw fail("unknown option '--\(name)' for '\(spec.name)'")
                }
                if options[name] != nil { throw fail("--\(name) given twice") }
                options[name] = try value()
            }
        }
        for o in spec.options where o.required && options[o.name] == nil {
            throw fail("'\(spec.name)' needs --\(o.name) \(o.valueName)")
        }
        if positionals.count < spec.positionals.count {
            throw fail("'\(spec.name)' needs \(spec.positionals[positionals.count...].joined(separator: " "))")
        }
        if positionals.count > spec.positionals.count {
            throw fail("unexpected argument \(ConfigText.quoted(positionals[spec.positionals.count])) for '\(spec.name)'")
        }
        return ParsedArguments(command: spec, configPath: configPath, overrides: overrides,
                               options: options, positionals: positionals)
    }

    public static func usage(program: String, commands: [CommandSpec]) -> String {
        var out = "usage:\n"
        for c in commands {
            out += "  \(program) \(c.synopsis)\n"
            if !c.summary.isEmpty { out += "      \(c.summary)\n" }
        }
        return out
    }
}
