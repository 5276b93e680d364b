// swift-tools-version:5.9
// The Tessera signer for Swift. `bindings/run.sh` generates the UniFFI
// bindings into Sources/Tessera/Tessera.swift and Sources/TesseraFFI/include
// (not committed) and runs `swift test` against the host-built
// libtessera_ffi. For iOS, ship the library as an xcframework: see README.md.
import PackageDescription

let package = Package(
    name: "Tessera",
    platforms: [.iOS(.v13), .macOS(.v11)],
    products: [
        .library(name: "Tessera", targets: ["Tessera"]),
    ],
    targets: [
        // The C header and module map of the Rust library (generated).
        .target(name: "TesseraFFI", path: "Sources/TesseraFFI"),
        .target(
            name: "Tessera",
            dependencies: ["TesseraFFI"],
            path: "Sources/Tessera",
            linkerSettings: [.linkedLibrary("tessera_ffi")]
        ),
        .testTarget(name: "TesseraTests", dependencies: ["Tessera"], path: "Tests/TesseraTests"),
    ]
)
