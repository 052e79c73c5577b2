import Foundation
import Synchronization
import Testing

#if canImport(Glibc)
@preconcurrency import Glibc
#endif

/// An event-stream client on a raw socket, so a test decides exactly when it hangs up
/// (closing the socket, as a browser tab or a killed `curl` does) and reads the stream
/// as it arrives.
final class RawEventStream: Sendable {
    private let descriptor: Int32
    private let received = Mutex("")
    private let closed = Mutex(false)

    /// Connects, sends `GET path` with the bearer key, and starts reading on a thread of
    /// its own.
    init(port: Int, path: String, key: String) throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw TestFailure("socket() failed") }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else {
            close(fd)
            throw TestFailure("cannot connect to 127.0.0.1:\(port)")
        }
        descriptor = fd
        let request = "GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer \(key)\r\nAccept: text/event-stream\r\n\r\n"
        _ = request.withCString { send(fd, $0, strlen($0), Int32(MSG_NOSIGNAL)) }
        let thread = Thread { [self] in readLoop() }
        thread.start()
    }

    private func readLoop() {
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = recv(descriptor, &buffer, buffer.count, 0)
            if count <= 0 { break }
            let text = String(decoding: buffer[0..<count], as: UTF8.self)
            received.withLock { $0 += text }
        }
        closed.withLock { $0 = true }
    }

    /// Everything read so far (status line and headers included).
    var text: String { received.withLock { $0 } }

    /// Whether the server ended the stream: the chunked body's last chunk, or the
    /// connection closed.
    var isEnded: Bool { closed.withLock { $0 } || text.hasSuffix("\r\n0\r\n\r\n") }

    /// Waits until `predicate` holds for the text read so far.
    func wait(for what: String, timeout: Duration, _ predicate: (String) -> Bool) async throws {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if predicate(text) { return }
            try await Task.sleep(for: .milliseconds(10))
        }
        throw TestFailure("no \(what) within \(timeout); read: \(text.suffix(600))")
    }

    /// Hangs up without a word.
    func hangUp() {
        shutdown(descriptor, Int32(SHUT_RDWR))
        close(descriptor)
    }
}
