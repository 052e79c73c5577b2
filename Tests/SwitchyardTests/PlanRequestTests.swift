import Foundation
import SwitchyardCore
import SwitchyardExperts
import SwitchyardStore
import SwitchyardTools
import Synchronization
import Testing

@testable import SwitchyardEngine

/// A cost plan is only an upper bound of a run if it prices what the run sends: the
/// planner and the step runner build their requests with one builder, and this suite
/// holds them to it by comparing a plan with a real run of the same workflow.
@Suite struct PlanRequestTests {
    /// An agent with instructions, a built-in tool and a stored tool without
    /// `parameters` (the default schema is the runner's, not a copy's); a JSON-output
    /// step without `max_tokens` (the engine's default cap), a thinking step, and a map.
    static let resources = """
        kind: Tool
        name: lookup
        http: { method: GET, url: "http://127.0.0.1:9/lookup", timeout: 1s }
        ---
        kind: Agent
        name: clerk
        instructions: You file quotes. Answer briefly.
        model: pro
        tools: [lookup, current_time]
        max_turns: 3
        ---
        kind: Workflow
        name: order
        inputs: { item: { type: string, required: true }, colors: { type: array, default: [red, blue] } }
        steps:
          - id: classify
            agent: clerk
            prompt: "Classify {{ inputs.item }}"
            output: { type: object, properties: { kind: { type: string } }, required: [kind] }
          - id: describe
            model: flash
            thinking: true
            prompt: "Describe {{ inputs.item }} in one line"
            max_tokens: 120
          - id: paint
            map:
              over: "{{ inputs.colors }}"
              as: color
              step: { model: cascade, prompt: "Paint {{ inputs.item }} {{ color }}", max_tokens: 40 }
        """

    static let script = """
        - match: Classify
          reply: '{"kind": "furniture"}'
        """

    @Test("the plan of a workflow prices the very requests its run sends to the experts")
    func planPricesTheRequestsARunSends() async throws {
        try await withTestStore { store in
            try await store.apply(Self.resources)
            let rules = try ScriptedExpert.parseRules(Self.script, file: "plan-request-script.yaml")
            let flash = RecordingExpert(ScriptedExpert(name: "flash", model: "scripted-flash", rules: rules))
            let pro = RecordingExpert(ScriptedExpert(name: "pro", model: "scripted-pro", rules: rules))
            let experts = ExpertPool([flash, pro])
            let configuration = fastEngineConfiguration()
            let logger = testLogger("test.plan-requests")
            let engine = Engine(
                database: store.database, experts: experts, tools: ToolEnvironment(runner: ToolRunner(logger: logger)), configuration: configuration,
                logger: logger)
            let input: JSONValue = ["item": "oak table"]
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await engine.run() }
                defer { group.cancelAll() }
                let run = try await store.wait(for: try await store.start("order", input: input).id)
                #expect(run.status == .succeeded, "\(run)")
            }

            guard let stored = try await store.resources.find(kind: .workflow, name: "order", tenant: store.tenant.id),
                case .workflow(let spec) = stored.resource
            else { throw TestFailure("no workflow order") }
            let planner = try await CostPlanner.make(
                database: store.database, tenant: store.tenant.id, experts: experts, gateThreshold: configuration.gateThreshold,
                defaultMaxTokens: configuration.defaultMaxTokens)
            let plan = try await planner.plan(spec, input: try spec.resolveInputs(input))

            // Streaming is how the answer travels, not what is priced.
            let sent = Set((flash.received + pro.received).map(\.unstreamed))
            let priced = Set(plan.steps.flatMap(\.requests).map(\.unstreamed))
            #expect(sent.count == 4, "one classify, one describe, two paint items (flash answers under cascade): \(sent)")
            #expect(priced == sent)
            // The priced bound is the bound of those requests.
            for request in priced {
                #expect(
                    request.maxTokens
                        == (request.prompt.hasPrefix("Describe") ? 120 : request.prompt.hasPrefix("Paint") ? 40 : configuration.defaultMaxTokens))
            }
            let classify = try #require(priced.first { $0.prompt.hasPrefix("Classify") })
            #expect(classify.tools.map(\.name) == ["lookup", "current_time"])
            #expect(classify.wantsJSON && classify.messages.first?.role == .system)
        }
    }
}

extension ModelRequest {
    /// The request with streaming off, for comparing what was sent with what was priced.
    fileprivate var unstreamed: ModelRequest {
        var request = self
        request.stream = false
        return request
    }
}

/// An expert that keeps every request it receives, answering with another expert.
private final class RecordingExpert: Expert {
    let inner: any Expert
    private let requests = Mutex<[ModelRequest]>([])

    init(_ inner: any Expert) {
        self.inner = inner
    }

    var name: String { inner.name }
    var model: String { inner.model }
    var received: [ModelRequest] { requests.withLock { $0 } }

    func complete(_ request: ModelRequest) async throws(ExpertError) -> ModelResponse {
        try await complete(request, onDelta: nil)
    }

    func complete(_ request: ModelRequest, onDelta: DeltaHandler?) async throws(ExpertError) -> ModelResponse {
        requests.withLock { $0.append(request) }
        return try await inner.complete(request, onDelta: onDelta)
    }
}
