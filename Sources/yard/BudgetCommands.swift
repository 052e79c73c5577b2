import ArgumentParser
import Foundation
import NIOHTTP1
import SwitchyardAPI
import SwitchyardCore
import SwitchyardMetering
import SwitchyardStore

// `yard budgets …`: monthly budgets per tenant.

/// `--on-budget fail|downgrade` takes the values the server knows (the store's own enum).
extension BudgetPolicy: ExpressibleByArgument {}

struct Budgets: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Monthly budgets per tenant: model calls that would take spend past the limit are refused before they are sent.",
        subcommands: [SetBudget.self, Show.self, Clear.self])

    static func printBudget(_ budget: APIBudget) {
        let spent = CostText.money(budget.spentUSD) ?? .zero
        let reserved = CostText.money(budget.reservedUSD) ?? .zero
        guard let limit = CostText.money(budget.monthlyUSD) else {
            print("no budget (spending is not limited)")
            print("spent this month: \(CostText.usd(spent)) USD")
            print("reserved:         \(CostText.usd(reserved)) USD (calls in flight)")
            return
        }
        print("monthly budget:   \(limit.formatted(decimals: 2)) USD (on budget: \(budget.onBudget ?? "fail"))")
        print("spent this month: \(CostText.usd(spent)) USD (\(CostText.percent(spent.picoUSD, of: limit.picoUSD)))")
        print("reserved:         \(CostText.usd(reserved)) USD (calls in flight)")
        if let committed = try? spent.adding(reserved), let left = try? limit.subtracting(committed) {
            print("remaining:        \(CostText.usd(left.isNegative ? .zero : left)) USD")
        }
    }

    struct SetBudget: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "set", abstract: "Set a tenant's monthly budget (admin key).")
        @Option(help: "The tenant id.") var tenant: String
        @Option(help: "The limit per calendar month (UTC) in USD, as decimal text: 25.00.") var monthly: String
        @Option(
            name: .customLong("on-budget"),
            help: "When a call does not fit: fail (the step fails with budget_exceeded) or downgrade (pro becomes flash).")
        var onBudget: BudgetPolicy?
        @OptionGroup var admin: AdminOptions
        @OptionGroup var client: ClientOptions

        func validate() throws {
            let amount: Money
            do throws(MeteringError) {
                amount = try Money(parsing: monthly)
            } catch {
                throw ValidationError("--monthly: \(error.message)")
            }
            if amount.isNegative { throw ValidationError("--monthly must not be negative") }
        }

        func run() async throws {
            let response = try await client.client(admin: true, adminKey: admin.adminKey)
                .send(
                    .PUT, APIPath.v1("admin", "tenants", tenant, "budget"),
                    body: APISetBudgetRequest(monthlyUSD: monthly, onBudget: onBudget?.rawValue))
            let budget = try response.decode(APIBudgetEnvelope.self).budget
            if client.output == .json { return Print.json(response.body) }
            Budgets.printBudget(budget)
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show a budget and this month's spend: your own with a tenant key, or --tenant's with the admin key.")
        @Option(help: "The tenant id (admin key).") var tenant: String?
        @OptionGroup var admin: AdminOptions
        @OptionGroup var client: ClientOptions

        func run() async throws {
            let response: APIClient.Response
            if let tenant {
                response = try await client.client(admin: true, adminKey: admin.adminKey).send(.GET, APIPath.v1("admin", "tenants", tenant, "budget"))
            } else {
                response = try await client.client().send(.GET, APIPath.v1("budget"))
            }
            let budget = try response.decode(APIBudgetEnvelope.self).budget
            if client.output == .json { return Print.json(response.body) }
            Budgets.printBudget(budget)
        }
    }

    struct Clear: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Remove a tenant's budget (admin key).")
        @Option(help: "The tenant id.") var tenant: String
        @OptionGroup var admin: AdminOptions
        @OptionGroup var client: ClientOptions

        func run() async throws {
            _ = try await client.client(admin: true, adminKey: admin.adminKey).send(.DELETE, APIPath.v1("admin", "tenants", tenant, "budget"))
            if client.output == .json { return Print.json(["budget": .null]) }
            print("budget of tenant \(tenant) removed")
        }
    }
}
