import Foundation
import LocalInference
import Synchronization

/// A loaded model (of any architecture ``LanguageModel`` detects) and what the scheduler
/// needs besides it.
public struct LoadedLocalModel: Sendable {
    public let model: LanguageModel
    /// Tokens that end a generation: EOS, and `<end_of_turn>` / `<eos>` (as `Generator`).
    public let endTokens: Set<Int32>

    init(model: LanguageModel) {
        self.model = model
        var ends: Set<Int32> = [model.tokenizer.eos]
        for text in ["<end_of_turn>", "<eos>"] {
            if let id = model.tokenizer.pieces.id(of: Array(text.utf8)) { ends.insert(id) }
        }
        endTokens = ends
    }
}

/// Every model file the process has opened, one runtime per file.
///
/// Keyed by the canonical path (symbolic links and `..` resolved), so that experts and
/// steps naming the same file by different paths share one loaded model, one compute
/// thread and one batch. Runtimes live as long as the process (like `HTTPClient.shared`):
/// the weights are memory-mapped and read-only, so an idle runtime costs the page cache
/// it touched and one parked thread.
public final class LocalModelRegistry: Sendable {
    public static let shared = LocalModelRegistry()

    private let runtimes = Mutex<[String: LocalModelRuntime]>([:])

    public init() {}

    /// The runtime of the file at `path`, created (not loaded) on first use. Its batch
    /// limit becomes at least `batchLimit`.
    public func runtime(for path: String, batchLimit: Int) -> LocalModelRuntime {
        let key = Self.canonicalPath(path)
        let runtime = runtimes.withLock { runtimes in
            if let existing = runtimes[key] { return existing }
            let created = LocalModelRuntime(canonicalPath: key, batchLimit: batchLimit)
            runtimes[key] = created
            return created
        }
        runtime.raiseBatchLimit(to: batchLimit)
        return runtime
    }

    /// `path` with symbolic links, `.` and `..` resolved; `path` itself if it cannot be
    /// (a missing file then fails when it is loaded, with the loader's message).
    public static func canonicalPath(_ path: String) -> String {
        guard let resolved = realpath(path, nil) else { return path }
        defer { free(resolved) }
        return String(cString: resolved)
    }
}

/// One model file in this process: its weights (loaded once, on first use, on the compute
/// thread), the thread that runs its forward passes, and the scheduler that batches the
/// calls of every expert using it.
public final class LocalModelRuntime: Sendable {
    public let canonicalPath: String
    let compute: LocalComputeThread
    let scheduler: LocalBatchScheduler
    private let limit: BatchLimit
    private let loadState = Mutex(LoadState.idle)

    private enum LoadState {
        case idle
        case loading([CheckedContinuation<Registration, Never>])
        case loaded(LoadedLocalModel)
    }

    /// How a caller waiting for someone else's load learns of it.
    private enum Registration: Sendable {
        case registered
        case done(Result<LoadedLocalModel, ExpertError>)
        case retry
    }

    init(canonicalPath: String, batchLimit: Int) {
        self.canonicalPath = canonicalPath
        let compute = LocalComputeThread(name: "switchyard-local " + (canonicalPath as NSString).lastPathComponent)
        let limit = BatchLimit(batchLimit)
        self.compute = compute
        self.limit = limit
        self.scheduler = LocalBatchScheduler(compute: compute, limit: limit)
    }

    /// The most sequences decoded in one forward pass.
    public var batchLimit: Int { limit.value }

    func raiseBatchLimit(to value: Int) { limit.raise(to: value) }

    /// The loaded model, loading it on the compute thread if no one has yet. Concurrent
    /// callers wait for the same load; a failed load is not remembered, so the next call
    /// tries again (the operator may have fixed the file).
    public func model() async throws(ExpertError) -> LoadedLocalModel {
        enum Action {
            case ready(LoadedLocalModel)
            case wait, load
        }
        while true {
            let action = loadState.withLock { state -> Action in
                switch state {
                case .loaded(let model): return .ready(model)
                case .loading: return .wait
                case .idle:
                    state = .loading([])
                    return .load
                }
            }
            switch action {
            case .ready(let model):
                return model
            case .load:
                // Whoever found the runtime idle loads it, in its own task, and then
                // resumes everyone who waited meanwhile.
                let path = canonicalPath
                let result = await compute.run { () -> Result<LoadedLocalModel, ExpertError> in
                    do throws(LocalInferenceError) {
                        return .success(LoadedLocalModel(model: try LanguageModel(path: path)))
                    } catch {
                        return .failure(
                            ExpertError(
                                .providerError,
                                "the local model \(path) could not be loaded: \(error.description) "
                                    + "(\(LocalModelLocator.setupCommand) installs the model this project uses)"))
                    }
                }
                finishLoad(result)
                return try result.get()
            case .wait:
                let outcome: Registration = await withCheckedContinuation { continuation in
                    let registration = loadState.withLock { state -> Registration in
                        switch state {
                        case .loading(var waiters):
                            waiters.append(continuation)
                            state = .loading(waiters)
                            return .registered
                        case .loaded(let model):
                            return .done(.success(model))
                        case .idle:
                            return .retry  // the load failed in between: try again
                        }
                    }
                    switch registration {
                    case .registered: break
                    case .done, .retry: continuation.resume(returning: registration)
                    }
                }
                if case .done(let result) = outcome { return try result.get() }
            }
        }
    }

    private func finishLoad(_ result: Result<LoadedLocalModel, ExpertError>) {
        let waiters = loadState.withLock { state -> [CheckedContinuation<Registration, Never>] in
            guard case .loading(let waiters) = state else { return [] }
            if case .success(let model) = result { state = .loaded(model) } else { state = .idle }
            return waiters
        }
        for waiter in waiters { waiter.resume(returning: .done(result)) }
    }

    /// Generates a continuation of `prompt` in the shared batch (see ``LocalBatchScheduler``).
    /// Cancelling the calling task ends this generation at the next step, leaving the
    /// others in the batch untouched; it then throws `.cancelled` with the usage so far.
    public func generate(
        prompt: String, maxTokens: Int, sampling: SamplingParameters, stop: [String], onDelta: DeltaHandler?
    ) async throws(ExpertError) -> LocalGeneration {
        if Task.isCancelled { throw ExpertError(.cancelled, "the call was cancelled") }
        let loaded = try await model()
        let tokens = loaded.model.tokenizer.encode(prompt, addSpecial: true, parseSpecial: false)
        let context = loaded.model.contextLength
        guard tokens.count < context else {
            throw ExpertError(
                .badRequest, "the prompt has \(tokens.count) tokens, more than the local model's context of \(context) tokens allows")
        }
        let job = GenerationSpec(
            id: scheduler.newID(), model: loaded, promptTokens: tokens, maxTokens: max(0, maxTokens), sampling: sampling, stop: stop,
            onDelta: onDelta)
        let scheduler = self.scheduler
        let id = job.id
        let outcome = await withTaskCancellationHandler {
            await scheduler.generate(job)
        } onCancel: {
            scheduler.cancel(id)
        }
        scheduler.forget(id)
        return try outcome.get()
    }

    /// What the batch loop has done so far (instrumentation for tests and benchmarks).
    public func statistics() async -> LocalBatchStatistics {
        await scheduler.statistics
    }
}

/// The batch limit of a runtime, raised by every expert that uses it.
final class BatchLimit: Sendable {
    private let storage: Mutex<Int>

    init(_ value: Int) { storage = Mutex(max(1, value)) }

    var value: Int { storage.withLock { $0 } }

    func raise(to value: Int) { storage.withLock { $0 = max($0, value) } }
}
