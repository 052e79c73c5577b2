import Testing

@testable import SwitchyardCore

/// Loads `yaml` and returns the error, or nil when it loaded.
func loadError(_ yaml: String, file: String = "test.yaml", limits: ResourceLimits = .default) -> ResourceValidationError? {
    do {
        _ = try ResourceLoader(limits: limits).load(yaml, file: file)
        return nil
    } catch {
        return error
    }
}

func validateError(_ yaml: String, catalog: ResourceCatalog = .empty) -> ResourceValidationError? {
    do {
        _ = try ResourceLoader().loadAndValidate(yaml, file: "test.yaml", catalog: catalog)
        return nil
    } catch {
        return error
    }
}

/// The first issue whose message contains `text`.
func issue(_ error: ResourceValidationError?, _ text: String) -> ValidationIssue? {
    error?.issues.first { $0.message.contains(text) }
}

@Suite struct ResourceLoaderTests {
    @Test func unknownKeyIsReportedAtTheKeyWithTheAllowedKeys() throws {
        let error = loadError(
            """
            kind: Workflow
            name: w
            steps:
              - id: a
                promt: "hi"
                transform: "x"
            """)
        let found = try #require(issue(error, "unknown key 'promt'"))
        #expect(error?.code == .invalidResource)
        #expect((found.line, found.column) == (5, 5))
        #expect(found.path == "steps[0].promt")
        #expect(found.message.contains("allowed keys: id, needs, if"))
        #expect(found.file == "test.yaml")
    }

    @Test func unknownTopLevelKeyIsReported() throws {
        let found = try #require(issue(loadError("kind: Agent\nname: a\ninstructions: hi\ncolour: red\n"), "unknown key 'colour'"))
        #expect((found.line, found.column, found.path) == (4, 1, "colour"))
    }

    @Test func wrongTypeIsReportedAtTheValue() throws {
        let error = loadError(
            """
            kind: Workflow
            name: w
            steps:
              - id: a
                transform: "x"
              - id: b
                needs: {a: 1}
                transform: "y"
            """)
        let found = try #require(issue(error, "expected a list of step ids, got a mapping"))
        #expect((found.line, found.column, found.path) == (7, 12, "steps[1].needs"))
    }

    @Test func duplicateStepIdIsReportedAtTheSecondId() throws {
        let error = loadError(
            """
            kind: Workflow
            name: w
            steps:
              - id: a
                transform: "x"
              - id: a
                transform: "y"
            """)
        let found = try #require(issue(error, "duplicate step id 'a'"))
        #expect((found.line, found.column, found.path) == (6, 9, "steps[1].id"))
        #expect(found.message.contains("line 4"))
    }

    @Test func needsNamingAnUnknownStepIsReportedAtTheEntry() throws {
        let error = loadError(
            """
            kind: Workflow
            name: w
            steps:
              - id: a
                transform: "x"
              - id: b
                needs: [a, nope]
                transform: "y"
            """)
        let found = try #require(issue(error, "unknown step 'nope' in needs"))
        #expect((found.line, found.column, found.path) == (7, 16, "steps[1].needs[1]"))
    }

