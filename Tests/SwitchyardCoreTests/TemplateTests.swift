import Testing

@testable import SwitchyardCore

private let scope = TemplateScope(
    inputs: [
        "ticket": "Printer on fire",
        "tier": "enterprise",
        "count": 3,
        "ratio": 0.5,
        "tags": ["a", "b", "c"],
        "empty": "",
        "nested": ["k": ["deep": [10, 20]]],
        "padded": "  hi  ",
        "flag": false,
    ],
    steps: ["classify": ["category": "billing", "difficulty": "hard"], "draft": "Dear customer"],
    run: ["id": "run-1", "tenant": "acme", "workflow": "ticket-triage"],
    extra: ["item": "x"]
)

private func eval(_ source: String, _ s: TemplateScope = scope, limits: TemplateLimits = .default) throws -> JSONValue {
    try Template(parsing: source).evaluate(s, limits: limits)
}

private func parseError(_ source: String) -> TemplateError? {
    do {
        _ = try Template(parsing: source)
        return nil
    } catch {
        return error
    }
}

@Suite struct TemplateEvaluationTests {
    @Test func aStringWithoutBracesIsALiteral() throws {
        let t = try Template(parsing: "just text")
        #expect(t.isLiteral)
        #expect(try t.evaluate(scope) == "just text")
    }

    @Test func aSingleExpressionYieldsItsJSONType() throws {
        #expect(try eval("{{ inputs.count }}") == 3)
        #expect(try eval("  {{ inputs.tags }}\n") == ["a", "b", "c"])
        #expect(try eval("{{ steps.classify.output }}") == ["category": "billing", "difficulty": "hard"])
        #expect(try eval("{{ inputs.flag }}") == false)
        #expect(try eval("{{ inputs.missing }}") == .null)
    }

    @Test func mixedTextRendersValuesAsCompactJSONAndNullAsEmpty() throws {
        #expect(try eval("n={{ inputs.count }} tags={{ inputs.tags }}") == "n=3 tags=[\"a\",\"b\",\"c\"]")
        #expect(try eval("[{{ inputs.missing }}]") == "[]")
        #expect(try eval("Hi {{ inputs.ticket }}!") == "Hi Printer on fire!")
        #expect(try eval("{{ inputs.count }}{{ inputs.count }}") == "33")
    }

    @Test func pathsSupportDotsIndexesAndQuotedKeys() throws {
        #expect(try eval("{{ inputs.nested.k.deep[1] }}") == 20)
        #expect(try eval("{{ inputs['nested'][\"k\"].deep[0] }}") == 10)
        #expect(try eval("{{ inputs.tags[-1] }}") == "c")
        #expect(try eval("{{ inputs.tags[7] }}") == .null)
        #expect(try eval("{{ inputs.ticket.nope.deeper }}") == .null)
        #expect(try eval("{{ steps['classify'].output.category }}") == "billing")
        #expect(try eval("{{ item }}") == "x")
        #expect(try eval("{{ run.tenant }}") == "acme")
    }

    @Test func literalsOfEveryKind() throws {
        #expect(try eval("{{ 'single' }}") == "single")
        #expect(try eval("{{ \"double\" }}") == "double")
        #expect(try eval("{{ 'it\\'s' }}") == "it's")
        #expect(try eval("{{ 42 }}") == 42)
        #expect(try eval("{{ -1.5 }}") == -1.5)
        #expect(try eval("{{ 1e3 }}") == 1000.0)
        #expect(try eval("{{ true }}") == true)
        #expect(try eval("{{ null }}") == .null)
    }

    @Test func comparisonOperators() throws {
        #expect(try eval("{{ inputs.tier == 'enterprise' }}") == true)
        #expect(try eval("{{ inputs.tier != 'enterprise' }}") == false)
        #expect(try eval("{{ inputs.count == 3.0 }}") == true)
        #expect(try eval("{{ inputs.count < 4 }}") == true)
        #expect(try eval("{{ inputs.count <= 3 }}") == true)
        #expect(try eval("{{ inputs.count > 3 }}") == false)
        #expect(try eval("{{ inputs.count >= 3 }}") == true)
        #expect(try eval("{{ inputs.ratio < inputs.count }}") == true)
        #expect(try eval("{{ 'abc' < 'abd' }}") == true)
    }

    @Test func comparingMismatchedTypesIsAnError() throws {
        #expect(throws: TemplateError.self) { try eval("{{ inputs.count < 'x' }}") }
    }

