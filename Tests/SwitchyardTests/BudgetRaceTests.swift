import Foundation
import NIOHTTP1
import PostgresNIO
import SwitchyardCore
import SwitchyardMetering
import SwitchyardStore
import Testing

@Suite("Metering: the budget race")
struct BudgetRaceTests {
    static let calls = 64
    static let servers = 3
    static let prompt = "race"
    static let maxTokens = 1000

    @Test(
        "64 concurrent model calls on 3 yard serve processes against a budget that fits 20: spend ≤ limit, refused calls send nothing, no reservation is left"
    )
    func budgetRace() async throws {
        // The fake bills every call exactly its worst case (the prompt's byte bound as
        // cache misses, max_tokens of output), so one admission too many would overshoot.
        let answer = FakeDeepSeek.completion(
            content: "ok", model: "race-model-0731",
            usage: FakeDeepSeek.usage(prompt: promptBound(Self.prompt), completion: Self.maxTokens, hit: 0))
        try await FakeDeepSeek.with([.json(body: answer, delay: .milliseconds(300))]) { fake in
            try await withTestStore { store in
                let directory = NSTemporaryDirectory() + "switchyard-budget-race-\(UUID().uuidString)"
                try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
                defer { try? FileManager.default.removeItem(atPath: directory) }
                // 22 steps each: the 64 calls need all three processes at once.
                try """
                port: 0
                admin_key: race-admin
                engine: { concurrency: 22, poll: 100ms }
                experts:
                  flash: { provider: openai, model: race-model, base_url: "\(fake.url)", max_retries: 0 }
                  pro: { provider: openai, model: race-model-pro, base_url: "\(fake.url)", max_retries: 0 }
                """.write(toFile: directory + "/config.yaml", atomically: true, encoding: .utf8)
                let processes = try await withThrowingTaskGroup(of: YardServe.self) { group in
                    for index in 0..<Self.servers {
                        group.addTask {
                            try await YardServe.start(
                                config: directory + "/config.yaml", database: store.database.configuration, log: directory + "/server\(index).log")
                        }
                    }
                    return try await group.reduce(into: [YardServe]()) { $0.append($1) }
                }
                defer { for process in processes { process.stop() } }
                let servers = processes.map { $0.live(adminKey: "race-admin", store: store) }

                // 1 µUSD per input token, 2 per output token: a call reserves (and costs) R.
                try await servers[0].addPrice(model: "race-model", hit: "0.5", miss: "1", output: "2")
                let each = worstCase(prompt: Self.prompt, maxTokens: Self.maxTokens, inputRate: 1_000_000, outputRate: 2_000_000)
                // Room for 20.5 calls.
                let limit = Money(picoUSD: each.picoUSD * 20 + each.picoUSD / 2)
                try await servers[1].setBudget(limit)
                try await store.apply(
                    """
                    kind: Workflow
                    name: race
                    steps:
                      - id: ask
                        prompt: "\(Self.prompt)"
                        model: flash
                        max_tokens: \(Self.maxTokens)
                    """)

                // Watch which processes hold running steps, while every run starts at once
                // through the three servers' APIs.
                let watching = Task { () -> Set<UUID> in
                    var seen: Set<UUID> = []
                    while !Task.isCancelled {
                        do {
                            for try await owner in try await store.database.client.query(
                                "SELECT DISTINCT lease_owner FROM steps WHERE status = 'running' AND lease_owner IS NOT NULL",
                                logger: store.database.logger
                            ).decode(UUID.self) {
                                seen.insert(owner)
                            }
                            try await Task.sleep(for: .milliseconds(20))
                        } catch {
                            break
                        }
                    }
                    return seen
                }
                let started = ContinuousClock.now
                let runs = try await withThrowingTaskGroup(of: UUID.self) { group in
                    for index in 0..<Self.calls {
                        group.addTask { try await servers[index % Self.servers].startRun("race") }
                    }
                    return try await group.reduce(into: [UUID]()) { $0.append($1) }
                }
                var admitted = 0
                var refused = 0
                var other: [String] = []
                for run in runs {
                    let finished = try await store.wait(for: run, timeout: .seconds(60))
                    switch (finished.status, finished.steps.first?.error?.code) {
                    case (.succeeded, _): admitted += 1
                    case (.failed, "budget_exceeded"?): refused += 1
                    default: other.append("\(finished.status.rawValue) \(finished.steps.first?.error?.description ?? "")")
                    }
                }
                let elapsed = ContinuousClock.now - started
                watching.cancel()
                let serversUsed = await watching.value.count

                let ledger = try await store.database.meteredCalls()
                let spend = try Money.sum(ledger.compactMap(\.cost))
                let reservations = try await store.database.reservationCount()
                let called = try await store.database.eventCount("model.called", tenant: store.tenant.id)
                let budget = try await servers[2].request(.GET, "/v1/budget", key: store.apiKey).json["budget"] ?? .null
                print(
                    """
                    budget race: \(Self.servers) yard serve processes (\(serversUsed) seen running steps), \(Self.calls) calls attempted, \
                    \(admitted) admitted, \(refused) refused (budget_exceeded), \(other.count) other; \
                    settled spend \(spend.decimalString) USD of a \(limit.decimalString) USD limit (each call \(each.decimalString) USD); \
                    \(fake.requestCount) requests reached the provider, at most \(fake.maxInFlight) at once; \
                    \(reservations) reservations left; \(elapsed)
                    """)

                #expect(other.isEmpty, "\(other)")
                #expect(admitted + refused == Self.calls)
                #expect(spend <= limit)
                // Every call costs its reservation exactly, so the budget admits exactly 20.
                #expect(admitted == 20)
                // A refused call sent no request and left no ledger row or event.
                #expect(fake.requestCount == admitted)
                #expect(ledger.count == admitted)
                #expect(
                    ledger.allSatisfy { $0.usageKnown && $0.cost == each && $0.priceID == "race-model@2026-01-01" && $0.model == "race-model-0731" })
                #expect(called == admitted)
                #expect(reservations == 0)
                #expect(money(budget["spent_usd"]) == spend)
                #expect(money(budget["reserved_usd"]) == .zero)
                // The calls really overlapped, across processes.
                #expect(fake.maxInFlight > 1)
                #expect(serversUsed >= 2)
            }
        }
    }

    private func money(_ value: JSONValue?) -> Money? {
        value?.stringValue.flatMap { try? Money(parsing: $0) }
    }
}
