import Foundation
import Hummingbird
import SwitchyardCore
import SwitchyardStore
import SwitchyardTools

// MARK: - Secrets

/// `PUT/GET/DELETE /v1/secrets…`: tenant secrets for tool headers. Values go in and
/// never come out: responses carry names and times only.
struct SecretRoutes {
    let api: APIDependencies
    static let maxValueBytes = 64 * 1024

    func add(to group: RouterGroup<TenantRequestContext>) {
        group.put("secrets/:name") { request, context in
            let name = try Self.name(context)
            let body = try await JSONBody.object(of: request)
            guard let value = body["value"]?.stringValue else {
                throw APIError(.unprocessableContent, code: "invalid_request", "`value` (a string) is required")
            }
            guard value.utf8.count <= Self.maxValueBytes else {
                throw APIError(.unprocessableContent, code: "invalid_request", "a secret value is at most \(Self.maxValueBytes) bytes")
            }
            let box = try Self.box(api)
            let sealed: Data
            do {
                sealed = try box.seal(value, tenant: context.tenant.id, name: name)
            } catch {
                throw APIError(.internalServerError, code: "secrets_unavailable", "the secret could not be sealed: \(error)")
            }
            let created = try await api.secrets.put(tenant: context.tenant.id, name: name, ciphertext: sealed)
            return JSONBody.response(["secret": ["name": .string(name), "created": .bool(created)]], status: created ? .created : .ok)
        }
        group.get("secrets") { _, context in
            let secrets = try await api.secrets.list(tenant: context.tenant.id)
            return JSONBody.response([
                "secrets": .array(secrets.map { ["name": .string($0.name), "updated_at": Render.timestamp($0.updatedAt)] })
            ])
        }
        group.delete("secrets/:name") { _, context in
            let name = try Self.name(context)
            guard try await api.secrets.delete(tenant: context.tenant.id, name: name) else { throw APIError.notFound("secret \(name)") }
            return Response(status: .noContent)
        }
    }

    /// Secret names are what `{{ secrets.NAME }}` can spell: an identifier.
    static func name(_ context: TenantRequestContext) throws -> String {
        let name = context.parameters.get("name") ?? ""
        let valid = (1...64).contains(name.count) && name.first.map { $0.isLetter || $0 == "_" } == true
            && name.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_") }
        guard valid else {
            throw APIError.badRequest("a secret name is 1-64 ASCII letters, digits and _, not starting with a digit (it is read as {{ secrets.NAME }})")
        }
        return name
    }

    static func box(_ api: APIDependencies) throws -> SecretBox {
        guard let box = api.secretBox else {
            throw APIError(
                .serviceUnavailable, code: "secrets_unavailable",
                "this server has no secret key: set \(SecretKey.environmentVariable) (32 random bytes, base64) to store secrets")
        }
        return box
    }
}

// MARK: - Feedback

/// `POST /v1/runs/{id}/steps/{step}/feedback {"good": true|false}`: an explicit
/// verdict on a model step's answer, which the gate learns from.
struct FeedbackRoutes {
    let api: APIDependencies

    func add(to group: RouterGroup<TenantRequestContext>) {
        group.post("runs/:id/steps/:step/feedback") { request, context in
            let id = try RunRoutes.runID(context)
            let step = context.parameters.get("step") ?? ""
            let body = try await JSONBody.object(of: request)
            guard case .bool(let good)? = body["good"] else {
                throw APIError(.unprocessableContent, code: "invalid_request", "`good` (true or false) is required")
            }
            switch try await api.gateHistory.feedback(tenant: context.tenant.id, run: id, step: step, good: good) {
            case .notFound:
                throw APIError.notFound("step \(step) of run \(id.uuidString.lowercased())")
            case .notFinished(let status):
                throw APIError(.conflict, code: "step_not_finished", "step \(step) is \(status); feedback applies to finished model steps")
            case .notAModelStep:
                throw APIError(.unprocessableContent, code: "not_a_model_step", "step \(step) did not call a model, so there is nothing to learn")
            case .recorded(let expert, let learned):
                return JSONBody.response([
                    "feedback": ["run": Render.id(id), "step": .string(step), "good": .bool(good), "expert": .string(expert), "learned": .bool(learned)]
                ])
            }
        }
    }
}

// MARK: - Admin settings

/// Per-tenant settings an operator sets: the gate's threshold and the tenant's
/// egress allow list.
struct TenantSettingsRoutes {
    let api: APIDependencies