    @Test func booleanOperatorsAndTruthiness() throws {
        #expect(try eval("{{ inputs.flag || inputs.count }}") == true)
        #expect(try eval("{{ inputs.count && inputs.empty }}") == false)
        #expect(try eval("{{ !inputs.empty }}") == true)
        #expect(try eval("{{ !inputs.tags }}") == false)
        #expect(try eval("{{ !0 && !null && !'' && !false }}") == true)
        #expect(try eval("{{ !(inputs.count > 1) }}") == false)
        for falsy: JSONValue in [.null, false, 0, 0.0, "", [], [:]] { #expect(!falsy.isTruthy) }
        for truthy: JSONValue in [true, 1, -0.5, "0", [0], ["a": 1]] { #expect(truthy.isTruthy) }
    }

    @Test func ternaryChoosesABranch() throws {
        #expect(try eval("{{ steps.classify.output.difficulty == 'hard' ? 'pro' : 'flash' }}") == "pro")
        #expect(try eval("{{ inputs.flag ? 1 : inputs.count > 2 ? 2 : 3 }}") == 2)
    }

    @Test func filters() throws {
        #expect(try eval("{{ inputs.nested | json }}") == "{\"k\":{\"deep\":[10,20]}}")
        #expect(try eval("{{ inputs.tags | length }}") == 3)
        #expect(try eval("{{ inputs.ticket | length }}") == 15)
        #expect(try eval("{{ inputs.nested | length }}") == 1)
        #expect(try eval("{{ inputs.missing | default('n/a') }}") == "n/a")
        #expect(try eval("{{ inputs.count | default(9) }}") == 3)
        #expect(try eval("{{ inputs.tier | upper }}") == "ENTERPRISE")
        #expect(try eval("{{ 'MiXed' | lower }}") == "mixed")
        #expect(try eval("{{ inputs.tags | join(', ') }}") == "a, b, c")
        #expect(try eval("{{ inputs.tags | join }}") == "abc")
        #expect(try eval("{{ inputs.padded | trim }}") == "hi")
        #expect(try eval("{{ inputs.tags | first }}") == "a")
        #expect(try eval("{{ inputs.tags | last }}") == "c")
        #expect(try eval("{{ steps.classify.output | keys }}") == ["category", "difficulty"])
        #expect(try eval("{{ inputs.tags | length > 2 }}") == true)
        #expect(try eval("{{ inputs.missing | default('x') | upper }}") == "X")
    }

    @Test func filtersRejectValuesOfTheWrongType() throws {
        #expect(throws: TemplateError.self) { try eval("{{ inputs.count | upper }}") }
        #expect(throws: TemplateError.self) { try eval("{{ inputs.ticket | join(',') }}") }
        #expect(throws: TemplateError.self) { try eval("{{ inputs.count | keys }}") }
    }

    @Test func anUnknownRootVariableIsAnEvaluationError() throws {
        #expect {
            try eval("{{ nope.x }}")
        } throws: { error in
            (error as? TemplateError)?.kind == .evaluation && (error as? TemplateError)?.offset == 3
        }
        #expect(throws: TemplateError.self) { try eval("{{ secrets.TOKEN }}") }
        let withSecrets = TemplateScope(inputs: [:], secrets: ["TOKEN": "s3cret"])
        #expect(try eval("Bearer {{ secrets.TOKEN }}", withSecrets) == "Bearer s3cret")
    }

    @Test func referencedStepsAndRootsAreKnownWithoutEvaluating() throws {
        let t = try Template(parsing: "{{ steps.a.output }} {{ steps['b-2'].output.x }} {{ inputs.q }} {{ item }}")
        #expect(t.referencedSteps == ["a", "b-2"])
        #expect(t.referencedRoots == ["steps", "inputs", "item"])
    }

    @Test func stepIdsWithHyphensAreIdentifiers() throws {
        let s = TemplateScope(inputs: [:], steps: ["fetch-page": "ok"])
        #expect(try eval("{{ steps.fetch-page.output }}", s) == "ok")
    }

    @Test func rendersTemplatesInsideJSON() throws {
        let args: JSONValue = ["text": "{{ steps.draft.output }}", "n": "{{ inputs.count }}", "plain": "no braces", "list": ["{{ item }}", 1]]
        let rendered = try args.renderTemplates(scope)
        #expect(rendered == ["text": "Dear customer", "n": 3, "plain": "no braces", "list": ["x", 1]])
    }

    @Test func embeddedTemplatesAreCollectedWithTheirPaths() throws {
        let found = try Template.embedded(in: ["a": ["{{ inputs.x }}", "plain"], "b c": "{{ steps.s.output }}"])
        #expect(found.map(\.path) == ["$.a[0]", "$[\"b c\"]"])
        #expect {
            try Template.embedded(in: ["q": "{{ inputs. }}"])
        } throws: { error in
            (error as? TemplateError)?.message.hasPrefix("$.q: ") == true
        }
    }

