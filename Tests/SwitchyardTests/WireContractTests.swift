import Foundation
import SwitchyardAPI
import SwitchyardCore
import Testing

/// The wire types and `docs/openapi.yaml` say the same thing. A representative value of
/// every response type, encoded exactly as the server encodes it (``WireEncoder``), is
/// validated by `Scripts/check-wire-contract.py` against the schema the document gives
/// that route and status, made strict (a field the document does not name fails, as
/// does a required one the type leaves out). Every documented JSON response must be
/// covered: by a value here, by the error sample of its schema, or by an exemption
/// with its reason.
@Suite("Wire contract: the API's types against docs/openapi.yaml")
struct WireContractTests {
    static let package = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// One documented response and the value the server would send for it.
    struct Case: Sendable {
        var method: String
        var path: String
        var status: Int
        var body: any Encodable & Sendable
    }

    static let runID = "0b0e4d3c-8f0a-4c55-9a51-9a1e3e0c2f11"
    static let at = "2026-11-20T10:00:00.123Z"

    static let settings = APITenantSettings(
        gateThreshold: 0.5, egressAllow: ["api.example.com"], maxRunningSteps: nil, runsPerSecond: 2.5, runBurst: 10)
    static let step = APIStep(
        id: "draft", status: .succeeded, attempts: 1, expert: "flash", output: ["text": "hi"], error: nil, startedAt: at,
        finishedAt: at, route: nil, feedback: nil, costUSD: "0.000012")
    /// A plan with one priced step that expects an expert and one unpriced step.
    static let plan = APIPlan(
        workflow: "triage",
        steps: [
            APIPlanStep(
                step: "classify", experts: ["flash", "pro"], calls: .init(min: 1, max: 3), minUSD: "0.000010", maxUSD: "0.004200",
                unpriced: false, notes: ["auto: the gate picks one expert per call"], expectedExpert: "flash"),
            APIPlanStep(
                step: "draft", experts: ["local"], calls: .init(min: 1, max: 1), minUSD: nil, maxUSD: nil, unpriced: true,
                notes: ["model gemma has no price"], expectedExpert: nil),
        ],
        minUSD: nil, maxUSD: nil, unpriced: true, notes: ["prompt sizes are estimated from the rendered templates"])
    static let usage = APIUsage(calls: 1, promptTokens: 10, completionTokens: 5, costUSD: "0.000012", unpricedCalls: 0, estimatedCalls: 0)
    static let run = APIRun(
        id: runID, workflow: "hello", version: 1, status: .succeeded, input: ["name": "Ada"], output: ["greeting": "hi"], error: nil,
        createdAt: at, startedAt: at, finishedAt: at, steps: [step], usage: usage)
    static var summary: APIRun {
        var run = run
        run.steps = nil
        run.usage = nil
        return run
    }
    static let workflow = APIWorkflow(
        name: "hello", version: 2, createdAt: at, description: nil, steps: 1,
        inputs: ["name": APIWorkflowInput(type: "string", required: false, defaultValue: "world")])
    static var workflowDetail: APIWorkflow {
        var detail = workflow
        detail.source = "kind: Workflow\n"
        detail.spec = ["name": "hello"]
        return detail
    }
    static let figures = APICostFigures(
        key: ["expert": "pro"], calls: 3, promptTokens: 300, cacheHitTokens: 100, cacheMissTokens: 200, completionTokens: 50,
        reasoningTokens: 10, costUSD: "0.001200", unpricedCalls: 0, estimatedCalls: 1, proCalls: 3, proCostUSD: "0.001200")
    static var total: APICostFigures {
        var total = figures
        total.key = nil
        return total
    }
    static let budget = APIBudget(monthlyUSD: "25.00", onBudget: "fail", spentUSD: "1.5", reservedUSD: "0", alerts: [50])
    static let price = APIPrice(
        id: "deepseek-v4-pro@2026-12-01", model: "deepseek-v4-pro", effectiveFrom: "2026-12-01T00:00:00Z", inputCacheHit: "0.14",
        inputCacheMiss: "0.56", output: "2.2",
        peak: .init(
            windows: [.init(weekdays: ["mon", "tue"], startHour: 8, endHour: 18)], inputCacheHit: "0.28", inputCacheMiss: "1.12", output: "4.4"))
    static let ledgerRow = APILedgerRow(
        run: runID, step: "draft", attempt: 1, call: 0, expert: "flash", model: "deepseek-v4-flash", promptTokens: 10, cacheHitTokens: 4,
        cacheMissTokens: 6, completionTokens: 5, reasoningTokens: 0, costUSD: nil, priceID: nil, usageKnown: true)

