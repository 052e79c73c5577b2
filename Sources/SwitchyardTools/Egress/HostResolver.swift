import Dispatch
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Turns a host name into addresses, so that the egress check judges the addresses
/// the call will really use. A protocol so that tests can answer `kb.test → 10.0.0.1`
/// without DNS.
public protocol HostResolver: Sendable {
    /// All addresses of `host` (a name, never an address literal), in preference order.
    func resolve(host: String) async throws(ResolutionError) -> [IPAddress]
}

/// Why a name could not be resolved.
public struct ResolutionError: Error, Sendable, Hashable, CustomStringConvertible {
    public var message: String
    public var timedOut: Bool

    public init(_ message: String, timedOut: Bool = false) {
        self.message = message
        self.timedOut = timedOut
    }

    public var description: String { message }
}

/// The system resolver (`getaddrinfo`, so `/etc/hosts` and the system's DNS
/// configuration apply), with a timeout.
///
/// Why not on the caller's task: `getaddrinfo` blocks its thread for as long as DNS
/// takes, and blocking a thread of Swift's cooperative pool (two threads on a
/// two-core machine) would stall every task in the process. The lookup runs on a
/// Dispatch global queue (as SwiftNIO's own getaddrinfo resolver does); the caller
/// awaits it and gives up after `timeout`. A lookup that outlives its timeout keeps
/// its Dispatch thread until the C library returns, which is bounded by the system
/// resolver's own timeouts.
public struct SystemResolver: HostResolver {
    public var timeout: Duration

    public init(timeout: Duration = .seconds(5)) {
        self.timeout = timeout
    }

    public func resolve(host: String) async throws(ResolutionError) -> [IPAddress] {
        let once = Once()
        let timeout = timeout
        let result: Result<[IPAddress], ResolutionError> = await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Result<[IPAddress], ResolutionError>, Never>) in
                once.install(continuation)
                DispatchQueue.global().async {
                    once.resume(Self.getaddrinfo(host))
                }
                let (seconds, attoseconds) = timeout.components
                let nanoseconds = Int(clamping: seconds) &* 1_000_000_000 &+ Int(attoseconds / 1_000_000_000)
                DispatchQueue.global().asyncAfter(deadline: .now() + .nanoseconds(max(0, nanoseconds))) {
                    once.resume(.failure(ResolutionError("resolving \(host) took longer than \(timeout)", timedOut: true)))
                }
            }
        } onCancel: {
            once.resume(.failure(ResolutionError("resolving \(host) was cancelled")))
        }
        return try result.get()
    }

    /// Resumes a continuation exactly once, whichever of lookup, timeout or
    /// cancellation comes first; a result that arrives before the continuation is
    /// installed (cancellation before start) is kept and delivered on install.
    private final class Once: Sendable {
        private struct State {
            var continuation: CheckedContinuation<Result<[IPAddress], ResolutionError>, Never>?
            var early: Result<[IPAddress], ResolutionError>?
            var done = false
        }
        private let state = Mutex(State())

        func install(_ continuation: CheckedContinuation<Result<[IPAddress], ResolutionError>, Never>) {
            let early = state.withLock { state -> Result<[IPAddress], ResolutionError>? in
                if let early = state.early {
                    state.early = nil
                    return early
                }
                state.continuation = continuation
                return nil
            }
            if let early { continuation.resume(returning: early) }
        }

        func resume(_ result: Result<[IPAddress], ResolutionError>) {
            let continuation = state.withLock { state -> CheckedContinuation<Result<[IPAddress], ResolutionError>, Never>? in
                guard !state.done else { return nil }
                state.done = true
                guard let c = state.continuation else {
                    state.early = result
                    return nil
                }
                state.continuation = nil
                return c
            }
            continuation?.resume(returning: result)
        }
    }

    static func getaddrinfo(_ host: String) -> Result<[IPAddress], ResolutionError> {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        #if canImport(Glibc) || canImport(Musl)
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        #else
        hints.ai_socktype = SOCK_STREAM
        #endif
        var list: UnsafeMutablePointer<addrinfo>?
        let status = host.withCString { name in
            #if canImport(Glibc)
            Glibc.getaddrinfo(name, nil, &hints, &list)
            #elseif canImport(Musl)
            Musl.getaddrinfo(name, nil, &hints, &list)
            #else
            Darwin.getaddrinfo(name, nil, &hints, &list)
            #endif
        }
        guard status == 0 else {
            let reason = gai_strerror(status).map { String(cString: $0) } ?? "error \(status)"
            return .failure(ResolutionError("cannot resolve \(host): \(reason)"))
        }
        defer { freeaddrinfo(list) }
        var addresses: [IPAddress] = []
        var node = list
        while let info = node?.pointee {
            if let sockaddr = info.ai_addr, let address = Self.address(of: sockaddr, family: info.ai_family), !addresses.contains(address) {
                addresses.append(address)
            }
            node = info.ai_next
        }
        return .success(addresses)
    }

    private static func address(of sockaddr: UnsafeMutablePointer<sockaddr>, family: Int32) -> IPAddress? {
        switch family {
        case AF_INET:
            return sockaddr.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { .v4(UInt32(bigEndian: $0.pointee.sin_addr.s_addr)) }
        case AF_INET6:
            return sockaddr.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { pointer in
                var value: UInt128 = 0
                withUnsafeBytes(of: pointer.pointee.sin6_addr) { bytes in
                    for byte in bytes { value = value << 8 | UInt128(byte) }
                }
                return .v6(value)
            }
        default:
            return nil
        }
    }
}

/// A resolver with fixed answers, for tests and for pinning names in configuration.
/// Names are matched case-insensitively; an unknown name fails to resolve.
public struct StaticResolver: HostResolver {
    public var answers: [String: [IPAddress]]

    public init(_ answers: [String: [IPAddress]]) {
        self.answers = Dictionary(answers.map { (EgressPolicy.normalizedHost($0.key), $0.value) }, uniquingKeysWith: +)
    }

    public func resolve(host: String) async throws(ResolutionError) -> [IPAddress] {
        guard let found = answers[EgressPolicy.normalizedHost(host)] else {
            throw ResolutionError("cannot resolve \(host): unknown name")
        }
        return found
    }
}
