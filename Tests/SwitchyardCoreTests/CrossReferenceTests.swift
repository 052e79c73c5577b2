import Foundation
import Testing

@testable import SwitchyardCore

@Suite struct CrossReferenceTests {
    @Test func anUnknownAgentIsReportedAtTheAgentValue() throws {
        let error = try #require(
            validateError(
                """
                kind: Workflow
                name: w
                steps:
                  - id: a
                    agent: nobody
                    prompt: hi
                """))
        #expect(error.code == .invalidResource)
        let found = try #require(issue(error, "unknown agent 'nobody'"))
        #expect((found.file, found.line, found.column, found.path) == ("test.yaml", 5, 12, "steps[0].agent"))
    }

    @Test func agentsComeFromTheBatchOrTheCatalog() throws {
        let yaml = "kind: Workflow\nname: w\nsteps:\n  - id: a\n    agent: helper\n    prompt: hi\n"
        let catalog = ResourceCatalog(agents: ["helper": AgentSpec(name: "helper", instructions: "x")])
        #expect(validateError(yaml, catalog: catalog) == nil)
        #expect(validateError("kind: Agent\nname: helper\ninstructions: x\n---\n" + yaml) == nil)
    }

    @Test func theBatchWinsOverTheCatalogForTheSameName() throws {
        let yaml = "kind: Agent\nname: helper\ninstructions: x\n---\nkind: Workflow\nname: w\nsteps:\n  - id: a\n    agent: helper\n    prompt: hi\n"
        let stored = ResourceCatalog(
            agents: ["helper": AgentSpec(name: "helper", instructions: "old", tools: ["search"])],
            tools: ["search": ToolSpec(name: "search", http: HTTPToolSpec(url: "https://x"))])
        #expect(validateError(yaml, catalog: stored) == nil)
        let onlyWorkflow = "kind: Workflow\nname: w\nsteps:\n  - id: a\n    agent: helper\n    prompt: hi\n"
        #expect(validateError(onlyWorkflow, catalog: stored) == nil)
    }

    @Test func builtInToolsNeedNoResourceAndTheirNamesAreReserved() throws {
        #expect(validateError("kind: Agent\nname: helper\ninstructions: x\ntools: [current_time, json_query, http_get]\n") == nil)
        #expect(validateError("kind: Workflow\nname: w\nsteps:\n  - id: now\n    tool: current_time\n") == nil)
        let error = try #require(validateError("kind: Tool\nname: http_get\nhttp: { url: \"https://x\" }\n"))
        let found = try #require(issue(error, "'http_get' is the name of a built-in tool"))
        #expect(found.path == "name")
    }

    @Test func agentToolsMustExistButAgentsWithToolsCanBeStored() throws {
        let error = try #require(
            validateError(
                "kind: Agent\nname: helper\ninstructions: x\ntools: [search, nope]\n",
                catalog: ResourceCatalog(tools: ["search": ToolSpec(name: "search")])))
        let found = try #require(issue(error, "unknown tool 'nope'"))
        #expect((found.line, found.column, found.path) == (4, 17, "tools[1]"))
        #expect(error.issues.count == 1)
        #expect(
            validateError(
                "kind: Agent\nname: helper\ninstructions: x\ntools: search\n", catalog: ResourceCatalog(tools: ["search": ToolSpec(name: "search")]))
                == nil)
    }

    @Test func toolStepsInsideAMapMustNameAKnownTool() throws {
        #expect(
            validateError(
                """
                kind: Tool
                name: search
                http: { url: "https://kb.example.com" }
                ---
                kind: Workflow
                name: w
                steps:
                  - id: each
                    map:
                      over: "{{ inputs.q }}"
                      step: { tool: search, with: { query: "{{ item }}" } }
                inputs:
                  q: { type: array }
                """) == nil)
        let error = try #require(
            validateError(
                """
                kind: Workflow
                name: w
                steps:
                  - id: each
                    map:
                      over: "{{ inputs.q }}"
                      step: { tool: search, with: { query: "{{ item }}" } }
                inputs:
                  q: { type: array }
                """))
        let found = try #require(issue(error, "unknown tool 'search'"))
        #expect((found.line, found.column, found.path) == (7, 21, "steps[0].map.step.tool"))
        #expect(error.issues.count == 1)
    }

    @Test func unknownToolInAToolStepIsReported() throws {
        let error = try #require(validateError("kind: Workflow\nname: w\nsteps:\n  - id: a\n    tool: ghost\n"))
        let found = try #require(issue(error, "unknown tool 'ghost'"))
        #expect((found.line, found.column) == (5, 11))
    }

    @Test func childWorkflowsMustExistAndNotBeTheWorkflowItself() throws {
        let child = "kind: Workflow\nname: w\nsteps:\n  - id: a\n    workflow: w\n    with: { x: \"{{ inputs }}\" }\n  - id: b\n    workflow: other\n"
        let error = try #require(validateError(child))
        #expect(issue(error, "cannot start itself")?.line == 5)
        #expect(issue(error, "unknown workflow 'other'")?.line == 8)
        #expect(
            validateError(child.replacingOccurrences(of: "workflow: w\n", with: "workflow: other\n"), catalog: ResourceCatalog(workflows: ["other"]))
                == nil)
    }

    @Test func duplicateNamesAcrossFilesAreRejected() throws {
        let loader = ResourceLoader()
        let a = try loader.load("kind: Agent\nname: x\ninstructions: a\n", file: "a.yaml")
        let b = try loader.load("kind: Agent\nname: x\ninstructions: b\n", file: "b.yaml")
        #expect {
            try loader.validate(a + b, catalog: .empty)
        } throws: { error in
            let issue = (error as? ResourceValidationError)?.issues.first
            return issue?.file == "b.yaml" && issue?.line == 2 && issue?.message.contains("already defined at a.yaml:2:7") == true
        }
    }
}

