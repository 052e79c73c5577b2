import Foundation
import NIOHTTP1
import PostgresNIO
import SwitchyardCore
import SwitchyardEngine
import SwitchyardExperts
import SwitchyardMetering
import SwitchyardServer
import SwitchyardStore
import SwitchyardTools
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Runs `body` against a live server whose experts are configured freely: `openai`
/// experts pointed at a `FakeDeepSeek`, scripted ones reading `script.yaml`. Without
/// `experts`, `flash` and `pro` are scripted.
func withMeteredServer<T: Sendable>(
    experts: [String: ExpertConfiguration]? = nil, script: String = "[]", engine: EngineConfiguration = fastEngineConfiguration(),
    _ body: @Sendable (LiveServer) async throws -> T
) async throws -> T {
    try await withLiveServer(script: script, engine: engine, experts: experts, body)
}

/// An `openai` expert entry pointed at a fake.
func fakeExpert(_ fake: FakeDeepSeek, model: String, maxRetries: Int? = nil) -> ExpertConfiguration {
    ExpertConfiguration(provider: .openai, model: model, baseURL: fake.url, readTimeout: .seconds(20), maxRetries: maxRetries)
}

/// One ledger row as the `model_calls` table holds it.
struct MeteredCall: Sendable {
    var step: String
    var attempt: Int
    var call: Int
    var expert: String
    var model: String
    var promptTokens: Int
    var completionTokens: Int
    var cacheHitTokens: Int
    var cacheMissTokens: Int
    var reasoningTokens: Int
    var cost: Money?
    var priceID: String?
    var usageKnown: Bool
    var outcome: String
    var error: String?
    var startedAt: Date
}

extension Database {
    /// The ledger rows of a run (every run of every tenant when nil), oldest first.
    func meteredCalls(run: UUID? = nil) async throws -> [MeteredCall] {
        var rows: [MeteredCall] = []
        for try await row in try await client.query(
            """
            SELECT step_id, attempt, call_index, expert, model, prompt_tokens, completion_tokens, cache_hit_tokens, cache_miss_tokens,
                   reasoning_tokens, cost_pusd, price_id, usage_known, outcome, error, started_at
            FROM model_calls WHERE (\(run)::uuid IS NULL OR run_id = \(run)) ORDER BY started_at, step_id, attempt, call_index
            """, logger: logger
        ).decode((String, Int, Int, String, String, Int, Int, Int, Int, Int, Int64?, String?, Bool, String, String?, Date).self) {
            rows.append(
                MeteredCall(
                    step: row.0, attempt: row.1, call: row.2, expert: row.3, model: row.4, promptTokens: row.5, completionTokens: row.6,
                    cacheHitTokens: row.7, cacheMissTokens: row.8, reasoningTokens: row.9, cost: row.10.map(Money.init(picoUSD:)), priceID: row.11,
                    usageKnown: row.12, outcome: row.13, error: row.14, startedAt: row.15))
        }
        return rows
    }

    /// Open reservations (of every tenant).
    func reservationCount() async throws -> Int {
        var count = 0
        for try await value in try await client.query("SELECT count(*)::int8 FROM reservations", logger: logger).decode(Int.self) {
            count = value
        }
        return count
    }

    /// `budget.alert` events of a tenant, as their percentages in order of writing.
    func budgetAlerts(tenant: UUID) async throws -> [Int] {
        var percents: [Int] = []
        for try await data in try await client.query(
            "SELECT data FROM run_events WHERE tenant_id = \(tenant) AND type = 'budget.alert' ORDER BY created_at, seq", logger: logger
        ).decode(JSONValue.self) {
            percents.append(data["percent"]?.intValue ?? -1)
        }
        return percents
    }

    /// How many events of `type` a tenant's runs have.
    func eventCount(_ type: String, tenant: UUID) async throws -> Int {
        var count = 0
        for try await value in try await client.query(
            "SELECT count(*)::int8 FROM run_events WHERE tenant_id = \(tenant) AND type = \(type)", logger: logger
        ).decode(Int.self) {
            count = value
        }
        return count
    }
}

extension LiveServer {
    /// Adds a flat price row (no peak hours) through the admin API. Prices are USD per
    /// million tokens, so "1" is one micro-USD per token.
    func addPrice(model: String, hit: String, miss: String, output: String, from: String = "2026-01-01") async throws {
        let row: JSONValue = [
            "id": .string("\(model)@\(from)"), "model": .string(model), "effective_from": .string(from),
            "input_cache_hit": .string(hit), "input_cache_miss": .string(miss), "output": .string(output),
        ]
        let reply = try await request(.POST, "/v1/admin/prices", key: adminKey, json: row)
        guard reply.status == 201 else { throw TestFailure("adding a price for \(model) answered \(reply.status): \(reply.text)") }
    }