    /// Every documented 2xx JSON response (and the 4xx/5xx ones whose body is not an error sample).
    static let cases: [Case] = [
        Case(method: "GET", path: "/healthz", status: 200, body: APIHealth(status: "ok")),
        Case(method: "GET", path: "/readyz", status: 200, body: APIHealth(status: "ready")),
        Case(method: "GET", path: "/readyz", status: 503, body: APIHealth(status: "unavailable", error: "connection refused")),
        Case(
            method: "POST", path: "/v1/admin/tenants", status: 201,
            body: APITenantCreated(tenant: .init(id: runID, name: "acme"), apiKey: "sy_0123456789abcdef0123456789abcdef_acme")),
        Case(method: "GET", path: "/v1/admin/tenants", status: 200, body: APITenantList(tenants: [.init(id: runID, name: "acme")])),
        Case(
            method: "GET", path: "/v1/admin/tenants/{tenant}", status: 200,
            body: APITenantDetail(tenant: .init(id: runID, name: "acme", settings: settings))),
        Case(method: "PUT", path: "/v1/admin/tenants/{tenant}/gate", status: 200, body: APITenantSettingsEnvelope(settings: settings)),
        Case(method: "PUT", path: "/v1/admin/tenants/{tenant}/egress", status: 200, body: APITenantSettingsEnvelope(settings: settings)),
        Case(method: "PUT", path: "/v1/admin/tenants/{tenant}/limits", status: 200, body: APITenantSettingsEnvelope(settings: settings)),
        Case(
            method: "POST", path: "/v1/admin/tenants/{tenant}/keys", status: 201,
            body: APIKeyCreated(apiKey: "sy_0123456789abcdef0123456789abcdef_acme")),
        Case(method: "GET", path: "/v1/admin/tenants/{tenant}/budget", status: 200, body: APIBudgetEnvelope(budget: budget)),
        Case(
            method: "GET", path: "/v1/admin/tenants/{tenant}/retention", status: 200,
            body: APIRetentionEnvelope(retention: APIRetention(runs: nil, events: "7d", effectiveRuns: "30d", effectiveEvents: "7d"))),
        Case(
            method: "PUT", path: "/v1/admin/tenants/{tenant}/retention", status: 200,
            body: APIRetentionEnvelope(retention: APIRetention(runs: "forever", events: nil, effectiveRuns: "forever", effectiveEvents: "forever"))),
        Case(
            method: "POST", path: "/v1/admin/prune", status: 200,
            body: APIPruneResult(
                prune: .init(dryRun: false, tenants: 2, runs: 10, steps: 30, events: 80, signals: 1, trimmedRuns: 3, ledgerRows: 0))),
        Case(method: "PUT", path: "/v1/admin/tenants/{tenant}/budget", status: 200, body: APIBudgetEnvelope(budget: budget)),
        Case(method: "POST", path: "/v1/admin/prices", status: 201, body: APIPriceEnvelope(price: price)),
        Case(
            method: "POST", path: "/v1/apply", status: 200,
            body: APIApplyResult(applied: [.init(kind: "Workflow", name: "hello", version: 1, changed: true)])),
        Case(
            method: "POST", path: "/v1/apply", status: 422,
            body: APIErrorBody(
                error: .init(
                    code: "invalid_resource", message: "hello.yaml:3:1: steps: is required",
                    details: [
                        APIProblem(path: "steps", message: "is required", file: "hello.yaml", line: 3, column: 1)
                    ]))),
        Case(method: "GET", path: "/v1/workflows", status: 200, body: APIWorkflowList(workflows: [workflow])),
        Case(method: "GET", path: "/v1/workflows/{name}", status: 200, body: APIWorkflowEnvelope(workflow: workflowDetail)),
        Case(method: "GET", path: "/v1/agents", status: 200, body: APIAgentList(agents: [.init(name: "writer", version: 1)])),
        Case(
            method: "GET", path: "/v1/tools", status: 200,
            body: APIToolList(tools: [
                APITool(name: "lookup", builtin: false, version: 1),
                APITool(name: "http_get", builtin: true, description: "Fetches a URL", parameters: ["type": "object"]),
            ])),
        Case(method: "POST", path: "/v1/workflows/{name}/runs", status: 200, body: APIRunEnvelope(run: run)),
        Case(method: "POST", path: "/v1/workflows/{name}/plan", status: 200, body: plan),
        Case(method: "POST", path: "/v1/workflows/{name}/runs", status: 202, body: APIRunEnvelope(run: run)),
        Case(method: "GET", path: "/v1/runs", status: 200, body: APIRunList(runs: [summary], nextCursor: nil)),
        Case(method: "GET", path: "/v1/runs/{id}", status: 200, body: APIRunEnvelope(run: run)),
        Case(method: "POST", path: "/v1/runs/{id}/cancel", status: 202, body: APICancelResult(run: .init(id: runID, status: .cancelled))),
        Case(method: "POST", path: "/v1/runs/{id}/signals/{name}", status: 202, body: APISignalResult(signal: "approve", resumedSteps: ["wait"])),
        Case(
            method: "POST", path: "/v1/runs/{id}/steps/{step}/feedback", status: 200,
            body: APIFeedbackResult(feedback: .init(run: runID, step: "draft", good: true, expert: "flash", learned: true))),
        Case(method: "GET", path: "/v1/secrets", status: 200, body: APISecretList(secrets: [.init(name: "TOKEN", updatedAt: at)])),
        Case(method: "PUT", path: "/v1/secrets/{name}", status: 200, body: APISecretPutResult(secret: .init(name: "TOKEN", created: false))),
        Case(method: "PUT", path: "/v1/secrets/{name}", status: 201, body: APISecretPutResult(secret: .init(name: "TOKEN", created: true))),
        Case(method: "GET", path: "/v1/usage", status: 200, body: APIUsagePage(calls: [ledgerRow], nextCursor: "c1")),
        Case(method: "GET", path: "/v1/costs", status: 200, body: APICostReport(groups: [figures], total: total)),
        Case(method: "GET", path: "/v1/budget", status: 200, body: APIBudgetEnvelope(budget: budget)),
        Case(method: "GET", path: "/v1/prices", status: 200, body: APIPriceList(prices: [price])),
    ]

