// AgentProcess: the real `vigil-agent` binary as a child process, with its
// stdout and stderr in temporary files, for end-to-end tests.
import Foundation
import XCTest

/// The directory holding the test bundle, where SwiftPM also puts the
/// package's executables (`vigil-agent`, `vigil-collector`).
let productsDirectory: URL = {
    URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
}()

final class AgentProcess {
    let process = Process()
    let stdoutPath: String
    let stderrPath: String
    /// A private `state_dir` (VIGIL_STATE_DIR) unless the caller gives one:
    /// nothing lands in the working directory; removed with the process.
    let stateDir: String?

    init(_ arguments: [String], environment: [String: String] = [:], binary: String = "vigil-agent") throws {
        let id = "\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        stdoutPath = "/tmp/vigil-test-\(id).out"
        stderrPath = "/tmp/vigil-test-\(id).err"
        FileManager.default.createFile(atPath: stdoutPath, contents: nil)
        FileManager.default.createFile(atPath: stderrPath, contents: nil)
        process.executableURL = productsDirectory.appendingPathComponent(binary)
        process.arguments = arguments
        // A clean environment: nothing from the test run's VIGIL_* leaks in.
        var env = ["PATH": "/usr/bin:/bin"].merging(environment) { $1 }
        if env["VIGIL_STATE_DIR"] == nil && !arguments.contains(where: { $0.hasPrefix("state_dir") }) {
            let dir = "/tmp/vigil-test-\(id).state"
            env["VIGIL_STATE_DIR"] = dir
            stateDir = dir
        } else {
            stateDir = nil
        }
        process.environment = env
        process.standardOutput = FileHandle(forWritingAtPath: stdoutPath)
        process.standardError = FileHandle(forWritingAtPath: stderrPath)
        try process.run()
    }

    deinit {
        if process.isRunning { kill(process.processIdentifier, SIGKILL); process.waitUntilExit() }
        unlink(stdoutPath)
        unlink(stderrPath)
        if let stateDir { try? FileManager.default.removeItem(atPath: stateDir) }
    }

    var pid: Int32 { process.processIdentifier }
    var isRunning: Bool { process.isRunning }
    var exitCode: Int32? { process.isRunning ? nil : process.terminationStatus }
    var stdout: String { (try? String(contentsOfFile: stdoutPath, encoding: .utf8)) ?? "" }
    var stderr: String { (try? String(contentsOfFile: stderrPath, encoding: .utf8)) ?? "" }

    func signal(_ s: Int32) { kill(process.processIdentifier, s) }

    /// Runs a short command to completion (no loop needed: nothing to serve).
    static func run(_ arguments: [String], environment: [String: String] = [:],
                    binary: String = "vigil-agent") throws -> (code: Int32, stdout: String, stderr: String) {
        let p = try AgentProcess(arguments, environment: environment, binary: binary)
        p.process.waitUntilExit()
        return (p.process.terminationStatus, p.stdout, p.stderr)
    }
}

/// Writes `lines` as a configuration file; returns its path.
func writeConfig(_ lines: [String: String], extra: String = "") -> String {
    let path = "/tmp/vigil-agent-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).conf"
    let text = lines.sorted { $0.key < $1.key }.map { "\($0.key) = \($0.value)" }.joined(separator: "\n") + "\n" + extra
    FileManager.default.createFile(atPath: path, contents: Data(text.utf8))
    return path
}
