import Foundation
import LocalInference
import Synchronization

/// One finished generation.
public struct LocalGeneration: Sendable, Hashable {
    /// The continuation, leading whitespace removed, cut before a stop string.
    public var text: String
    /// The prompt's tokens, BOS included.
    public var promptTokens: Int
    /// Tokens generated (an end-of-sequence token is not counted, as `Generator`).
    public var completionTokens: Int
    public var finishReason: FinishReason
    /// The most sequences that shared one forward pass with this one.
    public var maxBatchSeen: Int
}

/// What the batch loop of one model has done since the process started.
public struct LocalBatchStatistics: Sendable, Hashable {
    /// Forward passes run.
    public var steps = 0
    /// Generations submitted.
    public var generations = 0
    /// Prompt tokens fed and tokens sampled.
    public var promptTokens = 0
    public var sampledTokens = 0
    /// The most sequences decoded in one forward pass.
    public var maxSequencesPerStep = 0
}

/// A generation as submitted: everything is Sendable, so that it crosses into the actor.
struct GenerationSpec: Sendable {
    var id: UInt64
    var model: LoadedLocalModel
    var promptTokens: [Int32]
    var maxTokens: Int
    var sampling: SamplingParameters
    var stop: [String]
    var onDelta: DeltaHandler?
}

