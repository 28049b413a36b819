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
    ],
    targets: [
        // libev's macros as static inline functions; nothing else.
        .target(name: "CEv", linkerSettings: [cLibrary("ev"), .linkedLibrary("m")]),
        // Linux socket calls hidden behind _GNU_SOURCE, and the CMSG macros.
        .target(name: "CSystem"),
        // The event loop: watchers, syscalls, sockets, buffers. No Foundation.
        .target(name: "Reactor", dependencies: ["CEv", "CSystem"]),
        .executableTarget(name: "reactor-demo", dependencies: ["Reactor"], path: "Sources/ReactorDemo"),
        .executableTarget(name: "reactor-bench", dependencies: ["Reactor"], path: "Sources/ReactorBench"),
        .testTarget(name: "ReactorTests", dependencies: ["Reactor", "CEv"]),
    ],
    swiftLanguageModes: [.v5]
)