    func add(to group: RouterGroup<AdminRequestContext>) {
        group.get("tenants/:tenant") { _, context in
            let id = try Self.tenantID(context)
            guard let tenant = try await api.tenants.tenant(id: id), let settings = try await api.tenants.settings(tenant: id) else {
                throw APIError.notFound("tenant")
            }
            return JSONBody.response(["tenant": ["id": Render.id(tenant.id), "name": .string(tenant.name), "settings": Self.render(settings)]])
        }
        group.put("tenants/:tenant/egress") { request, context in
            let id = try Self.tenantID(context)
            let body = try await JSONBody.object(of: request)
            guard let items = body["allow"]?.arrayValue else {
                throw APIError(.unprocessableContent, code: "invalid_request", "`allow` (a list of host names, IP addresses or CIDRs) is required")
            }
            var allow: [String] = []
            var problems: [JSONValue] = []
            for (index, item) in items.enumerated() {
                guard let text = item.stringValue else {
                    problems.append(["path": .string("allow[\(index)]"), "message": "expected a string"])
                    continue
                }
                do {
                    _ = try EgressPolicy.parseEntry(text)
                    allow.append(text)
                } catch {
                    problems.append(["path": .string("allow[\(index)]"), "message": .string("\(error)")])
                }
            }
            guard problems.isEmpty else {
                throw APIError(.unprocessableContent, code: "invalid_request", "the egress allow list has invalid entries", details: .array(problems))
            }
            return try await update(id) { $0.egressAllow = allow }
        }
        group.put("tenants/:tenant/gate") { request, context in
            let id = try Self.tenantID(context)
            let body = try await JSONBody.object(of: request)
            let threshold: Double?
            switch body["threshold"] {
            case .null?: threshold = nil
            case .int(let n)?: threshold = Double(n)
            case .double(let d)?: threshold = d
            default:
                throw APIError(.unprocessableContent, code: "invalid_request", "`threshold` (a number from -1 to 1, or null for the server default) is required")
            }
            if let threshold, !(-1...1).contains(threshold) {
                throw APIError(.unprocessableContent, code: "invalid_request", "`threshold` must be from -1 to 1 (higher sends fewer steps to pro)")
            }
            return try await update(id) { $0.gateThreshold = threshold }
        }
    }

    /// `PUT /v1/admin/tenants/{id}/limits {"max_running_steps", "runs_per_second", "run_burst"}`:
    /// each a positive number, or null for the server's default.
    func addLimits(to group: RouterGroup<AdminRequestContext>) {
        group.put("tenants/:tenant/limits") { request, context in
            let id = try Self.tenantID(context)
            let body = try await JSONBody.object(of: request)
            func count(_ name: String) throws -> Int?? {
                switch body[name] {
                case nil: return .none
                case .null?: return .some(nil)
                // Stored as a PostgreSQL integer (int4).
                case .int(let n)? where (1...Int(Int32.max)).contains(n): return .some(n)
                default:
                    throw APIError(
                        .unprocessableContent, code: "invalid_request",
                        "\(name) must be a whole number from 1 to \(Int32.max), or null for the server's default",
                        details: [["path": .string(name), "message": .string("expected a whole number from 1 to \(Int32.max), or null")]])
                }
            }
            let steps = try count("max_running_steps"), burst = try count("run_burst")
            var rate: Double??
            switch body["runs_per_second"] {
            case nil: rate = .none
            case .null?: rate = .some(nil)
            case .int(let n)? where n > 0: rate = .some(Double(n))
            case .double(let d)? where d > 0 && d.isFinite: rate = .some(d)
            default: throw APIError(.unprocessableContent, code: "invalid_request", "runs_per_second must be a positive number, or null for the server's default")
            }
            return try await update(id) { settings in
                if let steps { settings.maxRunningSteps = steps }
                if let burst { settings.runBurst = burst }
                if let rate { settings.runsPerSecond = rate }
            }
        }
    }

    private func update(_ id: UUID, _ change: (inout TenantSettings) -> Void) async throws -> Response {
        guard var settings = try await api.tenants.settings(tenant: id) else { throw APIError.notFound("tenant") }
        change(&settings)
        guard try await api.tenants.updateSettings(tenant: id, settings) else { throw APIError.notFound("tenant") }
        return JSONBody.response(["settings": Self.render(settings)])
    }

    static func tenantID(_ context: AdminRequestContext) throws -> UUID {
        guard let id = UUID(uuidString: context.parameters.get("tenant") ?? "") else { throw APIError.notFound("tenant") }
        return id
    }

    static func render(_ settings: TenantSettings) -> JSONValue {
        [
            "gate_threshold": settings.gateThreshold.map(JSONValue.double) ?? .null,
            "egress_allow": .array(settings.egressAllow.map(JSONValue.string)),
            "max_running_steps": settings.maxRunningSteps.map(JSONValue.int) ?? .null,
            "runs_per_second": settings.runsPerSecond.map(JSONValue.double) ?? .null,
            "run_burst": settings.runBurst.map(JSONValue.int) ?? .null,
        ]
    }
}