    @Test func aStepNeedingItselfIsRejected() throws {
        let found = try #require(
            issue(loadError("kind: Workflow\nname: w\nsteps:\n  - id: a\n    needs: a\n    transform: x\n"), "cannot need itself"))
        #expect((found.line, found.column) == (5, 12))
    }

    @Test func aCycleIsReportedOnTheStepThatClosesItWithThePath() throws {
        let error = loadError(
            """
            kind: Workflow
            name: w
            steps:
              - id: a
                needs: [c]
                transform: "x"
              - id: b
                needs: [a]
                transform: "y"
              - id: c
                needs: [b]
                transform: "z"
            """)
        let found = try #require(issue(error, "dependency cycle"))
        #expect(found.message == "dependency cycle: a -> c -> b -> a")
        #expect((found.line, found.column, found.path) == (8, 13, "steps[1].needs[0]"))
        #expect(error?.issues.filter { $0.message.contains("cycle") }.count == 1)
    }

    @Test func aTemplateReadingAStepThatIsNotUpstreamIsRejectedAtTheReference() throws {
        let error = loadError(
            """
            kind: Workflow
            name: w
            steps:
              - id: a
                transform: "{{ steps.b.output }}"
              - id: b
                transform: "x"
              - id: c
                needs: [b]
                prompt: Use {{ steps.b.output }} and {{ steps.a.output }}
            """)
        let found = try #require(issue(error, "reads steps.b"))
        #expect(found.message.contains("'b' is not upstream of it: add 'b' to its needs"))
        // The double-quoted scalar starts at column 16; the reference is at offset 3 of its text.
        #expect((found.line, found.column, found.path) == (5, 20, "steps[0].transform"))
        let plain = try #require(issue(error, "reads steps.a"))
        // Plain scalar at column 13; `steps.a` at offset 32.
        #expect((plain.line, plain.column) == (10, 45))
        #expect(error?.issues.count == 2)
    }

    @Test func templateSyntaxErrorsPointIntoTheScalar() throws {
        let error = loadError(
            """
            kind: Workflow
            name: w
            steps:
              - id: a
                prompt: 'Hi {{ inputs.x = 1 }}'
            """)
        let found = try #require(issue(error, "invalid template"))
        #expect(found.message.contains("'=='"))
        // Quote at column 13, text offset 15 for '='.
        #expect((found.line, found.column) == (5, 29))
    }

    @Test func templatesMayOnlyUseDeclaredInputsAndKnownRoots() throws {
        let error = loadError(
            """
            kind: Workflow
            name: w
            inputs:
              ticket: { type: string }
            steps:
              - id: a
                prompt: "{{ inputs.tikcet }} {{ secrets.KEY }} {{ env.HOME }} {{ run.owner }} {{ item }}"
            outputs:
              out: "{{ steps.zz.output }}"
            """)
        #expect(issue(error, "unknown input 'tikcet'; declared inputs: ticket")?.column == 17)
        #expect(issue(error, "'secrets' can only be used in tool http headers")?.column == 37)
        #expect(issue(error, "unknown variable 'env'") != nil)
        #expect(issue(error, "unknown field 'run.owner'") != nil)
        #expect(issue(error, "unknown variable 'item'") != nil)
        let output = try #require(issue(error, "unknown step 'zz'"))
        #expect((output.line, output.path) == (9, "outputs.out"))
    }

    @Test func aMapInnerStepMayUseItsItemName() throws {
        let docs = try ResourceLoader().load(
            """
            kind: Workflow
            name: w
            inputs:
              items: { type: array, required: true }
            steps:
              - id: tag
                map:
                  over: "{{ inputs.items }}"
                  as: ticket
                  concurrency: 8
                  step: { model: flash, prompt: "Tag {{ ticket }}" }
              - id: count
                needs: [tag]
                transform: "{{ steps.tag.output | length }}"
            """, file: "m.yaml")
        guard case .workflow(let w) = docs.first?.resource, case .map(let m) = w.steps.first?.kind else {
            Issue.record("expected a workflow with a map step")
            return
        }
        #expect(m.itemName == "ticket")
        #expect(m.concurrency == 8)
        #expect(w.steps[1].referencedSteps == ["tag"])

        let error = loadError(
            """
            kind: Workflow
            name: w
            steps:
              - id: tag
                map:
                  over: "{{ inputs.items }}"
                  step: { id: x, map: {} }
            """)
        #expect(issue(error, "unknown key 'id' in a map's inner step ('id' belongs on the map step")?.column == 15)
        #expect(issue(error, "unknown key 'map' in a map's inner step") != nil)
    }

    @Test func exactlyOneKindKeyPerStep() throws {
        let error = loadError(
            """
            kind: Workflow
            name: w
            steps:
              - id: a
                prompt: hi
                tool: search
              - id: b
                agent: helper
              - id: c
                transform: x
                with: { a: 1 }
                thinking: true
            """)
        #expect(issue(error, "this one has both 'prompt' and 'tool'")?.line == 6)
        #expect(
            issue(error, "a step needs exactly one of prompt, tool, map, transform, workflow, wait_for (an agent step needs a prompt)")?.line == 7)
        #expect(issue(error, "'with' only applies to tool and workflow steps")?.line == 11)
        #expect(issue(error, "'thinking' only applies to model steps")?.line == 12)
    }

    @Test func badDurationIsReportedAtTheValue() throws {
        let error = loadError(
            """
            kind: Workflow
            name: w
            timeout: 1h
            steps:
              - id: a
                wait_for: approval
                timeout: 5x
                retry: { max_attempts: 0, initial: 2s }
            """)
        let found = try #require(issue(error, "invalid duration '5x'"))
        #expect((found.line, found.column, found.path) == (7, 14, "steps[0].timeout"))
        #expect(issue(error, "must be from 1 to 100, got 0")?.column == 28)
    }

    @Test func badKindIsReportedAtTheKindValue() throws {
        let error = loadError("kind: Workflw\nname: w\n")
        let found = try #require(issue(error, "unknown kind 'Workflw'"))
        #expect((found.line, found.column, found.path) == (1, 7, "kind"))
        #expect(found.message.contains("Workflow, Agent, Tool"))
        let missing = try #require(issue(loadError("name: w\n"), "a document needs 'kind"))
        #expect((missing.line, missing.column) == (1, 1))
    }

    @Test func yesNoOnOffStayStrings() throws {
        let docs = try ResourceLoader().load(
            """
            kind: Workflow
            name: w
            inputs:
              answer: { type: string, default: yes }
              other: { type: string, default: off }
              flag: { type: boolean, default: false }
              quoted: { type: string, default: "true" }
            steps:
              - id: a
                wait_for: on
            """, file: "y.yaml")
        guard case .workflow(let w) = docs.first?.resource else {
            Issue.record("expected a workflow")
            return
        }
        #expect(w.inputs.map(\.defaultValue) == ["yes", "off", false, "true"])
        #expect(w.steps.first?.kind == .waitFor(WaitForSpec(signal: "on")))

        let error = loadError("kind: Workflow\nname: w\nsteps:\n  - id: a\n    prompt: x\n    thinking: yes\n")
        let found = try #require(issue(error, "expected true or false, got a string"))
        #expect((found.line, found.column) == (6, 15))
        #expect(found.message.contains("'yes' is a string here"))
    }

    @Test func defaultsMustMatchTheInputType() throws {
        let error = loadError(
            """
            kind: Workflow
            name: w
            inputs:
              n: { type: integer, default: many }
              t: { type: strng }
              both: { type: string, required: true, default: x }
            steps:
              - id: a
                transform: x
            """)
        #expect(issue(error, "the default must be integer, got a string")?.column == 32)
        #expect(issue(error, "unknown input type 'strng'")?.column == 14)
        #expect(issue(error, "remove 'required: true' or the default") != nil)
    }

    @Test func secondDocumentLinesCountFromTheStartOfTheFile() throws {
        let error = loadError(
            """
            kind: Agent
            name: helper
            instructions: Be brief.
            ---
            # the workflow
            kind: Workflow
            name: w
            steps:
              - id: a
                transform: x
                bogus: 1
            """)
        let found = try #require(issue(error, "unknown key 'bogus'"))
        #expect((found.line, found.column) == (11, 5))
    }

    @Test func eachDocumentKeepsItsOwnSourceAndStart() throws {
        let text = """
            # leading comment
            kind: Agent
            name: helper
            instructions: Be brief.
            ---
            ---
            kind: Tool
            name: search
            http: { url: "https://kb.example.com/search" }
            ...

            """
        let docs = try ResourceLoader().load(text, file: "two.yaml")
        #expect(docs.map(\.name) == ["helper", "search"])
        #expect(docs[0].location == SourceLocation(file: "two.yaml", line: 1, column: 1))
        #expect(docs[0].source == "# leading comment\nkind: Agent\nname: helper\ninstructions: Be brief.\n")
        #expect(docs[1].location.line == 7)
        #expect(docs[1].source == "kind: Tool\nname: search\nhttp: { url: \"https://kb.example.com/search\" }\n")
        #expect(docs[1].location(of: "http.url").line == 9)
    }

    @Test func duplicateResourcesInOneFileAreRejected() throws {
        let found = try #require(
            issue(loadError("kind: Agent\nname: a\ninstructions: x\n---\nkind: Agent\nname: a\ninstructions: y\n"), "duplicate Agent 'a'"))
        #expect((found.line, found.column) == (6, 7))
    }

    @Test func namesAreLowercaseSlugs() throws {
        let found = try #require(issue(loadError("kind: Agent\nname: Support Agent\ninstructions: x\n"), "invalid agent name"))
        #expect((found.line, found.column) == (2, 7))
    }

    @Test func invalidOutputSchemaIsReportedAtTheSchemaNode() throws {
        let error = loadError(
            """
            kind: Workflow
            name: w
            steps:
              - id: a
                prompt: hi
                output: { type: object, properties: { c: { type: strin } } }
            """)
        let found = try #require(issue(error, "invalid JSON Schema: unknown type \"strin\""))
        #expect((found.line, found.column, found.path) == (6, 54, "steps[0].output.properties.c.type"))
    }

    @Test func everyProblemOfAFileIsReportedSortedAndCapped() throws {
        var yaml = "kind: Workflow\nname: w\nsteps:\n"
        for i in 0..<150 { yaml += "  - id: s\(i)\n    transform: x\n    oops: 1\n" }
        let error = try #require(loadError(yaml))
        #expect(error.issues.count == 100)
        #expect(error.message.contains("150 problems"))
        #expect(error.issues.map(\.line) == error.issues.map(\.line).sorted())
    }

    @Test func yamlSyntaxErrorsAreInvalidYAMLWithTheParsersPosition() throws {
        let error = try #require(loadError("kind: Workflow\nname: w\nsteps:\n  - id: a\n    prompt: \"unclosed\n"))
        #expect(error.code == .invalidYAML)
        #expect(error.issues.count == 1)
        #expect(error.issues.first?.line == 6)
        let bad = try #require(loadError("kind: Agent\nname: a\n  instructions: x\n"))
        #expect(bad.code == .invalidYAML)
        #expect((bad.issues.first?.line, bad.issues.first?.column) == (3, 15))
        let duplicated = try #require(loadError("kind: Agent\nname: a\nname: b\ninstructions: x\n"))
        #expect(duplicated.code == .invalidYAML)
        #expect(duplicated.issues.first?.message.contains("duplicate key 'name'") == true)
    }

    @Test func emptyDocumentsAreIgnored() throws {
        #expect(try ResourceLoader().load("---\n# nothing\n---\n", file: "e.yaml").isEmpty)
        #expect(try ResourceLoader().load("", file: "e.yaml").isEmpty)
    }

    @Test func mergeKeysAndAliasesWithinLimitsWork() throws {
        let docs = try ResourceLoader().load(
            """
            kind: Workflow
            name: w
            steps:
              - &base
                id: a
                prompt: hi
                model: flash
              - <<: *base
                id: b
                needs: [a]
            """, file: "merge.yaml")
        guard case .workflow(let w) = docs.first?.resource else {
            Issue.record("expected a workflow")
            return
        }
        #expect(w.steps.map(\.id) == ["a", "b"])
        #expect(w.steps[1].needs == ["a"])
    }
}

