// swift-tools-version:6.1
import PackageDescription

/// Settings shared by every target: Swift 6 language mode is the package default;
/// `ExistentialAny` makes every existential spelled `any P`, as Hummingbird and PostgresNIO do;
/// `MemberImportVisibility` makes each file import the modules whose members it uses, so that
/// a file's imports (and each target's dependencies below) say what it really depends on.
let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
]

/// The local inference kernels are optimised in every configuration: `swift test` builds
/// debug, and an unoptimised forward pass is ~100× slower (minutes per golden test). On
/// x86-64 they target Haswell-class CPUs (AVX2, FMA, F16C), which every machine this
/// project runs on has; LLVM's loop vectorizer needs that to emit 256-bit integer dot products.
var localInferenceSettings: [SwiftSetting] = swiftSettings + [.unsafeFlags(["-O"])]
#if arch(x86_64)
localInferenceSettings.append(.unsafeFlags(["-target-cpu", "haswell"]))
#endif

/// The AVX-512 + VNNI kernels, compiled for Ice Lake-class CPUs and only ever called after
/// `LocalInference` has checked the CPU's flags (see Sources/LocalInferenceAVX512).
var localInferenceAVX512Settings: [SwiftSetting] = swiftSettings + [.unsafeFlags(["-O"])]
#if arch(x86_64)
localInferenceAVX512Settings.append(.unsafeFlags(["-target-cpu", "icelake-client"]))
#endif

let package = Package(
    name: "switchyard",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "yard", targets: ["yard"])
    ],
    dependencies: [
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/vapor/postgres-nio.git", from: "1.33.2"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.2"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "3.12.3"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-distributed-tracing.git", from: "1.7.3"),
        // OTLP/HTTP only: the gRPC exporter (and grpc-swift with it) is not built.
        .package(url: "https://github.com/swift-otel/swift-otel.git", from: "1.6.0", traits: ["OTLPHTTP"]),
    ],
    targets: [
        .target(
            name: "SwitchyardCore",
            dependencies: [.product(name: "Yams", package: "Yams")],
            swiftSettings: swiftSettings
        ),
        // The HTTP API's request and response bodies, shared by the server and `yard`.
        .target(
            name: "SwitchyardAPI",
            dependencies: ["SwitchyardCore"],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "SwitchyardMetering",
            dependencies: ["SwitchyardCore", .product(name: "Yams", package: "Yams")],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "SwitchyardGate",
            dependencies: ["SwitchyardCore"],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "SwitchyardStore",
            dependencies: [
                "SwitchyardCore",
                "SwitchyardGate",
                "SwitchyardMetering",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "SwitchyardExperts",
            dependencies: [
                "SwitchyardCore",
                "LocalInference",
                .product(name: "Yams", package: "Yams"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "SwitchyardTools",
            dependencies: [
                "SwitchyardCore",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        // Metric handles, span helpers and the JSON log format, shared by the engine and the
        // server; it depends on no Switchyard module, so instrumentation points one way.
        .target(
            name: "SwitchyardObservability",
            dependencies: [
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
                .product(name: "OTel", package: "swift-otel"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "SwitchyardEngine",
            dependencies: [
                "SwitchyardCore",
                "SwitchyardStore",
                "SwitchyardExperts",
                "SwitchyardGate",
                "SwitchyardTools",
                "SwitchyardMetering",
                "SwitchyardObservability",
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "SwitchyardServer",
            dependencies: [
                "SwitchyardAPI",
                "SwitchyardCore",
                "SwitchyardStore",
                "SwitchyardEngine",
                "SwitchyardExperts",
                "SwitchyardGate",
                "SwitchyardTools",
                "SwitchyardMetering",
                "SwitchyardObservability",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Yams", package: "Yams"),
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        // The in-process GGUF engine: no package dependencies, so it builds and tests alone.
        .target(
            name: "LocalInference",
            dependencies: ["LocalInferenceAVX512"],
            swiftSettings: localInferenceSettings
        ),
        .target(
            name: "LocalInferenceAVX512",
            swiftSettings: localInferenceAVX512Settings
        ),
        .executableTarget(
            name: "yard",
            dependencies: [
                "SwitchyardAPI",
                "SwitchyardCore",
                "SwitchyardStore",
                "SwitchyardEngine",
                "SwitchyardServer",
                "SwitchyardGate",
                "SwitchyardTools",
                "SwitchyardMetering",
                "LocalInference",
                "SwitchyardExperts",
                "SwitchyardObservability",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOFoundationCompat", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "LocalInferenceTests",
            dependencies: ["LocalInference"],
            exclude: ["Fixtures"],
            swiftSettings: swiftSettings
        ),
        .testTarget(name: "SwitchyardCoreTests", dependencies: ["SwitchyardCore"], swiftSettings: swiftSettings),
        .testTarget(name: "SwitchyardMeteringTests", dependencies: ["SwitchyardMetering"], swiftSettings: swiftSettings),
        .testTarget(name: "SwitchyardGateTests", dependencies: ["SwitchyardGate", "SwitchyardCore"], swiftSettings: swiftSettings),
        .testTarget(
            name: "SwitchyardToolsTests",
            dependencies: [
                "SwitchyardTools", "SwitchyardCore",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "SwitchyardTests",
            dependencies: [
                "SwitchyardAPI", "SwitchyardCore", "SwitchyardStore", "SwitchyardEngine", "SwitchyardExperts", "SwitchyardServer", "SwitchyardGate",
                "SwitchyardTools", "SwitchyardObservability", "yard",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOFoundationCompat", package: "swift-nio"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
                .product(name: "Hummingbird", package: "hummingbird"),
            ],
            swiftSettings: swiftSettings
        ),
    ]
)
