import Foundation
import SwitchyardCore
import SwitchyardStore
import Synchronization

/// A workflow version with the graph facts the engine asks for on every step,
/// computed once: versions are immutable, so the cache never goes stale.
struct CompiledWorkflow: Sendable {
    let spec: WorkflowSpec
    let steps: [String: StepSpec]
    let dependents: [String: [String]]
    let referencedSteps: [String: Set<String>]
    /// Steps nothing depends on; with no declared `outputs` the run's output is theirs.
    let sinks: [String]

    init(_ spec: WorkflowSpec) {
        self.spec = spec
        self.steps = Dictionary(spec.steps.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
        self.dependents = spec.dependents
        self.referencedSteps = Dictionary(spec.steps.map { ($0.id, $0.referencedSteps) }, uniquingKeysWith: { first, _ in first })
        self.sinks = spec.steps.map(\.id).filter { (spec.dependents[$0] ?? []).isEmpty }
    }

    /// The run's output once every step is final: the declared `outputs`, evaluated
    /// over the step outputs.
    func finalize(input: JSONValue, run: JSONValue, finished: [String: FinishedStep]) -> Result<JSONValue, ErrorRecord> {
        let outputs = finished.compactMapValues { $0.status == .succeeded ? ($0.output ?? .null) : nil }
        guard !spec.outputs.isEmpty else {
            return .success(.object(Dictionary(uniqueKeysWithValues: sinks.map { ($0, outputs[$0] ?? .null) })))
        }
        let scope = TemplateScope(inputs: input, steps: outputs, run: run)
        var result: [String: JSONValue] = [:]
        for output in spec.outputs {
            do {
                result[output.name] = try output.value.evaluate(scope)
            } catch {
                return .failure(ErrorRecord(.outputError, "outputs.\(output.name): \(error.message)"))
            }
        }
        return .success(.object(result))
    }
}

/// Compiled workflow versions by (tenant, name, version), loaded on first use and
/// shared by the engine and the API. Versions are immutable, so an entry never goes
/// stale; the cache is bounded all the same (a long-lived server sees every version
/// every tenant ever ran), and emptied when full: a miss costs one read.
public final class WorkflowCache: Sendable {
    private struct Key: Hashable {
        var tenant: UUID
        var name: String
        var version: Int
    }

    /// Entries kept before the cache is emptied.
    static let capacity = 4096

    private let entries = Mutex<[Key: CompiledWorkflow]>([:])
    private let resources: ResourceRepository

    public init(resources: ResourceRepository) {
        self.resources = resources
    }

    /// The workflow's latest version and its spec, nil when the tenant has no such
    /// workflow: one indexed read of the version number, the decoding cached.
    public func latest(tenant: UUID, name: String) async throws -> (version: Int, spec: WorkflowSpec)? {
        guard let version = try await resources.latestVersion(kind: .workflow, name: name, tenant: tenant) else { return nil }
        return (version, try await workflow(tenant: tenant, name: name, version: version).spec)
    }

    func workflow(tenant: UUID, name: String, version: Int) async throws -> CompiledWorkflow {
        let key = Key(tenant: tenant, name: name, version: version)
        if let cached = entries.withLock({ $0[key] }) { return cached }
        guard let stored = try await resources.find(kind: .workflow, name: name, version: version, tenant: tenant),
            case .workflow(let spec) = stored.resource
        else {
            throw ErrorRecord(.workflowMissing, "workflow \(name) version \(version) is not stored")
        }
        let compiled = CompiledWorkflow(spec)
        entries.withLock { entries in
            if entries.count >= Self.capacity { entries.removeAll(keepingCapacity: true) }
            entries[key] = compiled
        }
        return compiled
    }
}
