import Foundation
import Logging

/// A private PostgreSQL cluster run from the system's PostgreSQL binaries, so that
/// `yard serve`, `yard demo` and the test suite need nothing started by hand.
///
/// The cluster lives in `dataDirectory` (created with `initdb` on first use and reused
/// after), listens on loopback TCP only, and requires a password that is generated at
/// `initdb` time and kept in the data directory. PostgreSQL refuses to run as root, so
/// when this process is root the server runs as the `postgres` user.
public struct EmbeddedPostgres: Sendable {
    /// The directory holding the cluster (PGDATA).
    public var dataDirectory: String
    /// The port to listen on; `nil` picks a free loopback port on first start and keeps it.
    public var port: Int?
    /// The database created for Switchyard inside the cluster.
    public var database: String
    /// The server's `max_connections`.
    public var maxConnections: Int
    public var logger: Logger

    public init(
        dataDirectory: String, port: Int? = nil, database: String = "switchyard", maxConnections: Int = 200,
        logger: Logger = Logger(label: "switchyard.postgres")
    ) {
        self.dataDirectory = dataDirectory
        self.port = port
        self.database = database
        self.maxConnections = maxConnections
        self.logger = logger
    }

    /// The data directory used when none is given: under the user's state directory,
    /// or, for root, under `/var/lib/switchyard` because the `postgres` user cannot
    /// traverse root's home directory.
    public static func defaultDataDirectory() -> String {
        let env = ProcessInfo.processInfo.environment
        if getuid() == 0 {
            return "/var/lib/switchyard/postgres"
        }
        if let state = env["XDG_STATE_HOME"], !state.isEmpty {
            return state + "/switchyard/postgres"
        }
        return (env["HOME"] ?? NSTemporaryDirectory()) + "/.local/state/switchyard/postgres"
    }

    /// A handle on a started cluster. `stop()` stops the server only if this handle
    /// started it; a server that was already running is left alone.
    public struct Running: Sendable {
        public var configuration: DatabaseConfiguration
        public var dataDirectory: String
        public var startedHere: Bool
        let binaries: Binaries

        /// Stops the server (fast shutdown: active sessions are disconnected).
        public func stop() {
            guard startedHere else { return }
            _ = try? binaries.run(binaries.pgCtl, ["-D", dataDirectory, "-m", "fast", "-w", "stop"], asPostgresUser: binaries.asPostgresUser)
        }

        /// How `pg_ctl` stops the server: `fast` disconnects sessions and shuts down
        /// cleanly; `immediate` aborts every process, as a crash would, and the server
        /// recovers from its WAL on the next start.
        public enum ShutdownMode: String, Sendable {
            case smart, fast, immediate
        }

        /// Restarts the server with the options it was started with, waiting until it
        /// accepts connections again. For operators and fault tests.
        public func restart(_ mode: ShutdownMode) throws(EmbeddedPostgresError) {
            try binaries.run(
                binaries.pgCtl, ["-D", dataDirectory, "-l", dataDirectory + "/server.log", "-m", mode.rawValue, "-w", "-t", "60", "restart"],
                asPostgresUser: binaries.asPostgresUser)
        }

        /// The server's processes: the postmaster and every process it started
        /// (backends, background workers), read from `/proc`.
        public func processIDs() -> [pid_t] {
            guard let text = try? String(contentsOfFile: dataDirectory + "/postmaster.pid", encoding: .utf8),
                let first = text.split(separator: "\n").first, let postmaster = pid_t(first)
            else { return [] }
            var result = [postmaster]
            for entry in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] {
                guard let pid = pid_t(entry), let stat = try? String(contentsOfFile: "/proc/\(entry)/stat", encoding: .utf8),
                    let close = stat.lastIndex(of: ")")
                else { continue }
                // After "pid (name) state" comes the parent's pid.
                let fields = stat[stat.index(after: close)...].split(separator: " ")
                if fields.count > 1, pid_t(fields[1]) == postmaster { result.append(pid) }
            }
            return result
        }

