import Foundation
import Hummingbird
import SwitchyardAPI
import SwitchyardCore
import SwitchyardStore
import SwitchyardTools

/// `POST /v1/apply` and the stored resources: workflows, agents and tools.
struct ResourceRoutes {
    let api: APIDependencies

    func add(to group: RouterGroup<TenantRequestContext>) {
        group.post("apply") { request, context in
            let text = try await JSONBody.text(of: request)
            let files = try Self.files(in: text, request: request)
            let catalog = try await api.resources.catalog(tenant: context.tenant.id)
            let loader = api.loader
            let loaded = try await Self.parse(api.yamlParsing) {
                Result { () throws(ResourceValidationError) in try loader.loadAndValidate(files: files, catalog: catalog) }
            }
            let documents: [ResourceDocument]
            do throws(ResourceValidationError) {
                documents = try loaded.get()
            } catch {
                throw APIError(
                    .unprocessableContent, code: error.code == .invalidYAML ? .invalidYAML : .invalidResource, error.message,
                    details: error.issues.map(Render.issue))
            }
            let applied = try await api.resources.apply(documents, tenant: context.tenant.id)
            return try JSONBody.reply(
                APIApplyResult(
                    applied: applied.map {
                        APIAppliedResource(kind: $0.kind.rawValue, name: $0.name, version: $0.version, changed: $0.changed)
                    }))
        }
        group.get("workflows") { _, context in
            let versions = try await api.resources.latest(kind: .workflow, tenant: context.tenant.id)
            return try JSONBody.reply(APIWorkflowList(workflows: versions.map(Render.workflowSummary)))
        }
        group.get("workflows/:name") { request, context in
            let name = context.parameters.get("name") ?? ""
            var version: Int?
            if let text = request.uri.queryParameters.get("version") {
                guard let parsed = Int(text), (1...Int(Int32.max)).contains(parsed) else {
                    throw APIError.badRequest("version must be an integer from 1 to \(Int32.max)")
                }
                version = parsed
            }
            guard let stored = try await api.resources.find(kind: .workflow, name: name, version: version, tenant: context.tenant.id) else {
                throw APIError.notFound("workflow \(name)")
            }
            var workflow = Render.workflowSummary(stored)
            workflow.source = stored.source
            if let spec = try? ResourceCoding.encode(stored.resource), let json = try? JSONDecoder().decode(JSONValue.self, from: Data(spec.utf8)) {
                workflow.spec = json
            }
            return try JSONBody.reply(APIWorkflowEnvelope(workflow: workflow))
        }
        group.get("agents") { _, context in
            let versions = try await api.resources.latest(kind: .agent, tenant: context.tenant.id)
            return try JSONBody.reply(APIAgentList(agents: versions.map { APIResourceRef(name: $0.name, version: $0.version) }))
        }
        group.get("tools") { _, context in
            let versions = try await api.resources.latest(kind: .tool, tenant: context.tenant.id)
            let stored = versions.map { APITool(name: $0.name, builtin: false, version: $0.version) }
            let builtins = ToolDefinition.builtins.map {
                APITool(name: $0.name, builtin: true, description: $0.description, parameters: $0.parameters)
            }
            return try JSONBody.reply(APIToolList(tools: stored + builtins))
        }
    }

    /// Runs a parse of request YAML through `parsing`, answering its refusals: 422
    /// `yaml_timeout` past the deadline, 503 `parse_busy` (with `Retry-After`) when every
    /// parse slot holds a runaway parse.
    static func parse<T: Sendable>(_ parsing: YAMLParseGuard, _ work: @escaping @Sendable () -> T) async throws -> T {
        do throws(YAMLParseGuard.Refusal) {
            return try await parsing.run(work)
        } catch {
            switch error {
            case .timedOut:
                throw APIError(.unprocessableContent, code: .yamlTimeout, error.description)
            case .busy:
                var refusal = APIError(.serviceUnavailable, code: .parseBusy, error.description)
                let seconds = max(1, Int(parsing.deadline.components.seconds))
                refusal.headers = [.retryAfter: String(seconds)]
                throw refusal
            }
        }
    }

    /// The files of an apply request: a YAML body is one file (named by the
    /// `X-Yard-File` header); a JSON body `{"files": [{"name", "content"}]}` is a batch
    /// applied all or nothing, so that files may refer to each other.
    static func files(in text: String, request: Request) throws -> [(name: String, text: String)] {
        let contentType = request.headers[.contentType] ?? ""
        guard contentType.hasPrefix("application/json") else {
            return [(request.headers[.init("X-Yard-File")!] ?? "request", text)]
        }
        // Read as JSON values first: the refusals name the file at fault, and are 400s.
        guard let items = try JSONBody.decode(text)["files"]?.arrayValue, !items.isEmpty else {
            throw APIError(.badRequest, code: .invalidJson, "a JSON apply body is {\"files\": [{\"name\": \"…\", \"content\": \"<YAML>\"}]}")
        }
        return try items.enumerated().map { index, item in
            guard let file = try? WireDecoder.decode(APIApplyRequest.File.self, from: item) else {
                throw APIError(.badRequest, code: .invalidJson, "files[\(index)].content must be the file's YAML text")
            }
            return (file.name ?? "files[\(index)]", file.content)
        }
    }
}
