import Foundation
import SwitchyardStore
import Testing

@Suite("Run rate limit: one bucket per tenant, shared by every server")
struct RunRateLimiterTests {
    @Test("60 concurrent draws from two servers' limiters on a burst of 10 at 0.01 runs/s: exactly 10 are allowed, the rest told when to retry")
    func concurrentDrawsNeverShareAToken() async throws {
        try await withTestStore { store in
            _ = try await store.tenants.updateSettings(tenant: store.tenant.id, TenantSettings(runsPerSecond: 0.01, runBurst: 10))
            let servers = [
                RunRateLimiter(database: store.database, defaultRate: nil, defaultBurst: nil),
                RunRateLimiter(database: store.database, defaultRate: 50, defaultBurst: 100),
            ]
            let decisions = try await withThrowingTaskGroup(of: RunRateLimiter.Decision.self) { group in
                for index in 0..<60 {
                    group.addTask { try await servers[index % 2].acquire(tenant: store.tenant.id) }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(decisions.filter { $0 == .allowed }.count == 10)
            for case .limited(let wait) in decisions {
                // One token takes 100 s at 0.01/s; a fraction of one may have refilled.
                #expect(wait > .seconds(90) && wait <= .seconds(100))
            }
        }
    }

    @Test("a tenant without limits is never refused, and the server's default applies to tenants without their own")
    func defaults() async throws {
        try await withTestStore { store in
            let unlimited = RunRateLimiter(database: store.database, defaultRate: nil, defaultBurst: nil)
            for _ in 0..<20 { #expect(try await unlimited.acquire(tenant: store.tenant.id) == .allowed) }
            let limited = RunRateLimiter(database: store.database, defaultRate: 0.5, defaultBurst: 3)
            var allowed = 0
            for _ in 0..<6 where try await limited.acquire(tenant: store.tenant.id) == .allowed { allowed += 1 }
            #expect(allowed == 3)
        }
    }

    @Test("draws of three tenants batched together on two servers: each tenant gets exactly its own burst, in arrival order")
    func batchedDrawsOfManyTenants() async throws {
        try await withTestStore { store in
            var tenants = [store.tenant.id]
            for index in 0..<2 {
                tenants.append(try await store.tenants.createTenant(name: "other-\(index)-\(UUID().uuidString.prefix(6))").0.id)
            }
            for (index, tenant) in tenants.enumerated() {
                _ = try await store.tenants.updateSettings(tenant: tenant, TenantSettings(runsPerSecond: 0.01, runBurst: 3 + index))
            }
            let servers = [
                RunRateLimiter(database: store.database, defaultRate: nil, defaultBurst: nil),
                RunRateLimiter(database: store.database, defaultRate: nil, defaultBurst: nil),
            ]
            let decisions = try await withThrowingTaskGroup(of: (UUID, RunRateLimiter.Decision).self) { group in
                for index in 0..<90 {
                    let tenant = tenants[index % 3]
                    group.addTask { (tenant, try await servers[index % 2].acquire(tenant: tenant)) }
                }
                return try await group.reduce(into: [(UUID, RunRateLimiter.Decision)]()) { $0.append($1) }
            }
            for (index, tenant) in tenants.enumerated() {
                #expect(decisions.filter { $0.0 == tenant && $0.1 == .allowed }.count == 3 + index)
            }
            // The next draw after the bursts is refused for every one of them.
            for tenant in tenants {
                guard case .limited(let wait) = try await servers[0].acquire(tenant: tenant) else {
                    Issue.record("a drained bucket allowed a run")
                    continue
                }
                #expect(wait > .seconds(90) && wait <= .seconds(100))
            }
        }
    }
}
