import Foundation
import Logging
import SwitchyardCore
import SwitchyardExperts
import SwitchyardStore
import SwitchyardTools

/// How this process runs tools: the runner, the key that opens tenant secrets, and
/// the server's egress allow list (each tenant's own list is added per call).
public struct ToolEnvironment: Sendable {
    public var runner: any ToolRunning
    /// Nil when no `SWITCHYARD_SECRET_KEY` is configured: tools that need secrets fail.
    public var secretBox: SecretBox?
    public var egress: EgressPolicy

    public init(runner: any ToolRunning, secretBox: SecretBox? = nil, egress: EgressPolicy = .publicOnly) {
        self.runner = runner
        self.secretBox = secretBox
        self.egress = egress
    }
}

/// A tool an agent may call in this step, in both the runner's and the model's form.
struct ResolvedTool: Sendable {
    var definition: SwitchyardTools.ToolDefinition

    var modelDefinition: FunctionDefinition {
        FunctionDefinition(name: definition.name, description: definition.description, parameters: definition.parameters)
    }
}

/// What one tool call came to, as the agent loop sends it back to the model.
struct ToolInvocation: Sendable {
    /// The tool message content: the result as JSON, or `{"error": {…}}`.
    var content: String
    /// Set when the model itself got the call wrong (unknown tool, invalid arguments):
    /// under `cascade` that fails flash's answer.
    var modelProblem: String?
}

/// Tool execution for steps and agents: resolves a tenant's tools (stored or built
/// in), opens only the secrets a tool's headers read, applies egress rules, runs the
/// call and writes a `tool.called` event.
struct Toolbox: Sendable {
    let resources: ResourceRepository
    let secrets: SecretRepository
    let tenants: TenantRepository
    let queue: StepQueue
    let environment: ToolEnvironment
    let logger: Logger
    var telemetry: EngineTelemetry = .disabled

    /// The most of a tool result sent back to a model; the rest is cut with a note.
    static let maxResultCharacters = 32_000

    /// The named tools of a tenant: built-ins, else the latest stored version.
    func resolve(_ names: [String], tenant: UUID) async throws(StepFailure) -> [ResolvedTool] {
        var tools: [ResolvedTool] = []
        for name in names {
            tools.append(try await resolve(name, tenant: tenant))
        }
        return tools
    }

    private func resolve(_ name: String, tenant: UUID) async throws(StepFailure) -> ResolvedTool {
        if let builtin = SwitchyardTools.ToolDefinition.builtin(named: name) { return ResolvedTool(definition: builtin) }
        let stored: ResourceVersion?
        do {
            stored = try await resources.find(kind: .tool, name: name, tenant: tenant)
        } catch {
            throw StepFailure.database(error)
        }
        return try Self.resolve(name, stored: stored)
    }

    /// A tenant's stored tool (looked up by `name`) in both forms; the cost planner
    /// resolves agents' tools with it too, so it prices the definitions a run sends.
    static func resolve(_ name: String, stored: ResourceVersion?) throws(StepFailure) -> ResolvedTool {
        guard let stored, case .tool(let spec) = stored.resource else {
            throw StepFailure(.toolMissing, "tool \(name) does not exist", retryable: false)
        }
        do throws(ToolError) {
            return ResolvedTool(definition: try SwitchyardTools.ToolDefinition(spec))
        } catch {
            throw StepFailure(StepErrorCode(rawValue: error.code.rawValue), error.message, retryable: false)
        }
    }

    /// A `tool:` step: the same call without a model.
    func runStep(_ step: ToolStepSpec, arguments: JSONValue, context: CallContext) async throws(StepFailure) -> JSONValue {
        let tool = try await resolve(step.tool, tenant: context.claim.tenantID)
        switch await call(tool, arguments: arguments, callID: nil, turn: nil, context: context) {
        case .success(let value):
            return value
        case .failure(let error):
            throw StepFailure(StepErrorCode(rawValue: error.code.rawValue), "tool \(step.tool): \(error.message)", retryable: error.retryable)
        }
    }

    /// One tool call requested by a model. Nothing here throws: every problem goes
    /// back to the model as a tool error it can correct.
    func invoke(_ request: ToolCall, available: [ResolvedTool], turn: Int, context: CallContext) async -> ToolInvocation {
        guard let tool = available.first(where: { $0.definition.name == request.name }) else {
            let known = available.map(\.definition.name).joined(separator: ", ")
            let error = ToolError(.unknownTool, "there is no tool \(request.name); the tools are \(known)")
            await recordEvent(tool: request.name, callID: request.id, turn: turn, outcome: .failure(error), latency: 0, context: context)
            return ToolInvocation(content: Self.errorContent(error), modelProblem: "unknown tool \(request.name)")
        }
        let arguments: JSONValue
        do {
            arguments = try JSONDecoder().decode(JSONValue.self, from: Data((request.arguments.isEmpty ? "{}" : request.arguments).utf8))
        } catch {
            let error = ToolError(.invalidArguments, "the arguments are not valid JSON: \(request.arguments.prefix(200))")
            await recordEvent(tool: request.name, callID: request.id, turn: turn, outcome: .failure(error), latency: 0, context: context)
            return ToolInvocation(content: Self.errorContent(error), modelProblem: "\(request.name): arguments are not JSON")
        }
        switch await call(tool, arguments: arguments, callID: request.id, turn: turn, context: context) {
        case .success(let value):
            var content = value.stringValue ?? value.compactJSON
            if content.count > Self.maxResultCharacters {
                content = String(content.prefix(Self.maxResultCharacters)) + "\n[result cut at \(Self.maxResultCharacters) characters]"
            }
            return ToolInvocation(content: content)
        case .failure(let error):
            let problem = error.code == .invalidArguments ? "\(request.name): \(error.message)" : nil
            return ToolInvocation(content: Self.errorContent(error), modelProblem: problem)
        }
    }