    /// The error body of each error schema the document uses, as ``APIErrorBody`` writes it.
    static let errors: [String: any Encodable & Sendable] = [
        "Error": APIErrorBody(error: .init(code: "not_found", message: "run not found")),
        "RequestError": APIErrorBody(
            error: .init(
                code: "invalid_request", message: "the egress allow list has invalid entries",
                details: [APIProblem(path: "allow[0]", message: "expected a string")])),
        "InputError": APIErrorBody(
            error: .init(
                code: "invalid_input", message: "input name: expected a string", details: [APIProblem(path: "name", message: "expected a string")])),
        "Unavailable": APIHealth(status: "unavailable", error: "connection refused"),
    ]

    /// Operations whose bodies are not yet wire types, and why.
    static let exempt: [(method: String, path: String, reason: String)] = []

    /// A Python with `jsonschema` and `yaml`: the machine's, else Schemathesis's (which has both).
    static let python: String? = {
        let venv =
            ProcessInfo.processInfo.environment["SCHEMATHESIS_VENV"]
            ?? ((ProcessInfo.processInfo.environment["XDG_CACHE_HOME"] ?? NSHomeDirectory() + "/.cache") + "/switchyard/schemathesis-4.32.5")
        for candidate in ["/usr/bin/env", venv + "/bin/python"] {
            let arguments = candidate == "/usr/bin/env" ? ["python3", "-c", "import jsonschema, yaml"] : ["-c", "import jsonschema, yaml"]
            if let (status, _) = try? run(candidate, arguments), status == 0 { return candidate }
        }
        return nil
    }()