    /// Sets a tenant's monthly budget through the admin API.
    func setBudget(_ limit: Money, onBudget: String = "fail", tenant: UUID? = nil) async throws {
        let id = (tenant ?? store.tenant.id).uuidString.lowercased()
        let reply = try await request(
            .PUT, "/v1/admin/tenants/\(id)/budget", key: adminKey,
            json: ["monthly_usd": .string(limit.decimalString), "on_budget": .string(onBudget)])
        guard reply.status == 200 else { throw TestFailure("setting the budget answered \(reply.status): \(reply.text)") }
    }

    /// Applies YAML for the tenant of `key` through the API.
    func apply(_ yaml: String, key: String) async throws {
        let reply = try await request(.POST, "/v1/apply", key: key, text: yaml)
        guard (200..<300).contains(reply.status) else { throw TestFailure("apply answered \(reply.status): \(reply.text)") }
    }

    /// Starts a run through the API and returns its id.
    func startRun(_ workflow: String, key: String? = nil, input: JSONValue = [:]) async throws -> UUID {
        let reply = try await request(.POST, "/v1/workflows/\(workflow)/runs", key: key ?? tenantKey, json: ["input": input])
        guard reply.status == 202, let text = reply.json["run"]?["id"]?.stringValue, let id = UUID(uuidString: text) else {
            throw TestFailure("starting \(workflow) answered \(reply.status): \(reply.text)")
        }
        return id
    }

    /// Polls `GET /v1/runs/ID` until the run is final; returns the run object.
    func finishedRun(_ id: UUID, key: String? = nil, timeout: Duration = .seconds(30)) async throws -> JSONValue {
        let deadline = ContinuousClock.now + timeout
        var last: JSONValue = .null
        while ContinuousClock.now < deadline {
            last = try await request(.GET, "/v1/runs/\(id.uuidString.lowercased())", key: key ?? tenantKey).json["run"] ?? .null
            if ["succeeded", "failed", "cancelled"].contains(last["status"]?.stringValue ?? "") { return last }
            try await Task.sleep(for: .milliseconds(25))
        }
        throw TestFailure("run \(id) did not finish within \(timeout): \(last.compactJSON)")
    }

    /// Every ledger row `GET /v1/usage` lists for the key's tenant, following every page.
    func usageRows(key: String? = nil, query: String = "", pageSize: Int = 1000) async throws -> [JSONValue] {
        var rows: [JSONValue] = []
        var cursor: String?
        var pages = 0
        repeat {
            var path = "/v1/usage?limit=\(pageSize)" + (query.isEmpty ? "" : "&" + query)
            if let cursor { path += "&cursor=" + (cursor.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? cursor) }
            let reply = try await request(.GET, path, key: key ?? tenantKey)
            guard reply.status == 200 else { throw TestFailure("GET \(path) answered \(reply.status): \(reply.text)") }
            rows += reply.json["calls"]?.arrayValue ?? []
            cursor = reply.json["next_cursor"]?.stringValue
            pages += 1
            if pages > 10_000 { throw TestFailure("GET /v1/usage never ends") }
        } while cursor != nil
        return rows
    }
}

/// The worst case a call of one user message reserves (no agent, no tools, no output
/// schema), computed as the issue states it: the request's prompt bytes × the highest
/// input rate, plus max_tokens × the output rate; rates in µUSD per million tokens,
/// which is pico-USD per token.
func worstCase(prompt: String, maxTokens: Int, inputRate: Int64, outputRate: Int64) -> Money {
    let bytes = ModelRequest(messages: [ChatMessage(.user, prompt)], maxTokens: maxTokens, tenant: "t").promptByteBound
    return Money(picoUSD: Int64(bytes) * inputRate + Int64(maxTokens) * outputRate)
}

/// The prompt bytes the reservation of a one-message call counts.
func promptBound(_ prompt: String) -> Int {
    ModelRequest(messages: [ChatMessage(.user, prompt)], tenant: "t").promptByteBound
}

/// A `yard serve` process on a test database, with its log and HTTP address.
struct YardServe: Sendable {
    let process: Process
    let url: String
    let log: String

    /// Starts `yard serve --config` and waits until it listens (its port is read from its log).
    static func start(config: String, database: DatabaseConfiguration, log: String, timeout: Duration = .seconds(60)) async throws -> YardServe {
        let process = try CrashRecoveryTests.startServer(config: config, database: database, log: log)
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
            if let range = text.range(of: #"http://127\.0\.0\.1:[0-9]+"#, options: .regularExpression) {
                return YardServe(process: process, url: String(text[range]), log: log)
            }
            guard process.isRunning else { throw TestFailure("yard serve exited: \(text)") }
            try await Task.sleep(for: .milliseconds(50))
        }
        process.terminate()
        throw TestFailure("yard serve did not listen within \(timeout): \((try? String(contentsOfFile: log, encoding: .utf8)) ?? "")")
    }

    func live(adminKey: String, store: TestStore) -> LiveServer {
        LiveServer(url: url, adminKey: adminKey, store: store)
    }

    func stop() {
        if process.isRunning {
            process.terminate()
            process.waitUntilExit()
        }
    }

    func kill() {
        Glibc.kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }
}
