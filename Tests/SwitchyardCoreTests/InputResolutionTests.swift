import Testing

@testable import SwitchyardCore

@Suite struct InputResolutionTests {
    let workflow = WorkflowSpec(
        name: "w",
        inputs: [
            InputSpec(name: "ticket", type: .string, required: true),
            InputSpec(name: "tier", type: .string, defaultValue: "standard"),
            InputSpec(name: "count", type: .integer),
            InputSpec(name: "ratio", type: .number),
            InputSpec(name: "items", type: .array),
        ],
        steps: [StepSpec(id: "a", kind: .transform(.literal("x")))])

    @Test func appliesDefaultsAndKeepsGivenValues() throws {
        let resolved = try workflow.resolveInputs(["ticket": "help", "ratio": 2])
        #expect(resolved == ["ticket": "help", "tier": "standard", "ratio": 2])
    }

    @Test func integerAcceptsIntegralNumbersAndNormalizesThem() throws {
        #expect(try workflow.resolveInputs(["ticket": "t", "count": 3.0])["count"] == 3)
    }

    @Test func reportsEveryProblemAtOnce() throws {
        #expect {
            try workflow.resolveInputs(["count": 1.5, "ratio": "high", "bogus": 1])
        } throws: { error in
            guard let e = error as? InputValidationError else { return false }
            let byPath = Dictionary(uniqueKeysWithValues: e.details.map { ($0.path, $0.message) })
            return e.details.count == 4
                && byPath["ticket"] == "required input is missing"
                && byPath["count"] == "expected integer, got number"
                && byPath["ratio"] == "expected number, got string"
                && byPath["bogus"]?.hasPrefix("unknown input") == true
        }
    }

    @Test func nullMeansNoInputAndOtherNonObjectsAreRejected() throws {
        let optional = WorkflowSpec(name: "w", inputs: [InputSpec(name: "x", type: .boolean, defaultValue: false)], steps: workflow.steps)
        #expect(try optional.resolveInputs(.null) == ["x": false])
        #expect(throws: InputValidationError.self) { try optional.resolveInputs("text") }
    }
}
