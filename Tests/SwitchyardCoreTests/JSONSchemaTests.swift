import Testing

@testable import SwitchyardCore

@Suite struct JSONSchemaTests {
    let classification: JSONSchema

    init() throws {
        classification = try JSONSchema([
            "type": "object",
            "description": "ignored",
            "properties": [
                "category": ["type": "string", "minLength": 2, "maxLength": 20, "title": "ignored too"],
                "difficulty": ["enum": ["easy", "hard"]],
                "score": ["type": "number", "minimum": 0, "maximum": 1],
                "count": ["type": "integer"],
                "tags": ["type": "array", "items": ["type": "string"], "minItems": 1, "maxItems": 2],
                "kind": ["const": "ticket"],
                "maybe": ["type": ["string", "null"]],
            ],
            "required": ["category", "difficulty"],
            "additionalProperties": false,
        ])
    }

    @Test func aValidValueHasNoProblems() throws {
        let value: JSONValue = ["category": "billing", "difficulty": "hard", "score": 1, "count": 2.0, "tags": ["x"], "kind": "ticket", "maybe": nil]
        #expect(classification.validate(value) == [])
    }

    @Test func reportsEachProblemWithItsJSONPath() throws {
        let value: JSONValue = ["category": 7, "score": 1.5, "count": 2.5, "tags": ["x", 1, "z"], "kind": "other", "extra": true]
        let problems = classification.validate(value)
        #expect(problems.contains("$.category: expected string, got integer"))
        #expect(problems.contains("$.difficulty: required property is missing"))
        #expect(problems.contains("$.score: must be at most 1, got 1.5"))
        #expect(problems.contains("$.count: expected integer, got number"))
        #expect(problems.contains("$.tags: must have at most 2 items, got 3"))
        #expect(problems.contains("$.tags[1]: expected string, got integer"))
        #expect(problems.contains("$.kind: expected \"ticket\", got \"other\""))
        #expect(problems.contains { $0.hasPrefix("$.extra: unexpected property") })
    }

    @Test func enumAndStringLengths() throws {
        #expect(
            classification.validate(["category": "b", "difficulty": "medium"])
                == [
                    "$.difficulty: expected one of \"easy\", \"hard\", got \"medium\"",
                    "$.category: must have at least 2 characters, got 1",
                ].reversed())
    }

    @Test func integerAcceptsIntegralDoublesAndNumberAcceptsIntegers() throws {
        #expect(try JSONSchema(["type": "integer"]).validate(3.0) == [])
        #expect(try JSONSchema(["type": "number"]).validate(3) == [])
        #expect(try JSONSchema(["type": "integer"]).validate(3.5) == ["$: expected integer, got number"])
    }

    @Test func anyOfAndOneOf() throws {
        let any = try JSONSchema(["anyOf": [["type": "string"], ["type": "integer"]]])
        #expect(any.validate("x") == [])
        #expect(any.validate(1) == [])
        #expect(any.validate(true).count == 1)
        let one = try JSONSchema(["oneOf": [["type": "number"], ["type": "integer"]]])
        #expect(one.validate(1.5) == [])
        #expect(one.validate(1).first?.contains("exactly one") == true)
    }

    @Test func booleanSchemasAndAdditionalPropertySchemas() throws {
        #expect(try JSONSchema(true).validate(["anything": 1]) == [])
        #expect(try JSONSchema(false).validate(1).count == 1)
        let map = try JSONSchema(["type": "object", "additionalProperties": ["type": "integer"]])
        #expect(map.validate(["a": 1, "b": "x"]) == ["$.b: expected integer, got string"])
    }

    @Test func malformedSchemasAreRejectedWithThePathOfTheProblem() throws {
        #expect { try JSONSchema(["type": "strin"]) } throws: { ($0 as? SchemaError)?.path == ["type"] }
        #expect { try JSONSchema(["required": "name"]) } throws: { ($0 as? SchemaError)?.path == ["required"] }
        #expect { try JSONSchema(["required": ["a", 1]]) } throws: { ($0 as? SchemaError)?.path == ["required", "1"] }
        #expect { try JSONSchema(["properties": ["a": ["type": "int"]]]) } throws: { ($0 as? SchemaError)?.path == ["properties", "a", "type"] }
        #expect { try JSONSchema(["minLength": -1]) } throws: { ($0 as? SchemaError)?.path == ["minLength"] }
        #expect { try JSONSchema(["enum": []]) } throws: { ($0 as? SchemaError) != nil }
        #expect { try JSONSchema("object") } throws: { ($0 as? SchemaError) != nil }
    }
}

@Suite struct JSONSchemaPatternTests {
    @Test func patternIsAnUnanchoredSearch() throws {
        let digit = try JSONSchema(["type": "string", "pattern": "[0-9]"])
        #expect(digit.validate("ab1") == [])
        #expect(digit.validate("abc") == ["$: must match the pattern \"[0-9]\", got \"abc\""])
    }

    @Test func anchorsMatchTheWholeString() throws {
        let sku = try JSONSchema(["type": "object", "properties": ["sku": ["type": "string", "pattern": "^[A-Z]{3}-[0-9]{4}$"]]])
        #expect(sku.validate(["sku": "ABC-1234"]) == [])
        #expect(sku.validate(["sku": "xABC-1234"]) == ["$.sku: must match the pattern \"^[A-Z]{3}-[0-9]{4}$\", got \"xABC-1234\""])
    }

    @Test func patternAppliesOnlyToStrings() throws {
        let schema = try JSONSchema(["pattern": "^a"])
        #expect(schema.validate(42) == [])
        #expect(schema.validate(["b"]) == [])
    }

    @Test func anInvalidPatternIsASchemaError() {
        #expect { try JSONSchema(["type": "string", "pattern": "([a-z"]) } throws: { ($0 as? SchemaError)?.path == ["pattern"] }
        #expect { try JSONSchema(["pattern": 3]) } throws: { ($0 as? SchemaError)?.message.contains("pattern must be") == true }
    }

    @Test func longValuesAreShortenedInTheMessage() throws {
        let schema = try JSONSchema(["pattern": "^x"])
        let problems = schema.validate(.string(String(repeating: "y", count: 500)))
        #expect(problems.count == 1)
        #expect((problems.first?.count ?? 0) < 200)
    }
}