@Suite struct ResourceDetailTests {
    @Test func blockScalarsAndPlainTextMayContainYAMLIndicators() throws {
        var instructions = ""
        for i in 0..<150 { instructions += "  *note \(i)* use [brackets], {braces}, it's & fine: #\(i)\n" }
        let yaml =
            "kind: Agent\nname: writer\ninstructions: |\n" + instructions
            + "model: pro\n---\nkind: Workflow\nname: w\nsteps:\n  - id: a\n    prompt: it's *fine* [really\n"
        let docs = try ResourceLoader().load(yaml, file: "b.yaml")
        guard case .agent(let agent) = docs.first?.resource else {
            Issue.record("expected an agent")
            return
        }
        #expect(agent.model == "pro")
        #expect(agent.instructions.hasPrefix("*note 0* use [brackets]"))
    }

    @Test func quotedScalarsAreAlwaysStrings() throws {
        let error = loadError("kind: Agent\nname: \"a1\"\ninstructions: '123'\nmax_turns: \"6\"\n")
        let found = try #require(issue(error, "expected an integer from 1 to 50, got a string"))
        #expect((found.line, found.column) == (4, 12))
        #expect(error?.issues.count == 1)
    }

    @Test func toolsAreChecked() throws {
        let error = loadError(
            """
            kind: Tool
            name: t
            http:
              method: FETCH
              url: "kb.example.com/{{ secrets.KEY }}"
              headers: { X-Key: "{{ secrets.KEY }}", X-Count: 5 }
              timeout: soon
            parameters: { type: object, required: query }
            """)
        #expect(issue(error, "unknown HTTP method 'FETCH'")?.line == 4)
        #expect(issue(error, "'secrets' can only be used in tool http headers")?.column == 27)
        #expect(issue(error, "the url must start with http:// or https://") != nil)
        #expect(issue(error, "expected a header value string, got an integer")?.column == 51)
        #expect(issue(error, "invalid duration 'soon'")?.line == 7)
        #expect(issue(error, "required must be a list of property names")?.column == 39)
    }

    @Test func agentsAreChecked() throws {
        let error = loadError("kind: Agent\nname: a\nmodel: gpt\nmax_turns: 99\n")
        #expect(issue(error, "an agent needs instructions")?.line == 1)
        #expect(issue(error, "unknown model 'gpt'")?.column == 8)
        #expect(issue(error, "must be from 1 to 50, got 99") != nil)
    }

    @Test func modelStepOptionsAreChecked() throws {
        let error = loadError(
            """
            kind: Workflow
            name: w
            steps:
              - id: a
                prompt: hi
                model: "gpt 4"
                max_tokens: 0
                on_error: ignore
              - id: b
                wait_for: "bad signal"
            """)
        #expect(issue(error, "invalid model 'gpt 4'")?.line == 6)
        #expect(issue(error, "must be from 1 to 1000000, got 0")?.line == 7)
        #expect(issue(error, "unknown on_error 'ignore'")?.line == 8)
        #expect(issue(error, "invalid signal name 'bad signal'")?.line == 10)
    }

    @Test func compiledWorkflowsRoundTripThroughJSON() throws {
        let docs = try ResourceLoader().load(designExample, file: "example.yaml")
        guard case .workflow(let workflow) = docs.last?.resource else {
            Issue.record("expected a workflow")
            return
        }
        let data = try JSONEncoder().encode(workflow)
        let decoded = try JSONDecoder().decode(WorkflowSpec.self, from: data)
        #expect(decoded == workflow)
    }
}

@Suite struct GateHintTests {
    @Test func modelStepsDeclareDifficultyAndCascadeChecksOverTheirOutput() throws {
        let docs = try ResourceLoader().loadAndValidate(
            """
            kind: Workflow
            name: w
            inputs: { q: { type: string } }
            steps:
              - id: answer
                model: cascade
                difficulty: hard
                prompt: "{{ inputs.q }}"
                check: "{{ output | length > 0 }}"
                verify: "Does this answer {{ inputs.q }}? {{ output }}"
            """, file: "w.yaml", catalog: .empty)
        guard case .workflow(let w) = docs[0].resource, case .model(let m) = w.steps[0].kind else {
            Issue.record("expected a model step")
            return
        }
        #expect(m.difficulty == .hard)
        #expect(try m.check?.evaluate(TemplateScope(inputs: [:], extra: ["output": "yes"])) == .bool(true))
        #expect(m.verify != nil)
    }

    @Test func outputIsOnlyBoundInChecksAndDifficultyIsAnEnum() throws {
        let error = try #require(
            validateError(
                """
                kind: Workflow
                name: w
                steps:
                  - id: answer
                    prompt: "{{ output }}"
                    difficulty: extreme
                """))
        #expect(issue(error, "unknown variable 'output'") != nil)
        #expect(issue(error, "unknown difficulty 'extreme': expected easy, medium, hard") != nil)
    }
}
