import ArgumentParser
import Foundation
import NIOHTTP1
import SwitchyardAPI
import SwitchyardCore
import SwitchyardMetering

// `yard plan`: a run's cost range before it runs. The plan's body is read as JSON
// values until its planner (moving into the engine) has a wire type.

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
        let body = try await client.client().send(.POST, APIPath.v1("workflows", workflow, "plan"), body: APIStartRunRequest(input: object)).body
        if client.output == .json { return Print.json(body) }
        func range(_ low: JSONValue?, _ high: JSONValue?) -> (String, String) {
            guard let low = CostText.money(low), let high = CostText.money(high) else { return ("unpriced", "unpriced") }
            return (CostText.usdDown(low), CostText.usdUp(high))
        }
        var table = Table(headers: ["STEP", "EXPERTS", "CALLS", "MIN USD", "MAX USD"])
        var explained: [String] = []
        for step in body["steps"]?.arrayValue ?? [] {
            let name = step["step"]?.stringValue ?? "?"
            var experts = (step["experts"]?.arrayValue ?? []).compactMap(\.stringValue).joined(separator: ", ")
            if let expected = step["expected_expert"]?.stringValue { experts += " (expects \(expected))" }
            let calls = "\(step["calls"]?["min"]?.intValue ?? 0)–\(step["calls"]?["max"]?.intValue ?? 0)"
            let (low, high) = range(step["min_usd"], step["max_usd"])
            table.rows.append([name, experts.isEmpty ? "-" : experts, calls, low, high])
            let notes = (step["notes"]?.arrayValue ?? []).compactMap(\.stringValue)
            if !notes.isEmpty {
                explained.append("  \(name):")
                explained += notes.map { "      \($0)" }
            }
        }
        let (low, high) = range(body["min_usd"], body["max_usd"])
        table.rows.append(["TOTAL", "", "", low, high])
        print("plan for \(body["workflow"]?.stringValue ?? workflow)")
        print("")
        print(table.render())
        if body["unpriced"]?.boolValue == true {
            print("")
            print("some steps run models without a price: the run's cost is unknown (yard prices set adds a price)")
        }
        if !explained.isEmpty {
            print("")
            print("how:")
            for line in explained { print(line) }
        }
        let notes = (body["notes"]?.arrayValue ?? []).compactMap(\.stringValue)
        if !notes.isEmpty {
            print("")
            print("assumptions:")
            for line in notes { print("  \(line)") }
        }
    }
}