@Suite struct ResourceLimitTests {
    @Test func anOversizedFileIsRefusedAtLineOne() throws {
        let big = "kind: Agent\nname: a\ninstructions: " + String(repeating: "x", count: 1 << 20) + "\n"
        let error = try #require(loadError(big))
        #expect(error.code == .invalidResource)
        #expect((error.issues.first?.line, error.issues.first?.column) == (1, 1))
        #expect(error.message.contains("the limit is 1048576 bytes"))
    }

    @Test func deepFlowNestingIsRefusedWhereItGetsTooDeep() throws {
        let yaml = "kind: Tool\nname: t\nparameters: " + String(repeating: "[", count: 100) + String(repeating: "]", count: 100) + "\n"
        let error = try #require(loadError(yaml))
        #expect(error.code == .invalidResource)
        let found = try #require(issue(error, "nesting is deeper than 64 levels"))
        // Root mapping is level 1, so the 64th '[' (column 13 + 63) is level 65.
        #expect((found.line, found.column) == (3, 76))
    }

    @Test func deepBlockNestingIsRefused() throws {
        var yaml = "kind: Tool\nname: t\nparameters:\n"
        for depth in 1...80 { yaml += String(repeating: " ", count: depth) + "k\(depth):\n" }
        let found = try #require(issue(loadError(yaml), "nesting is deeper than 64 levels"))
        #expect(found.line == 67)
    }

