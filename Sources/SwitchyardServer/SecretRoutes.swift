import Foundation
import Hummingbird
import SwitchyardAPI
import SwitchyardCore
import SwitchyardStore
import SwitchyardTools

/// `PUT/GET/DELETE /v1/secrets…`: tenant secrets for tool headers. Values go in and
/// never come out: responses carry names and times only.
struct SecretRoutes {
    let api: APIDependencies
    static let maxValueBytes = 64 * 1024

    func add(to group: RouterGroup<TenantRequestContext>) {
        group.put("secrets/:name") { request, context in
            let name = try Self.name(context)
            let value = try await request.decode(as: APIPutSecretRequest.self, context: context).value
            guard value.utf8.count <= Self.maxValueBytes else {
                throw APIError(.unprocessableContent, code: .invalidRequest, "a secret value is at most \(Self.maxValueBytes) bytes")
            }
            let box = try Self.box(api)
            let sealed: Data
            do {
                sealed = try box.seal(value, tenant: context.tenant.id, name: name)
            } catch {
                throw APIError(.internalServerError, code: .secretsUnavailable, "the secret could not be sealed: \(error)")
            }
            let created = try await api.secrets.put(tenant: context.tenant.id, name: name, ciphertext: sealed)
            return try JSONBody.reply(APISecretPutResult(secret: .init(name: name, created: created)), status: created ? .created : .ok)
        }
        group.get("secrets") { _, context in
            let secrets = try await api.secrets.list(tenant: context.tenant.id)
            return try JSONBody.reply(
                APISecretList(secrets: secrets.map { APISecretSummary(name: $0.name, updatedAt: Render.timestamp($0.updatedAt)) }))
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
        let valid =
            (1...64).contains(name.count) && name.first.map { $0.isLetter || $0 == "_" } == true
            && name.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_") }
        guard valid else {
            throw APIError.badRequest(
                "a secret name is 1-64 ASCII letters, digits and _, not starting with a digit (it is read as {{ secrets.NAME }})")
        }
        return name
    }

    static func box(_ api: APIDependencies) throws -> SecretBox {
        guard let box = api.secretBox else {
            throw APIError(
                .serviceUnavailable, code: .secretsUnavailable,
                "this server has no secret key: set \(SecretKey.environmentVariable) (32 random bytes, base64) to store secrets")
        }
        return box
    }
}
