import Crypto
import Foundation
import Hummingbird
import SwitchyardStore

/// The context of every request: who is calling, once `AuthenticationMiddleware` knows.
public struct AppRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    public var tenant: Tenant?
    public var isAdmin = false

    public init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
    }

    public var maxUploadSize: Int { JSONBody.maxRequestBytes }
}

/// The context of tenant routes: the tenant is always there (401 otherwise).
public struct TenantRequestContext: ChildRequestContext {
    public var coreContext: CoreRequestContextStorage
    public let tenant: Tenant

    public init(context: AppRequestContext) throws {
        guard let tenant = context.tenant else { throw APIError.unauthorized }
        self.coreContext = context.coreContext
        self.tenant = tenant
    }

    public var maxUploadSize: Int { JSONBody.maxRequestBytes }
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
}

/// Reads `Authorization: Bearer <key>` and records who the caller is: the admin (the
/// key equals the configured admin key) or a tenant (the key's digest is stored).
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
            guard header.hasPrefix("Bearer ") else { throw APIError.unauthorized }
            let key = String(header.dropFirst("Bearer ".count)).trimmingCharacters(in: .whitespaces)
            // Digests are compared, not keys, so the comparison takes the same time
            // however many leading characters match.
            if let adminKeyDigest, Array(SHA256.hash(data: Data(key.utf8))) == adminKeyDigest {
                context.isAdmin = true
            } else if let tenant = try await tenants.authenticate(key: key) {
                context.tenant = tenant
            } else {
                throw APIError.unauthorized
            }
        }
        return try await next(request, context)
    }
}

/// Turns Hummingbird's own errors (unknown route, body too large) and unexpected
/// errors into the API's error format, so every error a client sees has one shape.
struct ErrorFormatMiddleware<Context: RequestContext>: RouterMiddleware {
    /// What `Retry-After` says when the database is unavailable.
    static var retryAfterSeconds: Int { 2 }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as APIError {
            throw error
        } catch let error as HTTPError {
            let code: String
            switch error.status {
            case .notFound: code = "not_found"
            case .contentTooLarge: code = "body_too_large"
            case .methodNotAllowed: code = "method_not_allowed"
            case .unauthorized: code = "unauthorized"
            default: code = error.status.code < 500 ? "bad_request" : "internal"
            }
            throw APIError(error.status, code: code, error.body ?? error.status.reasonPhrase)
        } catch let error as DatabaseError where error.code == .conflict {
            throw APIError(.conflict, code: "conflict", error.message)
        } catch where Database.isUnavailable(error) {
            // PostgreSQL is down, restarting, stalled or saturated: the request changed
            // nothing it could not roll back, and the same request may succeed shortly.
            context.logger.warning("request failed: the database is unavailable", metadata: ["error": "\(Database.describe(error))", "path": "\(request.uri.path)"])
            var unavailable = APIError(.serviceUnavailable, code: "database_unavailable", "the database cannot be reached right now; retry after \(Self.retryAfterSeconds) s")
            unavailable.headers = [.retryAfter: String(Self.retryAfterSeconds)]
            throw unavailable
        } catch {
            context.logger.error("request failed", metadata: ["error": "\(Database.describe(error))", "path": "\(request.uri.path)"])
            throw APIError(.internalServerError, code: "internal", "the server failed to answer; the error is in its log")
        }
    }
}
