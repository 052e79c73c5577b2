import Foundation
import SwitchyardCore
import SwitchyardMetering

/// A tenant: the unit of isolation, budgets and fairness.
public struct Tenant: Sendable, Hashable, Codable {
    public var id: UUID
    public var name: String

    public init(id: UUID, name: String) {
        self.id = id
        self.name = name
    }
}

/// A stored, immutable version of a workflow, agent or tool.
public struct ResourceVersion: Sendable, Hashable {
    public var kind: ResourceKind
    public var name: String
    public var version: Int
    public var source: String
    public var resource: Resource
    public var createdAt: Date
}

/// What `apply` did with one document.
public struct AppliedResource: Sendable, Hashable, Codable {
    public var kind: ResourceKind
    public var name: String
    public var version: Int
    /// False when the document equals the latest stored version (nothing stored).
    public var changed: Bool
}

/// An error as stored on a step or run and shown by the API: a stable code and a message.
public struct ErrorRecord: Sendable, Hashable, Codable, Error, CustomStringConvertible {
    public var code: String
    public var message: String

    public init(code: String, message: String) {
        self.code = code
        self.message = message
    }

    /// An error the engine or the store writes itself, with one of the known codes.
    public init(_ code: StepErrorCode, _ message: String) {
        self.init(code: code.rawValue, message: message)
    }

    /// Whether the error carries `code`.
    public func has(_ code: StepErrorCode) -> Bool { self.code == code.rawValue }

    public var description: String { "\(code): \(message)" }

    public var json: JSONValue { ["code": .string(code), "message": .string(message)] }

    public init?(json: JSONValue?) {
        guard let code = json?["code"]?.stringValue else { return nil }
        self.init(code: code, message: json?["message"]?.stringValue ?? "")
    }
}

public struct StepRecord: Sendable, Hashable {
    public var id: String
    public var status: StepStatus
    public var attempts: Int
    public var expert: String?
    public var output: JSONValue?
    public var error: ErrorRecord?
    public var startedAt: Date?
    public var finishedAt: Date?
    /// The gate's decision for a model step, in its API form.
    public var route: JSONValue?
    /// Explicit feedback on the step's answer, if any was given.
    public var feedback: Bool?
    /// The sum of the step's priced calls (all attempts); nil when it made none.
    public var cost: Money?
}

/// Token totals of a run's model calls, summed from the call rows.
public struct UsageSummary: Sendable, Hashable {
    public var calls: Int
    public var promptTokens: Int
    public var completionTokens: Int
    /// The sum of the priced calls' ledger costs.
    public var cost: Money
    /// Calls of unpriced models (in tokens only) and calls whose cost is an upper-bound
    /// estimate (usage never reported), shown apart.
    public var unpricedCalls: Int
    public var estimatedCalls: Int

    public init(
        calls: Int = 0, promptTokens: Int = 0, completionTokens: Int = 0, cost: Money = .zero, unpricedCalls: Int = 0, estimatedCalls: Int = 0
    ) {
        self.calls = calls
        self.promptTokens = promptTokens
        self.completionTokens = completionTokens
        self.cost = cost
        self.unpricedCalls = unpricedCalls
        self.estimatedCalls = estimatedCalls
    }
}

public struct RunRecord: Sendable, Hashable {
    public var id: UUID
    public var tenantID: UUID
    public var workflow: String
    public var version: Int
    public var status: RunStatus
    public var input: JSONValue
    public var output: JSONValue?
    public var error: ErrorRecord?
    public var createdAt: Date
    public var startedAt: Date?
    public var finishedAt: Date?
    /// Filled by `RunRepository.run(_:tenant:)`, empty in lists.
    public var steps: [StepRecord] = []
    public var usage: UsageSummary = UsageSummary()
}

/// One entry of a run's append-only event log.
public struct RunEvent: Sendable, Hashable {
    public var seq: Int64
    public var type: String
    public var stepID: String?
    public var data: JSONValue
    public var createdAt: Date
}

/// One model call, as recorded in `model_calls`.
public struct ModelCallRecord: Sendable, Hashable {
    public var tenantID: UUID
    public var runID: UUID
    public var stepID: String
    public var attempt: Int
    public var callIndex: Int
    public var workflow: String
    public var expert: String
    public var model: String
    public var promptTokens: Int
    public var completionTokens: Int
    public var cacheHitTokens: Int
    public var cacheMissTokens: Int
    public var reasoningTokens: Int
    /// False when the call ended before its usage was reported: `cost` is then an
    /// upper-bound estimate.
    public var usageKnown: Bool
    /// The price row that priced the call; nil for an unpriced model.
    public var priceID: String?
    /// Nil for an unpriced model (metered in tokens only, never free by accident).
    public var cost: Money?
    public var latencyMilliseconds: Int
    public var succeeded: Bool
    public var error: String?
    public var startedAt: Date

    public init(
        tenantID: UUID, runID: UUID, stepID: String, attempt: Int, callIndex: Int, workflow: String, expert: String, model: String,
        promptTokens: Int, completionTokens: Int, cacheHitTokens: Int = 0, cacheMissTokens: Int = 0, reasoningTokens: Int = 0,
        usageKnown: Bool = true, priceID: String? = nil, cost: Money? = nil, latencyMilliseconds: Int, succeeded: Bool, error: String?,
        startedAt: Date
    ) {
        self.tenantID = tenantID
        self.runID = runID
        self.stepID = stepID
        self.attempt = attempt
        self.callIndex = callIndex
        self.workflow = workflow
        self.expert = expert
        self.model = model
        self.promptTokens = promptTokens
        self.completionTokens = completionTokens
        self.cacheHitTokens = cacheHitTokens
        self.cacheMissTokens = cacheMissTokens
        self.reasoningTokens = reasoningTokens
        self.usageKnown = usageKnown
        self.priceID = priceID
        self.cost = cost
        self.latencyMilliseconds = latencyMilliseconds
        self.succeeded = succeeded
        self.error = error
        self.startedAt = startedAt
    }
}

/// An opaque page position for `GET /v1/runs`: the last row's creation time, in
/// exact integer microseconds as PostgreSQL keeps it (a `Date` would round it and
/// skip rows created in the same microsecond), and its id.
public struct RunCursor: Sendable, Hashable {
    public var createdMicroseconds: Int64
    public var id: UUID

    public init(createdMicroseconds: Int64, id: UUID) {
        self.createdMicroseconds = createdMicroseconds
        self.id = id
    }

    /// URL-safe base64 of `micros:id`.
    public var token: String {
        Data("\(createdMicroseconds):\(id.lowercasedString)".utf8).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
    }

    public init?(token: String) {
        var base64 = token.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while base64.count % 4 != 0 { base64 += "=" }
        guard let data = Data(base64Encoded: base64) else { return nil }
        let parts = String(decoding: data, as: UTF8.self).split(separator: ":")
        guard parts.count == 2, let micros = Int64(parts[0]), let id = UUID(uuidString: String(parts[1])) else { return nil }
        self.init(createdMicroseconds: micros, id: id)
    }
}