    @Test func theDepthLimitIsConfigurable() throws {
        let yaml = "kind: Tool\nname: t\nhttp: {url: 'https://x'}\nparameters: {a: {b: {c: 1}}}\n"
        #expect(loadError(yaml) == nil)
        #expect(issue(loadError(yaml, limits: ResourceLimits(maxDepth: 3)), "deeper than 3") != nil)
    }

    @Test func aBillionLaughsDocumentIsRefusedQuickly() throws {
        let yaml = """
            kind: Tool
            name: lol
            http: { url: "https://x" }
            parameters:
              a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
              b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
              c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
              d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
              e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
              f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
              g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
              h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
              i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
            """
        let clock = ContinuousClock()
        var error: ResourceValidationError?
        let elapsed = clock.measure { error = loadError(yaml) }
        #expect(error?.code == .invalidResource)
        #expect(issue(error, "aliases expand more than 100 times") != nil)
        #expect(elapsed < .seconds(2))
    }

    @Test func moreThanTheAliasLimitIsRefusedAtTheFirstAliasOverIt() throws {
        var yaml = "kind: Tool\nname: t\nhttp: {url: 'https://x'}\nparameters:\n  x: &x 1\n  list:\n"
        for _ in 0..<101 { yaml += "    - *x\n" }
        let found = try #require(issue(loadError(yaml), "more than 100 aliases"))
        #expect((found.line, found.column) == (107, 7))
    }

    @Test func anAliasAsAMappingKeyIsRefused() throws {
        let found = try #require(issue(loadError("a: &k x\n*k : 1\n"), "alias cannot be used as a mapping key"))
        #expect((found.line, found.column) == (2, 1))
    }

    @Test func aWorkflowWithMoreThanAThousandStepsIsRefusedAtSteps() throws {
        var yaml = "kind: Workflow\nname: big\nsteps:\n"
        for i in 0...1000 { yaml += "  - {id: s\(i), transform: x}\n" }
        let error = try #require(loadError(yaml))
        #expect(error.issues.count == 1)
        let found = try #require(issue(error, "at most 1000 steps; this one has 1001"))
        #expect((found.line, found.column, found.path) == (4, 3, "steps"))
    }

    @Test func tooManyDocumentsAreRefused() throws {
        let yaml = (0..<201).map { "kind: Agent\nname: a\($0)\ninstructions: x\n" }.joined(separator: "---\n")
        let found = try #require(issue(loadError(yaml), "more than 200 documents"))
        #expect(found.line == 200 * 4 + 1)
    }
}
