import Testing

@testable import SwitchyardCore

@Suite struct WorkflowGraphTests {
    func step(_ id: String, _ needs: [String] = [], _ template: String = "x") throws -> StepSpec {
        StepSpec(id: id, needs: needs, kind: .transform(try Template(parsing: template)))
    }

    @Test func dependentsUpstreamAndTopologicalOrder() throws {
        let w = WorkflowSpec(
            name: "g",
            steps: [
                try step("d", ["b", "c"]), try step("b", ["a"]), try step("a"), try step("c", ["a"]),
            ])
        #expect(w.dependents["a"] == ["b", "c"])
        #expect(w.dependents["d"] == [])
        #expect(w.upstream(of: "d") == ["a", "b", "c"])
        #expect(w.upstream(of: "a") == [])
        #expect(w.topologicalOrder() == ["a", "b", "c", "d"])
    }

    @Test func cyclesDoNotHang() throws {
        let w = WorkflowSpec(name: "g", steps: [try step("a", ["b"]), try step("b", ["a"]), try step("c")])
        #expect(w.upstream(of: "a") == ["a", "b"])
        #expect(w.topologicalOrder() == ["c"])
    }

    @Test func referencedStepsCoverEveryTemplateOfAStep() throws {
        let inner = StepKind.model(ModelStepSpec(prompt: try Template(parsing: "{{ item }} {{ steps.p.output }}")))
        let s = StepSpec(
            id: "m", condition: try Template(parsing: "{{ steps.c.output }}"),
            kind: .map(MapStepSpec(over: try Template(parsing: "{{ steps.o.output }}"), step: inner)))
        #expect(s.referencedSteps == ["c", "o", "p"])
        let tool = StepSpec(id: "t", kind: .tool(ToolStepSpec(tool: "x", with: ["q": "{{ steps.w.output }}"])))
        #expect(tool.referencedSteps == ["w"])
        let model = StepSpec(
            id: "m2",
            kind: .model(
                ModelStepSpec(
                    prompt: .literal("hi"), model: try Template(parsing: "{{ steps.k.output.difficulty == 'hard' ? 'pro' : 'flash' }}"))))
        #expect(model.referencedSteps == ["k"])
    }
}
