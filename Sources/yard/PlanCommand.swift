import ArgumentParser
import Foundation
import NIOHTTP1
import SwitchyardAPI
import SwitchyardCore
import SwitchyardMetering

/// `yard plan`: a run's cost range before it runs.
struct Plan: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Estimate a run's cost range before it runs: per model step, its experts, calls and min–max USD.",
        discussion: """
            min: the fewest calls with small prompts, all cache hits, at the cheapest rates; max: the runtime's
            reservation bound (prompt bytes × the highest input rate + max_tokens × the highest output rate, peak
            included) over every retry, agent turn and cascade escalation. A model without a price is 'unpriced'.
            """)
    @Argument(help: "The workflow name.") var workflow: String
    @Option(help: "The run's input as a JSON object.") var input: String = "{}"
    @OptionGroup var client: ClientOptions

    func run() async throws {
        let object = try inputObject(input)
        let response = try await client.client().send(.POST, APIPath.v1("workflows", workflow, "plan"), body: APIStartRunRequest(input: object))
        if client.output == .json { return Print.json(response.body) }
        let plan = try response.decode(APIPlan.self)
        func range(_ low: String?, _ high: String?) -> (String, String) {
            guard let low = CostText.money(low), let high = CostText.money(high) else { return ("unpriced", "unpriced") }
            return (CostText.usdDown(low), CostText.usdUp(high))
        }
        var table = Table(headers: ["STEP", "EXPERTS", "CALLS", "MIN USD", "MAX USD"])
        var explained: [String] = []
        for step in plan.steps {
            var experts = step.experts.joined(separator: ", ")
            if let expected = step.expectedExpert { experts += " (expects \(expected))" }
            let (low, high) = range(step.minUSD, step.maxUSD)
            table.rows.append([step.step, experts.isEmpty ? "-" : experts, "\(step.calls.min)–\(step.calls.max)", low, high])
            if !step.notes.isEmpty {
                explained.append("  \(step.step):")
                explained += step.notes.map { "      \($0)" }
            }
        }
        let (low, high) = range(plan.minUSD, plan.maxUSD)
        table.rows.append(["TOTAL", "", "", low, high])
        print("plan for \(plan.workflow)")
        print("")
        print(table.render())
        if plan.unpriced {
            print("")
            print("some steps run models without a price: the run's cost is unknown (yard prices set adds a price)")
        }
        if !explained.isEmpty {
            print("")
            print("how:")
            for line in explained { print(line) }
        }
        if !plan.notes.isEmpty {
            print("")
            print("assumptions:")
            for line in plan.notes { print("  \(line)") }
        }
    }
}