        /// Sends `signal` to every process of the server: SIGSTOP stalls it (open
        /// connections stay up but nothing answers), SIGCONT resumes it.
        ///
        /// The postmaster is signalled first and its children listed after, twice: a
        /// backend forked while the list was being read would otherwise be missed and
        /// keep answering through a "stall".
        public func signalAll(_ signal: Int32) {
            var signalled = Set<pid_t>()
            for _ in 0..<2 {
                for pid in processIDs() where !signalled.contains(pid) {
                    kill(pid, signal)
                    signalled.insert(pid)
                }
            }
        }
    }

    /// Initializes the cluster if needed, starts it unless it is already running,
    /// waits until it accepts connections, and creates the Switchyard database.
    public func start() throws(EmbeddedPostgresError) -> Running {
        let binaries = try Binaries.locate()
        let fm = FileManager.default
        let passwordFile = dataDirectory + "/switchyard.password"
        let portFile = dataDirectory + "/switchyard.port"

        if !fm.fileExists(atPath: dataDirectory + "/PG_VERSION") {
            try initialize(binaries: binaries, passwordFile: passwordFile)
        }
        guard let password = try? String(contentsOfFile: passwordFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines) else {
            throw EmbeddedPostgresError(
                "cannot read \(passwordFile): the cluster in \(dataDirectory) was not created by Switchyard; point --data-dir elsewhere or set DATABASE_URL"
            )
        }

        var startedHere = false
        let chosenPort: Int
        if let running = Self.runningPort(dataDirectory: dataDirectory) {
            chosenPort = running
            logger.info("reusing the PostgreSQL server already running", metadata: ["data_dir": "\(dataDirectory)", "port": "\(running)"])
        } else {
            if let port {
                chosenPort = port
            } else if let text = try? String(contentsOfFile: portFile, encoding: .utf8),
                let saved = Int(text.trimmingCharacters(in: .whitespacesAndNewlines)), Self.isPortFree(saved)
            {
                chosenPort = saved
            } else {
                chosenPort = try Self.freePort()
            }
            try? String(chosenPort).write(toFile: portFile, atomically: true, encoding: .utf8)
            let options =
                "-c listen_addresses=127.0.0.1 -p \(chosenPort) -c unix_socket_directories= -c fsync=on -c max_connections=\(maxConnections)"
            do {
                try binaries.run(
                    binaries.pgCtl,
                    ["-D", dataDirectory, "-l", dataDirectory + "/server.log", "-o", options, "-w", "-t", "60", "start"],
                    asPostgresUser: binaries.asPostgresUser)
            } catch {
                let log =
                    (try? String(contentsOfFile: dataDirectory + "/server.log", encoding: .utf8))?.split(separator: "\n").suffix(5).joined(
                        separator: "\n") ?? ""
                throw EmbeddedPostgresError("PostgreSQL did not start (\(error.message)); last lines of \(dataDirectory)/server.log:\n\(log)")
            }
            startedHere = true
            logger.info("started PostgreSQL", metadata: ["data_dir": "\(dataDirectory)", "port": "\(chosenPort)"])
        }

        let configuration = DatabaseConfiguration(host: "127.0.0.1", port: chosenPort, username: "switchyard", password: password, database: database)
        let running = Running(configuration: configuration, dataDirectory: dataDirectory, startedHere: startedHere, binaries: binaries)
        do {
            try binaries.createDatabaseIfMissing(configuration)
        } catch {
            running.stop()
            throw error
        }
        return running
    }

    private func initialize(binaries: Binaries, passwordFile: String) throws(EmbeddedPostgresError) {
        let fm = FileManager.default
        do {
            try fm.createDirectory(
                atPath: (dataDirectory as NSString).deletingLastPathComponent, withIntermediateDirectories: true,
                attributes: [.posixPermissions: 0o755])
            try fm.createDirectory(atPath: dataDirectory, withIntermediateDirectories: false, attributes: [.posixPermissions: 0o700])
        } catch {
            throw EmbeddedPostgresError("cannot create the data directory \(dataDirectory): \(error.localizedDescription)")
        }
        let password = Self.randomPassword()
        // The password file sits outside PGDATA while initdb runs (initdb wants an empty directory).
        let tempPasswordFile = NSTemporaryDirectory() + "switchyard-pw-\(UUID().uuidString)"
        guard fm.createFile(atPath: tempPasswordFile, contents: Data(password.utf8), attributes: [.posixPermissions: 0o644]) else {
            throw EmbeddedPostgresError("cannot write a temporary password file in \(NSTemporaryDirectory())")
        }
        defer { try? fm.removeItem(atPath: tempPasswordFile) }
        if binaries.asPostgresUser {
            try binaries.chownToPostgres(dataDirectory)
        }
        do {
            try binaries.run(
                binaries.initdb,
                [
                    "-D", dataDirectory, "--username=switchyard", "--pwfile=\(tempPasswordFile)", "--auth=scram-sha-256", "--encoding=UTF8",
                    "--locale=C", "--no-instructions",
                ],
                asPostgresUser: binaries.asPostgresUser)
        } catch {
            throw EmbeddedPostgresError("initdb failed in \(dataDirectory): \(error.message)")
        }
        guard fm.createFile(atPath: passwordFile, contents: Data(password.utf8), attributes: [.posixPermissions: 0o600]) else {
            throw EmbeddedPostgresError("cannot write \(passwordFile)")
        }
        logger.info("created a PostgreSQL cluster", metadata: ["data_dir": "\(dataDirectory)"])
    }

    /// The port of a server already running on `dataDirectory`, read from its
    /// `postmaster.pid` when that process is alive.
    static func runningPort(dataDirectory: String) -> Int? {
        guard let text = try? String(contentsOfFile: dataDirectory + "/postmaster.pid", encoding: .utf8) else { return nil }
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        guard lines.count > 3, let pid = Int32(lines[0]), let port = Int(lines[3]) else { return nil }
        guard kill(pid, 0) == 0 || errno == EPERM else { return nil }
        return port
    }

    static func isPortFree(_ port: Int) -> Bool {
        (try? bindLoopback(port: port)) != nil
    }

    /// A loopback port nobody listens on now (the kernel picks one; it is closed again at once).
    static func freePort() throws(EmbeddedPostgresError) -> Int {
        do {
            return try bindLoopback(port: 0)
        } catch {
            throw EmbeddedPostgresError("cannot find a free loopback port: \(error)")
        }
    }

    private static func bindLoopback(port: Int) throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw POSIXError(.EMFILE) }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0 else { throw POSIXError(.EADDRINUSE) }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    static func randomPassword() -> String {
        var generator = SystemRandomNumberGenerator()
        let alphabet = Array("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
        return String((0..<32).map { _ in alphabet[Int(generator.next(upperBound: UInt64(alphabet.count)))] })
    }
}

