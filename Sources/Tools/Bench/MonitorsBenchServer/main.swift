// monitors-bench-server PORT: the HTTP server the monitors benchmark runs
// against — HTTPServer (libmicrohttpd on a Reactor loop, what the
// collector's API serves on) in its own process, answering every request
// with 200 and a short body.
// Prints "ready PORT" when listening, and its request count on SIGTERM.
import HTTPServer
import Reactor
#if canImport(Glibc)
import Glibc
#endif

let port = CommandLine.arguments.count > 1 ? UInt16(CommandLine.arguments[1]) ?? 0 : 0
let loop = EventLoop.makeDefault()
_ = try? ProcessLimits.raiseDescriptorLimit()
let body = Array("{\"status\":\"ok\"}".utf8)
let server = HTTPServer(loop: loop) { _, responder in
    responder.respond(HTTPResponse(status: 200, body: body))
}
do {
    try server.start(address: SocketAddress(parsing: "127.0.0.1:\(port)"), connectionLimit: 4096, timeoutSeconds: 30)
} catch {
    print("cannot listen: \(error)")
    exit(1)
}
print("ready \(server.port)")
fflush(stdout)
let term = SignalWatcher(loop: loop, signal: SIGTERM) { _ in loop.stop() }
term.start()
loop.run()
print("requests=\(server.requests)")
server.stop()
