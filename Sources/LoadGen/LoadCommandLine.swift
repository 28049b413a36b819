// LoadCommandLine: `vigil-load`'s entry point — arguments, the descriptor
// limit, the ledger file, the run, the one summary line.
#if canImport(Glibc)
import Glibc
#endif
import Reactor

public enum LoadCommandLine {
    /// Runs the command in `argv` (program name first); returns the exit
    /// status: 0 done, 1 the run or the check failed, 2 usage error.
    public static func main(_ argv: [String]) -> Int32 {
        let command: LoadCommand
        do {
            command = try LoadArguments.parse(Array(argv.dropFirst()))
        } catch {
            printError("vigil-load: \(error)\nusage: vigil-load density|ingest --key KEY [options] | verify --ledger FILE --db PATH… | e2e --udp IP:PORT --db PATH   (vigil-load --help)")
            return 2
        }
        switch command {
        case .help:
            print(HelpText.usage)
            return 0
        case .verify(let o):
            do {
                let (summary, ok) = try Verifier.run(o)
                print(summary.line(prefix: "verify:"))
                return ok ? 0 : 1
            } catch {
                printError("vigil-load verify: \(error)")
                return 1
            }
        case .e2e(let o):
            do {
                let summary = try LatencyProbe(options: o).run()
                print(summary.line(prefix: "e2e:"))
                return summary["windows"] == "0" ? 1 : 0
            } catch {
                printError("vigil-load e2e: \(error)")
                return 1
            }
        case .run(let o):
            return run(o)
        }
    }

    static func run(_ o: LoadOptions) -> Int32 {
        Log.level = .info
        // Descriptors: one per session plus the loop's own and some slack.
        let need = UInt64(o.agents) + 256
        switch raiseDescriptorLimit(to: need) {
        case .success(let limit):
            Log.info("descriptor limit", ["limit": "\(limit)", "needed": "\(need)"])
        case .failure(let e):
            printError("vigil-load: \(e)")
            return 1
        }
        let perSource = ephemeralPorts() * 9 / 10
        let sources = o.sources.resolve(agents: o.agents, portsPerSource: perSource)
        if !sources.isEmpty && o.agents / sources.count > perSource {
            Log.warn("more agents per source address than ephemeral ports; connects will fail with EADDRNOTAVAIL",
                     ["agents": "\(o.agents)", "sources": "\(sources.count)", "ports_per_source": "\(perSource)"])
        }
        var ledgerFile: LedgerFile?
        if let path = o.ledgerPath {
            do { ledgerFile = try LedgerFile(path: path) } catch {
                printError("vigil-load: cannot create the ledger: \(error)")
                return 1
            }
        }
        let loop = EventLoop.makeDefault()
        let runner = LoadRunner(options: o, loop: loop, sources: sources, ledgerOutput: ledgerFile)
        let summary = runner.run()
        var status: Int32 = 0
        do {
            try runner.ledger.finish()
            try ledgerFile?.close()
        } catch {
            printError("vigil-load: the ledger is incomplete: \(error)")
            status = 1
        }
        print(summary.line(prefix: "load-run:"))
        if let path = o.jsonPath, !writeFile(path, summary.json + "\n") {
            printError("vigil-load: cannot write \(path): \(Syscalls.errorName(errno))")
            status = 1
        }
        if runner.stats.handshakes == 0 {
            printError("vigil-load: no session was established (see the failures above and `closes=`)")
            status = 1
        }
        if runner.ledger.beyondSent > 0 {
            printError("vigil-load: the collector acknowledged \(runner.ledger.beyondSent) batch numbers that were never sent")
            status = 1
        }
        return status
    }

    /// Raises RLIMIT_NOFILE to at least `need` if it can: the soft limit up
    /// to the hard one, and with the privilege for it (root:
    /// CAP_SYS_RESOURCE) the hard limit too, up to fs.nr_open.
    static func raiseDescriptorLimit(to need: UInt64) -> Result<UInt64, UsageError> {
        var rl = rlimit()
        getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &rl)
        if UInt64(rl.rlim_cur) >= need { return .success(UInt64(rl.rlim_cur)) }
        if UInt64(rl.rlim_max) < need {
            let nrOpen = ProcessLimits.readSmallFile("/proc/sys/fs/nr_open").flatMap { UInt64($0.trimmingSpaces()) } ?? need
            var raised = rl
            raised.rlim_max = rlim_t(min(max(need, UInt64(rl.rlim_max)), nrOpen))
            raised.rlim_cur = raised.rlim_max
            if setrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &raised) == 0 {
                rl = raised
            }
        } else {
            rl.rlim_cur = rl.rlim_max
            setrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &rl)
        }
        getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &rl)
        guard UInt64(rl.rlim_cur) >= need else {
            return .failure(UsageError("need \(need) descriptors for --agents, but the limit is \(rl.rlim_cur) (hard \(rl.rlim_max)); raise it (ulimit -Hn, or run as root) or use fewer agents"))
        }
        return .success(UInt64(rl.rlim_cur))
    }

    /// Ports in net.ipv4.ip_local_port_range (28,232 on a default Linux).
    static func ephemeralPorts() -> Int {
        guard let text = ProcessLimits.readSmallFile("/proc/sys/net/ipv4/ip_local_port_range") else { return 28_232 }
        let parts = text.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" }).compactMap { Int($0) }
        guard parts.count == 2, parts[1] >= parts[0] else { return 28_232 }
        return parts[1] - parts[0] + 1
    }

    static func printError(_ s: String) {
        let line = s + "\n"
        _ = line.withCString { write(2, $0, strlen($0)) }
    }

    static func writeFile(_ path: String, _ text: String) -> Bool {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        let n = text.withCString { write(fd, $0, strlen($0)) }
        return n == text.utf8.count
    }
}