/// A failure to set up or start the embedded PostgreSQL server, with a message that
/// says what to do about it.
public struct EmbeddedPostgresError: Error, CustomStringConvertible, Sendable {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// The PostgreSQL server programs, found on PATH or in Debian's versioned directories.
struct Binaries: Sendable {
    var initdb: String
    var pgCtl: String
    var psql: String?
    var asPostgresUser: Bool

    static func locate() throws(EmbeddedPostgresError) -> Binaries {
        let fm = FileManager.default
        var directories = (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin").split(separator: ":").map(String.init)
        if let versions = try? fm.contentsOfDirectory(atPath: "/usr/lib/postgresql") {
            directories += versions.sorted(by: { (Int($0) ?? 0) > (Int($1) ?? 0) }).map { "/usr/lib/postgresql/\($0)/bin" }
        }
        func find(_ name: String) -> String? {
            directories.map { $0 + "/" + name }.first { fm.isExecutableFile(atPath: $0) }
        }
        guard let initdb = find("initdb"), let pgCtl = find("pg_ctl") else {
            throw EmbeddedPostgresError(
                "PostgreSQL server programs (initdb, pg_ctl) not found: install PostgreSQL 15 (`apt-get install postgresql-15`) or set DATABASE_URL to an existing server"
            )
        }
        return Binaries(initdb: initdb, pgCtl: pgCtl, psql: find("psql"), asPostgresUser: getuid() == 0)
    }

    /// Runs a program to completion, as the `postgres` user when asked, and returns its output.
    ///
    /// This uses `posix_spawn` and `waitpid` rather than Foundation's `Process`:
    /// `pg_ctl start` leaves the server running as a daemon, and `Process` on Linux
    /// detects exit through a descriptor the daemon would inherit and hold open, so
    /// `waitUntilExit` would never return. Here the child gets only stdin, stdout and
    /// stderr, and exit is detected by `waitpid`.
    @discardableResult
    func run(
        _ program: String, _ arguments: [String], asPostgresUser: Bool, environment: [String: String] = [:]
    ) throws(EmbeddedPostgresError) -> String {
        let executable = asPostgresUser ? "/usr/sbin/runuser" : program
        let argv = (asPostgresUser ? ["runuser", "-u", "postgres", "--", program] : [program]) + arguments
        var env = ProcessInfo.processInfo.environment
        env["LC_ALL"] = "C"
        for (key, value) in environment { env[key] = value }
        let outputPath = NSTemporaryDirectory() + "switchyard-cmd-\(UUID().uuidString).log"
        defer { try? FileManager.default.removeItem(atPath: outputPath) }

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, outputPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)

        let cArguments = argv.map { strdup($0) } + [nil]
        let cEnvironment = env.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            for pointer in cArguments { free(pointer) }
            for pointer in cEnvironment { free(pointer) }
        }
        var pid = pid_t()
        let spawned = posix_spawn(&pid, executable, &actions, nil, cArguments, cEnvironment)
        guard spawned == 0 else {
            throw EmbeddedPostgresError("cannot run \(executable): \(String(cString: strerror(spawned)))")
        }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
        let text = (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? ""
        // WIFEXITED and WEXITSTATUS are macros Swift cannot import.
        let exited = status & 0x7f == 0
        let exitStatus = (status >> 8) & 0xff
        guard exited && exitStatus == 0 else {
            let name = (program as NSString).lastPathComponent
            let how = exited ? "exited with status \(exitStatus)" : "was killed by signal \(status & 0x7f)"
            throw EmbeddedPostgresError("\(name) \(how): \(text.trimmingCharacters(in: .whitespacesAndNewlines))")
        }
        return text
    }

