// swift-tools-version:6.0
import PackageDescription
import class Foundation.ProcessInfo

// VIGIL_STATIC=1 links the C libraries from their Debian .a archives so
// vigil-agent ships as one binary (see README, "Static build").
let staticC = ProcessInfo.processInfo.environment["VIGIL_STATIC"] == "1"

func cLibrary(_ name: String) -> LinkerSetting {
    staticC ? .unsafeFlags(["-Xlinker", "-l:lib\(name).a"]) : .linkedLibrary(name)
}

let package = Package(
    name: "Vigil",
    products: [
        .library(name: "Reactor", targets: ["Reactor"]),
        .library(name: "Wire", targets: ["Wire"]),
    ],
    targets: [
        // libev's macros as static inline functions; nothing else.
        .target(name: "CEv", linkerSettings: [cLibrary("ev"), .linkedLibrary("m")]),
        // Linux socket calls hidden behind _GNU_SOURCE, and the CMSG macros.
        .target(name: "CSystem"),
        // The event loop: watchers, syscalls, sockets, buffers. No Foundation.
        .target(name: "Reactor", dependencies: ["CEv", "CSystem"]),
        .executableTarget(name: "reactor-demo", dependencies: ["Reactor"], path: "Sources/ReactorDemo"),
        .testTarget(name: "ReactorTests", dependencies: ["Reactor", "CEv"]),
        // libsodium's header (X25519, ChaCha20-Poly1305, SHA-256, HMAC) from
        // libsodium-dev. No pkgConfig and no `link` in the modulemap: both
        // would add -lsodium and pin the shared library even with
        // VIGIL_STATIC=1; Wire links it through cLibrary, like CEv does libev.
        .systemLibrary(name: "CSodium", providers: [.apt(["libsodium-dev"])]),
        // The agent<->collector protocol: preamble, framing, Noise NNpsk0, records, sessions.
        .target(name: "Wire", dependencies: ["CSodium", "Reactor"], linkerSettings: [cLibrary("sodium")]),
        .testTarget(name: "WireTests", dependencies: ["Wire"], exclude: ["Fixtures"]),
        // libFuzzer targets (scripts/fuzz.sh builds them with -D FUZZING);
        // a plain build makes file-replay tools of the same code.
        .executableTarget(name: "fuzz-framing", dependencies: ["Wire"], path: "Sources/FuzzFraming"),
        .executableTarget(name: "fuzz-records", dependencies: ["Wire"], path: "Sources/FuzzRecords"),
        .executableTarget(name: "fuzz-handshake", dependencies: ["Wire", "Reactor"], path: "Sources/FuzzHandshake"),
        // Release-mode crypto and handshake throughput (scripts/bench-wire.sh).
        .executableTarget(name: "wire-bench", dependencies: ["Wire", "Reactor"], path: "Sources/WireBench"),
    ],
    swiftLanguageModes: [.v5]
)
