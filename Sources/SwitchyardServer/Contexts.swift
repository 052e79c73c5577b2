import Crypto
import Foundation
import Hummingbird
import Logging
import SwitchyardAPI
import SwitchyardStore
import Synchronization

/// The context of every request: who is calling, once `AuthenticationMiddleware` knows.
public struct AppRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    public var tenant: Tenant?
    public var isAdmin = false
    /// Who the request turned out to be, for its log line (`RequestLogMiddleware`).
    public var requestNote: RequestNote?

    public init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
    }

    public var maxUploadSize: Int { JSONBody.maxRequestBytes }
    /// Request bodies decode into wire types with the API's refusals (see ``WireRequestDecoder``).
    public var requestDecoder: WireRequestDecoder { WireRequestDecoder() }
}

/// The context of tenant routes: the tenant is always there (401 otherwise).
public struct TenantRequestContext: ChildRequestContext {
    public var coreContext: CoreRequestContextStorage
    public let tenant: Tenant
    /// Who the request turned out to be, for its log line (`RequestLogMiddleware`).
    public let requestNote: RequestNote?

    public init(context: AppRequestContext) throws {
        guard let tenant = context.tenant else { throw APIError.unauthorized }
        self.coreContext = context.coreContext
        self.tenant = tenant
        self.requestNote = context.requestNote
    }

    public var maxUploadSize: Int { JSONBody.maxRequestBytes }
    /// Request bodies decode into wire types with the API's refusals (see ``WireRequestDecoder``).
    public var requestDecoder: WireRequestDecoder { WireRequestDecoder() }
}

/// The context of admin routes: only the admin key gets in.
public struct AdminRequestContext: ChildRequestContext {
    public var coreContext: CoreRequestContextStorage

    public init(context: AppRequestContext) throws {
        guard context.isAdmin else {
            throw context.tenant == nil ? APIError.unauthorized : APIError.forbidden
        }
        self.coreContext = context.coreContext
    }

    public var maxUploadSize: Int { JSONBody.maxRequestBytes }
    /// Request bodies decode into wire types with the API's refusals (see ``WireRequestDecoder``).
    public var requestDecoder: WireRequestDecoder { WireRequestDecoder() }
}

/// Reads `Authorization: Bearer <key>` and records who the caller is: the admin (the
/// key equals the configured admin key) or a tenant (the key's digest is stored). The
/// scheme is matched case-insensitively (`bearer`, `BEARER`), as RFC 9110 §11.1 says.
struct AuthenticationMiddleware: RouterMiddleware {
    typealias Context = AppRequestContext

    let tenants: TenantRepository
    let adminKeyDigest: [UInt8]?

    init(tenants: TenantRepository, adminKey: String?) {
        self.tenants = tenants
        self.adminKeyDigest = adminKey.flatMap { $0.isEmpty ? nil : Array(SHA256.hash(data: Data($0.utf8))) }
    }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var context = context
        if let header = request.headers[.authorization] {
            let scheme = header.prefix { $0 != " " }
            guard scheme.lowercased() == "bearer", scheme.count < header.count else { throw APIError.unauthorized }
            let key = String(header.dropFirst(scheme.count)).trimmingCharacters(in: .whitespaces)
            // Digests are compared, not keys, so the comparison takes the same time
            // however many leading characters match.
            if let adminKeyDigest, Array(SHA256.hash(data: Data(key.utf8))) == adminKeyDigest {
                context.isAdmin = true
            } else if let tenant = try await tenants.authenticate(key: key) {
                context.tenant = tenant
                context.requestNote?.tenant = tenant.id
            } else {
                throw APIError.unauthorized
            }
        }
        return try await next(request, context)
    }
}

/// The methods each route pattern answers, filled once the router is built, so that a
/// known path asked with another method answers 405 with `Allow` instead of 404.
final class RouteMethods: Sendable {
    private let table = Mutex<[(pattern: RouterPath, methods: [String])]>([])

    /// Records the router's routes (`/v1/runs/{id}` → GET).
    func record(_ routes: [(path: RouterPath, method: String)]) {
        var byPattern: [String: (RouterPath, [String])] = [:]
        for route in routes { byPattern[route.path.description, default: (route.path, [])].1.append(route.method) }
        let entries = byPattern.values.map { (pattern: $0.0, methods: $0.1.sorted()) }
        table.withLock { $0 = entries }
    }