    static func run(_ executable: String, _ arguments: [String]) throws -> (Int32, String) {
        let output = FileManager.default.temporaryDirectory.appendingPathComponent("wire-contract-\(UUID().uuidString).log")
        _ = FileManager.default.createFile(atPath: output.path, contents: nil)
        defer { try? FileManager.default.removeItem(at: output) }
        let handle = try FileHandle(forWritingTo: output)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
        process.waitUntilExit()
        try handle.close()
        return (process.terminationStatus, (try? String(contentsOf: output, encoding: .utf8)) ?? "")
    }

    /// The cases as the checker reads them.
    static func casesJSON() throws -> String {
        let responses: [JSONValue] = try cases.map { item in
            ["method": .string(item.method), "path": .string(item.path), "status": .int(item.status), "body": try WireEncoder.json(item.body)]
        }
        let errorBodies = try errors.mapValues { try WireEncoder.json($0) }
        let exemptions: [JSONValue] = exempt.map { ["method": .string($0.method), "path": .string($0.path), "reason": .string($0.reason)] }
        let all: JSONValue = ["responses": .array(responses), "errors": .object(errorBodies), "exempt": .array(exemptions)]
        return all.compactJSON
    }

    @Test(
        "every documented response is what its wire type encodes",
        .enabled(if: python != nil, "needs a Python with jsonschema and yaml (Scripts/schemathesis.sh --install-only brings one)"))
    func everyDocumentedResponseMatchesItsType() throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("wire-cases-\(UUID().uuidString).json")
        try Self.casesJSON().write(to: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: file) }
        let script = Self.package.appendingPathComponent("Scripts/check-wire-contract.py").path
        let document = Self.package.appendingPathComponent("docs/openapi.yaml").path
        guard let python = Self.python else { return }
        let arguments = python == "/usr/bin/env" ? ["python3", script, document, file.path] : [script, document, file.path]
        let (status, output) = try Self.run(python, arguments)
        #expect(status == 0, "the wire types and docs/openapi.yaml disagree:\n\(output)")
    }

    @Test("an unset optional is written as null, and the fields a type leaves out are absent")
    func encodingKeepsNullsAndAbsences() throws {
        #expect(try WireEncoder.text(APIRunList(runs: [Self.summary], nextCursor: nil)).contains("\"next_cursor\":null"))
        #expect(try !WireEncoder.text(Self.summary).contains("\"steps\""))
        #expect(try WireEncoder.text(APIErrorBody(error: .init(code: "x", message: "y"))) == #"{"error":{"code":"x","message":"y"}}"#)
        #expect(try WireEncoder.text(APITenantSettingsEnvelope(settings: Self.settings)).contains("\"gate_threshold\":0.5"))
        #expect(try WireEncoder.text(APISetGateRequest(threshold: 1)) == #"{"threshold":1.0}"#)
    }

    @Test("what the server encodes, the CLI decodes back to the same value")
    func roundTrips() throws {
        let text = try WireEncoder.text(APIRunEnvelope(run: Self.run))
        #expect(try WireDecoder.decode(APIRunEnvelope.self, from: Data(text.utf8)) == APIRunEnvelope(run: Self.run))
        let report = APICostReport(groups: [Self.figures], total: Self.total)
        #expect(try WireDecoder.decode(APICostReport.self, from: Data(WireEncoder.text(report).utf8)) == report)
    }
}