    private func call(
        _ tool: ResolvedTool, arguments: JSONValue, callID: String?, turn: Int?, context: CallContext
    ) async -> Result<JSONValue, ToolError> {
        let clock = ContinuousClock()
        let start = clock.now
        let outcome: Result<JSONValue, ToolError>
        let span = telemetry.startToolCall(tool.definition.name, claim: context.claim)
        do {
            let callContext = try await self.callContext(for: tool.definition, tenant: context.claim.tenantID)
            context.noteSideEffect()
            outcome = .success(
                try await span.propagating { () async throws(ToolError) -> JSONValue in
                    try await environment.runner.call(tool.definition, arguments: arguments, context: callContext)
                })
        } catch {
            outcome = .failure(error)
        }
        telemetry.finishToolCall(span, error: { if case .failure(let error) = outcome { error.message } else { nil } }())
        let elapsed = clock.now - start
        let latency = Int(elapsed.inMilliseconds)
        await recordEvent(tool: tool.definition.name, callID: callID, turn: turn, outcome: outcome, latency: latency, context: context)
        return outcome
    }

    /// The tenant's egress list on top of the server's, and the secrets this tool's
    /// headers read (opened only now, only these).
    private func callContext(for tool: SwitchyardTools.ToolDefinition, tenant: UUID) async throws(ToolError) -> ToolCallContext {
        var needed = Set<String>()
        if case .http(let http) = tool.kind {
            for source in http.headers.values {
                if let template = try? Template(parsing: source) { needed.formUnion(template.referencedSecrets) }
            }
        }
        let settings: TenantSettings?
        let sealed: [String: Data]
        do {
            settings = try await tenants.settings(tenant: tenant)
            sealed = try await secrets.sealed(tenant: tenant, names: needed)
        } catch {
            throw ToolError(.unavailable, "the database is unavailable: \(Database.describe(error))", retryable: true)
        }
        var egress = environment.egress
        if let own = settings?.egressAllow, !own.isEmpty {
            do {
                egress = egress.union(try EgressPolicy(allowing: own))
            } catch {
                throw ToolError(.egressDenied, "the tenant's egress allow list is invalid: \(error)")
            }
        }
        var opened: [String: String] = [:]
        for name in needed.sorted() {
            guard let value = sealed[name] else {
                throw ToolError(.secretMissing, "tool \(tool.name) reads secrets.\(name), which is not set; set it with PUT /v1/secrets/\(name)")
            }
            guard let box = environment.secretBox else {
                throw ToolError(.secretMissing, "tool \(tool.name) reads secrets, but the server has no SWITCHYARD_SECRET_KEY to open them")
            }
            do {
                opened[name] = try box.open(value, tenant: tenant, name: name)
            } catch {
                throw ToolError(.secretMissing, "secrets.\(name) cannot be opened with the server's key: \(error.message)")
            }
        }
        return ToolCallContext(tenant: tenant, secrets: opened, egress: egress)
    }

    private func recordEvent(
        tool: String, callID: String?, turn: Int?, outcome: Result<JSONValue, ToolError>, latency: Int, context: CallContext
    ) async {
        var data: [String: JSONValue] = ["tool": .string(tool), "ok": .bool(true), "latency_ms": .int(latency)]
        if let callID { data["call_id"] = .string(callID) }
        if let turn { data["turn"] = .int(turn) }
        if case .failure(let error) = outcome {
            data["ok"] = .bool(false)
            data["error"] = ["code": .string(error.code.rawValue), "message": .string(error.message)]
        }
        do {
            try await queue.appendEvents(
                [NewEvent(.toolCalled, step: context.claim.stepID, data: .object(data))], run: context.claim.runID, tenant: context.claim.tenantID)
        } catch {
            logger.error("could not record a tool call", metadata: ["run": "\(context.claim.runID)", "error": "\(Database.describe(error))"])
        }
    }

    static func errorContent(_ error: ToolError) -> String {
        JSONValue.object(["error": ["code": .string(error.code.rawValue), "message": .string(error.message)]]).compactJSON
    }
}
