/// Why a run's input was refused: every problem, each with the input it concerns, so
/// that an API caller can fix them all in one go.
public struct InputValidationError: Error, Sendable, Hashable, CustomStringConvertible {
    /// One problem: `path` is the input's name (`ticket`), or `""` for the input as a whole.
    public struct Detail: Sendable, Hashable, Codable {
        public var path: String
        public var message: String

        public init(path: String, message: String) {
            self.path = path
            self.message = message
        }
    }

    public var details: [Detail]

    public init(details: [Detail]) { self.details = details }

    public var message: String {
        details.count == 1 ? "invalid input: \(details[0].text)" : "invalid input: \(details.count) problems"
    }

    public var description: String {
        (["invalid input:"] + details.map { "  " + $0.text }).joined(separator: "\n")
    }
}

extension InputValidationError.Detail {
    var text: String { path.isEmpty ? message : "\(path): \(message)" }
}

extension InputType {
    /// Whether `value` is acceptable for an input of this type. `integer` accepts
    /// integral numbers (`3.0`); `number` accepts integers.
    public func accepts(_ value: JSONValue) -> Bool {
        switch (self, value) {
        case (.string, .string), (.boolean, .bool), (.object, .object), (.array, .array): true
        case (.number, .int), (.number, .double): true
        case (.integer, .int): true
        case (.integer, .double(let d)): d.isFinite && d == d.rounded() && abs(d) < 9.0e15
        default: false
        }
    }

    /// `value` in its canonical form for this type (`3.0` becomes `3` for `integer`).
    func normalized(_ value: JSONValue) -> JSONValue {
        if self == .integer, case .double = value, let i = value.intValue { return .int(i) }
        return value
    }
}

extension WorkflowSpec {
    /// Checks a run's input against the declared inputs and returns the complete
    /// input object: defaults applied, integral numbers of `integer` inputs made
    /// integers. `given` must be an object (`null` counts as `{}`). Unknown names,
    /// missing required inputs and type mismatches are all reported together.
    public func resolveInputs(_ given: JSONValue) throws(InputValidationError) -> JSONValue {
        let object: [String: JSONValue]
        switch given {
        case .null: object = [:]
        case .object(let o): object = o
        default:
            throw InputValidationError(details: [.init(path: "", message: "the input must be an object of named inputs, got \(given.typeName)")])
        }
        var details: [InputValidationError.Detail] = []
        var resolved: [String: JSONValue] = [:]
        let declared = Set(inputs.map(\.name))
        for name in object.keys.sorted() where !declared.contains(name) {
            let known = inputs.isEmpty ? "this workflow takes no inputs" : "known inputs: \(inputs.map(\.name).joined(separator: ", "))"
            details.append(.init(path: name, message: "unknown input (\(known))"))
        }
        for input in inputs {
            let value = object[input.name] ?? .null
            if value == .null {
                if let d = input.defaultValue {
                    resolved[input.name] = d
                } else if input.required {
                    details.append(.init(path: input.name, message: "required input is missing"))
                }
                continue
            }
            guard input.type.accepts(value) else {
                details.append(.init(path: input.name, message: "expected \(input.type.rawValue), got \(value.typeName)"))
                continue
            }
            resolved[input.name] = input.type.normalized(value)
        }
        if !details.isEmpty { throw InputValidationError(details: details) }
        return .object(resolved)
    }
}