/// Batches the generations of every expert that uses one model file: each forward pass
/// feeds one token of every running sequence (and as many prompt tokens of new ones as
/// fit), so the weights are read once per step for all of them.
///
/// **Who runs the loop.** There is no background task: the loop runs in the tasks of
/// the callers themselves. The first caller to find the scheduler idle becomes the
/// *leader*: it runs steps until its own generation ends, and then hands the lead to
/// another caller still waiting (it resumes that caller's continuation, which then runs
/// the loop in its own task). Callers that are not leading wait on a continuation that
/// the leader resumes when their generation ends. Everything is therefore done by tasks
/// that are awaiting a result, and the loop stops by itself when nothing is left.
/// Forward passes run on the model's ``LocalComputeThread``; the leader is suspended
/// meanwhile, so the actor stays free to queue new callers.
///
/// **Per-sequence state.** Each generation has its own KV cache, sampler (seeded, for
/// temperature sampling; greedy when the temperature is 0), streaming detokenizer, stop
/// strings, token cap and delta handler. A step's logits are sampled per sequence, and
/// every rule is `Generator.generate`'s, so a greedy answer is the same text whether it
/// was decoded alone or in a batch (the kernels compute each row of each token
/// independently, so batching does not change a single bit of the logits).
///
/// **Admission.** At most `limit` sequences run at once (the largest `concurrency` of the
/// experts using the model, at most 32); further callers wait in arrival order. A step
/// holds at most ``tokensPerStep`` tokens: the running sequences' next tokens first, then
/// prompt tokens of admitted sequences (a long prompt is fed over several steps, so it
/// never stalls the others for more than one step).
///
/// **Cancellation.** A cancelled caller's id is flagged (synchronously, by its
/// cancellation handler); the leader removes flagged generations before every step and
/// resumes their callers with `.cancelled`. The other sequences are untouched: their
/// caches and samplers are their own. A cancelled leader ends its own generation the same
/// way and hands over the lead.
actor LocalBatchScheduler {
    /// Tokens in one forward pass (the inference context's chunk size, so a step is one
    /// read of the weights).
    static let tokensPerStep = 64

    private final class Job {
        let id: UInt64
        let model: LoadedLocalModel
        let promptTokens: [Int32]
        let maxTokens: Int
        let stop: [String]
        let holdBack: Int
        let onDelta: DeltaHandler?
        var sampler: Sampler
        var cache: (any SequenceCache)?
        /// Tokens fed to the model so far: prompt, then generated (the cache's count).
        var fed = 0
        /// The last sampled token, fed at the next step.
        var lastToken: Int32 = 0
        var generated = 0
        var detokenizer = StreamingDetokenizer()
        /// The raw continuation (what `Generator` builds), and how many of its characters
        /// have been handed out.
        var text = ""
        var emitted = 0
        /// What was handed out: `text` without its leading whitespace.
        var delivered = ""
        var maxBatchSeen = 0
        var outcome: Result<LocalGeneration, ExpertError>?

        init(_ spec: GenerationSpec) {
            id = spec.id
            model = spec.model
            promptTokens = spec.promptTokens
            maxTokens = spec.maxTokens
            stop = spec.stop.filter { !$0.isEmpty }
            holdBack = stop.map(\.count).max() ?? 0
            onDelta = spec.onDelta
            sampler = Sampler(spec.sampling)
        }

        var usageSoFar: ReportedUsage {
            ReportedUsage(promptTokens: promptTokens.count, completionTokens: generated, cacheMissTokens: promptTokens.count)
        }
    }

    /// Ids and cancellation flags, touched synchronously from cancellation handlers.
    private final class Flags: Sendable {
        private struct State {
            var nextID: UInt64 = 0
            var cancelled: Set<UInt64> = []
        }

        private let state = Mutex(State())

        func newID() -> UInt64 {
            state.withLock { state in
                state.nextID &+= 1
                return state.nextID
            }
        }

        func cancel(_ id: UInt64) { state.withLock { _ = $0.cancelled.insert(id) } }
        func forget(_ id: UInt64) { state.withLock { _ = $0.cancelled.remove(id) } }
        var cancelled: Set<UInt64> { state.withLock { $0.cancelled } }
    }

    private let compute: LocalComputeThread
    private let limit: BatchLimit
    private nonisolated let flags = Flags()
    private var context: LanguageModelContext?
    private var queued: [Job] = []
    private var active: [Job] = []
    private var leading = false
    /// Callers waiting for their generation to end or for the lead.
    private var waiters: [UInt64: CheckedContinuation<Void, Never>] = [:]
    /// Wake-ups that arrived before their caller started waiting.
    private var earlyWakes: Set<UInt64> = []
    private(set) var statistics = LocalBatchStatistics()

    init(compute: LocalComputeThread, limit: BatchLimit) {
        self.compute = compute
        self.limit = limit
    }

    nonisolated func newID() -> UInt64 { flags.newID() }

    /// Flags a generation as cancelled; the leader ends it before the next step.
    nonisolated func cancel(_ id: UInt64) { flags.cancel(id) }

    /// Drops a finished generation's flag (a cancellation can race with its end).
    nonisolated func forget(_ id: UInt64) { flags.forget(id) }

    /// Runs one generation in the shared batch and returns when it has ended.
    func generate(_ spec: GenerationSpec) async -> Result<LocalGeneration, ExpertError> {
        let job = Job(spec)
        statistics.generations += 1
        queued.append(job)
        if !leading {
            leading = true
            await lead(job)
        }
        while job.outcome == nil {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                if earlyWakes.remove(job.id) != nil {
                    continuation.resume()
                } else {
                    waiters[job.id] = continuation
                }
            }
            // Woken with no outcome: the previous leader handed over the lead.
            if job.outcome == nil { await lead(job) }
        }
        earlyWakes.remove(job.id)
        return job.outcome ?? .failure(ExpertError(.providerError, "the local generation ended without a result"))
    }

    // MARK: - The loop

    /// Runs steps until `mine` has ended, then hands the lead to a waiting caller.
    private func lead(_ mine: Job) async {
        while mine.outcome == nil {
            sweepCancelled()
            admit(model: mine.model.model)
            guard mine.outcome == nil else { break }
            guard !active.isEmpty else {
                complete(mine, .failure(ExpertError(.providerError, "the local batch scheduler found nothing to run")))
                break
            }
            await step()
        }
        leading = false
        if let next = active.first ?? queued.first {
            leading = true
            wake(next.id)
        }
    }

    private func wake(_ id: UInt64) {
        if let waiter = waiters.removeValue(forKey: id) {
            waiter.resume()
        } else {
            earlyWakes.insert(id)
        }
    }

    private func sweepCancelled() {
        let cancelled = flags.cancelled
        guard !cancelled.isEmpty else { return }
        for job in queued + active where cancelled.contains(job.id) {
            complete(job, .failure(ExpertError(.cancelled, "the call was cancelled", usage: job.usageSoFar)))
        }
    }

    /// Moves waiting generations into the batch while there is room.
    private func admit(model: LanguageModel) {
        let context: LanguageModelContext
        if let existing = self.context, existing.model.isSame(as: model) {
            context = existing
        } else {
            context = LanguageModelContext(model: model, maxBatch: Self.tokensPerStep)
            self.context = context
        }
        let room = min(limit.value, Self.tokensPerStep / 2)
        while active.count < room, !queued.isEmpty {
            let job = queued.removeFirst()
            if job.maxTokens == 0 {
                finish(job, .length)
                continue
            }
            job.cache = context.makeCache(capacity: job.promptTokens.count + job.maxTokens + 1)
            active.append(job)
        }
    }

    /// Result of one forward pass: the sampled token and the advanced sampler of every
    /// sequence that wanted logits, in batch order.
    private struct Sampled: Sendable {
        var tokens: [Int32]
        var samplers: [Sampler]
    }

    /// One forward pass over every running sequence.
    private func step() async {
        guard let context else { return }
        var batch: [SequenceToken] = []
        var inBatch: [Job] = []
        var sampling: [Job] = []
        // Decoding sequences first: one token each.
        for job in active where job.fed >= job.promptTokens.count {
            guard let cache = job.cache else { continue }
            batch.append(SequenceToken(cache: cache, token: job.lastToken, position: job.fed, wantsLogits: true))
            job.fed += 1
            inBatch.append(job)
            sampling.append(job)
        }
        // Then prompt tokens, as many as fit.
        var room = Self.tokensPerStep - batch.count
        var promptTokens = 0
        for job in active where job.fed < job.promptTokens.count && room > 0 {
            guard let cache = job.cache else { continue }
            let end = min(job.promptTokens.count, job.fed + room)
            for position in job.fed..<end {
                batch.append(
                    SequenceToken(
                        cache: cache, token: job.promptTokens[position], position: position, wantsLogits: position == job.promptTokens.count - 1))
            }
            room -= end - job.fed
            promptTokens += end - job.fed
            job.fed = end
            inBatch.append(job)
            if end == job.promptTokens.count { sampling.append(job) }
        }
        guard !batch.isEmpty else { return }
        statistics.steps += 1
        statistics.promptTokens += promptTokens
        statistics.sampledTokens += sampling.count
        statistics.maxSequencesPerStep = max(statistics.maxSequencesPerStep, inBatch.count)
        for job in inBatch { job.maxBatchSeen = max(job.maxBatchSeen, inBatch.count) }

        let samplers = sampling.map(\.sampler)
        let work = ExclusiveTransfer((context, batch))
        let result = await compute.run { () -> Result<Sampled, LocalInferenceError> in
            let (context, batch) = work.value
            do throws(LocalInferenceError) {
                let logits = try context.forward(batch)
                var samplers = samplers
                var tokens: [Int32] = []
                tokens.reserveCapacity(logits.count)
                for index in logits.indices { tokens.append(samplers[index].sample(logits[index])) }
                return .success(Sampled(tokens: tokens, samplers: samplers))
            } catch {
                return .failure(error)
            }
        }
        switch result {
        case .success(let sampled):
            for (index, job) in sampling.enumerated() where index < sampled.tokens.count {
                job.sampler = sampled.samplers[index]
                accept(sampled.tokens[index], for: job)
            }
        case .failure(let error):
            for job in inBatch {
                complete(job, .failure(ExpertError(.providerError, "the local model failed: \(error.description)", usage: job.usageSoFar)))
            }
        }
    }

    /// `Generator.generate`'s rules for one sampled token.
    private func accept(_ next: Int32, for job: Job) {
        if job.model.endTokens.contains(next) {
            finish(job, .endOfSequence)
            return
        }
        job.generated += 1
        job.text += job.detokenizer.append(job.model.model.tokenizer.pieceBytes(next))
        if let hit = Self.firstStop(job.stop, in: job.text) {
            job.text = String(job.text[..<hit])
            finish(job, .stop)
            return
        }
        // Hold back what could be the start of a stop string.
        let safe = max(job.emitted, job.text.count - job.holdBack)
        if safe > job.emitted {
            emit(String(job.text.dropFirst(job.emitted).prefix(safe - job.emitted)), for: job)
            job.emitted = safe
        }
        if job.generated >= job.maxTokens {
            finish(job, .length)
            return
        }
        guard let cache = job.cache, job.fed < cache.capacity else {
            finish(job, .length)
            return
        }
        job.lastToken = next
    }

    /// Hands a piece of text to the caller's delta handler, leading whitespace dropped.
    private func emit(_ piece: String, for job: Job) {
        var piece = Substring(piece)
        if job.delivered.isEmpty { piece = piece.drop(while: \.isWhitespace) }
        guard !piece.isEmpty else { return }
        job.delivered += piece
        job.onDelta?(ModelDelta(text: String(piece)))
    }

    private func finish(_ job: Job, _ reason: FinishReason) {
        if reason != .stop { job.text += job.detokenizer.flush() }
        if job.text.count > job.emitted {
            emit(String(job.text.dropFirst(job.emitted)), for: job)
            job.emitted = job.text.count
        }
        complete(
            job,
            .success(
                LocalGeneration(
                    text: job.delivered, promptTokens: job.promptTokens.count, completionTokens: job.generated, finishReason: reason,
                    maxBatchSeen: job.maxBatchSeen)))
    }

    /// Ends a generation: frees its cache, takes it out of the batch, wakes its caller.
    private func complete(_ job: Job, _ outcome: Result<LocalGeneration, ExpertError>) {
        guard job.outcome == nil else { return }
        job.outcome = outcome
        job.cache = nil
        active.removeAll { $0 === job }
        queued.removeAll { $0 === job }
        wake(job.id)
    }

    /// Where the earliest stop string starts in `text` (as `Generator`).
    static func firstStop(_ stops: [String], in text: String) -> String.Index? {
        guard !stops.isEmpty else { return nil }
        var index = text.startIndex
        while index < text.endIndex {
            let rest = text[index...]
            if stops.contains(where: { rest.hasPrefix($0) }) { return index }
            index = text.index(after: index)
        }
        return nil
    }
}