    /// The methods of every route whose pattern matches `path`, sorted.
    func allowed(for path: String) -> [String] {
        let segments = path.split(separator: "/")
        let methods = table.withLock { table in
            table.filter { entry in
                entry.pattern.count == segments.count && zip(entry.pattern, segments).allSatisfy { $0 ~= $1 }
            }.flatMap(\.methods)
        }
        return Array(Set(methods)).sorted()
    }
}

/// Refuses request targets that no route may use: a path or query parameter holding the
/// NUL character (`%00`, which PostgreSQL's `text` cannot hold) or percent-encoding that
/// is not UTF-8. Checked once here, so that every route sees clean text.
struct RequestTargetMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard let path = request.uri.path.removingPercentEncoding else {
            throw APIError.badRequest("the path is not valid percent-encoded UTF-8")
        }
        if path.unicodeScalars.contains("\0") {
            throw APIError.badRequest("the path contains the NUL character (%00)")
        }
        for pair in (request.uri.query ?? "").split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let rawName = String(parts[0]).replacingOccurrences(of: "+", with: " ")
            let name = rawName.removingPercentEncoding ?? rawName
            let value = parts.count > 1 ? String(parts[1]).replacingOccurrences(of: "+", with: " ") : ""
            guard let decoded = value.removingPercentEncoding, rawName.removingPercentEncoding != nil else {
                throw APIError.badRequest("query parameter `\(name)` is not valid percent-encoded UTF-8")
            }
            if decoded.unicodeScalars.contains("\0") || name.unicodeScalars.contains("\0") {
                throw APIError.badRequest("query parameter `\(name.replacingOccurrences(of: "\0", with: "%00"))` contains the NUL character (%00)")
            }
        }
        return try await next(request, context)
    }
}

/// Turns Hummingbird's own errors (unknown route, body too large) and unexpected
/// errors into the API's error format, so every error a client sees has one shape.
/// A known path asked with a method it does not answer is 405 with `Allow`.
struct ErrorFormatMiddleware<Context: RequestContext>: RouterMiddleware {
    /// What `Retry-After` says when the database is unavailable.
    static var retryAfterSeconds: Int { 2 }
    var routes = RouteMethods()

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as APIError {
            throw error
        } catch let error as HTTPError where error.status == .notFound {
            let allowed = routes.allowed(for: request.uri.path)
            guard !allowed.isEmpty else { throw APIError(.notFound, code: .notFound, error.body ?? "no route \(request.uri.path)") }
            var refusal = APIError(
                .methodNotAllowed, code: .methodNotAllowed,
                "\(request.method.rawValue) is not allowed on \(request.uri.path); allowed: \(allowed.joined(separator: ", "))")
            refusal.headers = [.allow: allowed.joined(separator: ", ")]
            throw refusal
        } catch let error as HTTPError {
            let code: APIErrorCode
            switch error.status {
            case .notFound: code = .notFound
            case .contentTooLarge: code = .bodyTooLarge
            case .methodNotAllowed: code = .methodNotAllowed
            case .unauthorized: code = .unauthorized
            default: code = error.status.code < 500 ? .badRequest : .internal
            }
            throw APIError(error.status, code: code, error.body ?? error.status.reasonPhrase)
        } catch let error as DatabaseError where error.code == .conflict {
            throw APIError(.conflict, code: .conflict, error.message)
        } catch  where Database.isUnavailable(error) {
            // PostgreSQL is down, restarting, stalled or saturated: the same request may
            // succeed shortly. Whether a write landed before the connection was lost is
            // unknown (a commit may be lost in flight), which is why run creation takes an
            // idempotency key; a run created before the loss is answered, not 503'd.
            context.logger.warning(
                "request failed: the database is unavailable", metadata: ["error": "\(Database.describe(error))", "path": "\(request.uri.path)"])
            var unavailable = APIError(
                .serviceUnavailable, code: .databaseUnavailable, "the database cannot be reached right now; retry after \(Self.retryAfterSeconds) s"
            )
            unavailable.headers = [.retryAfter: String(Self.retryAfterSeconds)]
            throw unavailable
        } catch {
            context.logger.error("request failed", metadata: ["error": "\(Database.describe(error))", "path": "\(request.uri.path)"])
            throw APIError(.internalServerError, code: .internal, "the server failed to answer; the error is in its log")
        }
    }
}