    func chownToPostgres(_ path: String) throws(EmbeddedPostgresError) {
        try run("/bin/chown", ["-R", "postgres:postgres", path], asPostgresUser: false)
        // Every parent must be traversable by `postgres`.
        var parent = (path as NSString).deletingLastPathComponent
        while parent != "/" && !parent.isEmpty {
            if access(parent, X_OK) == 0, let attributes = try? FileManager.default.attributesOfItem(atPath: parent),
                let permissions = attributes[.posixPermissions] as? Int, permissions & 0o001 == 0
            {
                throw EmbeddedPostgresError(
                    "the postgres user cannot reach \(path) because \(parent) is not world-traversable; choose a --data-dir outside it (for example under /var/lib or /tmp)"
                )
            }
            parent = (parent as NSString).deletingLastPathComponent
        }
    }

    /// Creates the database with psql (the server must be up).
    func createDatabaseIfMissing(_ configuration: DatabaseConfiguration) throws(EmbeddedPostgresError) {
        guard let psql else {
            throw EmbeddedPostgresError("psql not found: install the PostgreSQL client (`apt-get install postgresql-client-15`)")
        }
        let environment = ["PGPASSWORD": configuration.password ?? ""]
        let base = [
            "-h", configuration.host, "-p", String(configuration.port), "-U", configuration.username, "-d", "postgres", "-v", "ON_ERROR_STOP=1",
            "-tAc",
        ]
        let exists = try run(
            psql, base + ["SELECT 1 FROM pg_database WHERE datname = '\(configuration.database)'"], asPostgresUser: false, environment: environment)
        if exists.trimmingCharacters(in: .whitespacesAndNewlines) != "1" {
            try run(psql, base + ["CREATE DATABASE \"\(configuration.database)\""], asPostgresUser: false, environment: environment)
        }
    }
}