    @Test func templatesAreCodableAsTheirSourceString() throws {
        let t = try Template(parsing: "Hi {{ inputs.name }}")
        let data = try JSONEncoderCompat.encode(t)
        #expect(data == "\"Hi {{ inputs.name }}\"")
        let back = try JSONEncoderCompat.decode(Template.self, from: data)
        #expect(back == t)
    }
}

@Suite struct TemplateParseErrorTests {
    @Test func reportsTheOffsetOfTheProblem() throws {
        #expect(parseError("Hi {{ inputs.ticket ")?.offset == 3)  // unclosed: points at '{{'
        #expect(parseError("{{ inputs.x = 'a' }}")?.offset == 12)
        #expect(parseError("ab {{ inputs | nope }}")?.offset == 15)
        #expect(parseError("{{ }}")?.offset == 3)
        #expect(parseError("{{ 'open }}")?.offset == 3)
        #expect(parseError("{{ a ? b }}")?.offset == 9)
        #expect(parseError("{{ a b }}")?.offset == 5)
        #expect(parseError("{{ steps }}")?.offset == 3)
        #expect(parseError("{{ steps[inputs.x].output }}")?.offset == 3)
        #expect(parseError("{{ x | default }}")?.kind == .syntax)
    }

    @Test func messagesSayWhatToDo() throws {
        #expect(parseError("{{ a = b }}")?.message.contains("'=='") == true)
        #expect(parseError("{{ x | shout }}")?.message.contains("unknown filter 'shout'") == true)
        #expect(parseError("{{ a + b }}")?.message.contains("no arithmetic") == true)
    }

    @Test func deepNestingIsRefused() throws {
        let deep = "{{ " + String(repeating: "(", count: 500) + "1" + String(repeating: ")", count: 500) + " }}"
        #expect(parseError(deep)?.kind == .limitExceeded)
    }

    @Test func overlongExpressionsAreRefused() throws {
        let chain = "{{ " + Array(repeating: "inputs.a", count: 400).joined(separator: " || ") + " }}"
        #expect(parseError(chain)?.kind == .limitExceeded)
        let path = "{{ inputs" + String(repeating: ".a", count: 300) + " }}"
        #expect(parseError(path)?.kind == .limitExceeded)
    }

    @Test func literalTemplatesSurviveCodingEvenWithBraces() throws {
        let t = Template.literal("use {{ name }}\u{07}")
        #expect(try t.evaluate(scope) == "use {{ name }}\u{07}")
        let back = try JSONEncoderCompat.decode(Template.self, from: try JSONEncoderCompat.encode(t))
        #expect(try back.evaluate(scope) == "use {{ name }}\u{07}")
        #expect(Template.literal("plain").source == "plain")
    }

    @Test func oversizedSourceIsRefused() throws {
        let big = String(repeating: "x", count: 70_000)
        #expect(parseError(big)?.kind == .limitExceeded)
    }
}

@Suite struct TemplateLimitTests {
    @Test func aHugeJoinHitsTheOutputLimit() throws {
        let items = JSONValue.array(Array(repeating: .string(String(repeating: "y", count: 1000)), count: 2000))
        let s = TemplateScope(inputs: ["items": items])
        #expect {
            try eval("{{ inputs.items | join(',') }}", s)
        } throws: { error in
            (error as? TemplateError)?.kind == .limitExceeded
        }
        let small = TemplateLimits(maxOutputBytes: 10)
        #expect(throws: TemplateError.self) { try eval("{{ inputs.items | json }}", s, limits: small) }
        #expect(throws: TemplateError.self) { try eval("x {{ inputs.items[0] }}", s, limits: small) }
    }

    @Test func evaluationStepsAreBounded() throws {
        let items = JSONValue.array(Array(repeating: 1, count: 500))
        let s = TemplateScope(inputs: ["items": items])
        #expect {
            try eval("{{ inputs.items | join(',') }}", s, limits: TemplateLimits(maxSteps: 100))
        } throws: { error in
            (error as? TemplateError)?.kind == .limitExceeded
        }
    }
}
