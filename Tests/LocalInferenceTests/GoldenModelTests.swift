import Testing

@testable import LocalInference

/// The forward pass against llama.cpp on the real model (fixtures from Scripts/llama-reference.sh).
@Suite(.serialized) struct GoldenModelTests {
    /// Largest allowed difference of one logit (absolute, on logits of magnitude 10–50).
    ///
    /// Measured, not guessed: our first position agrees with llama.cpp to the fixtures' printed
    /// precision (2e-7: the Q8_0/Q5_0 kernels and the attention scores sum in ggml's order,
    /// norms and the FFN are bit-faithful), and the residual stream of later positions agrees
    /// to 4–5 digits through layer 8. From there this model amplifies rounding: its attention
    /// output is tiny next to the residual and goes through an RMSNorm, so a one-ulp
    /// difference in the fp16 attention accumulator can move a logit by units. llama.cpp
    /// shows the same against itself: its two CPU attention paths (flash attention on/off)
    /// differ by up to 2.45 on these 16 prompts (on "Albert Einstein was born in", the year's
    /// digits), and their greedy outputs part ways on 10 of them. Our largest difference is
    /// 3.14, at that same place; 3.5 allows for it. `meanTolerance` is what catches a wrong
    /// kernel, norm, RoPE or mask, which moves logits by several units at every position.
    static let tolerance = 3.5

    /// Largest allowed mean difference over every recorded logit of a prompt (measured:
    /// 0.15–0.32 per prompt).
    static let meanTolerance = 0.4

    /// A step is decisive when llama.cpp's top-1 beats its top-2 by more than 0.75 (about
    /// what its flash-on/off paths differ by on a typical prompt): there our greedy choice
    /// must agree. Below it neither engine's choice is meaningful.
    static let decisiveMargin = 0.75

    /// Prompts whose whole 64-token greedy continuation must be identical to llama.cpp's: the
    /// five that matched when the 16-prompt fixtures were made (llama.cpp's own two attention
    /// paths agree on these too). The other eleven part ways only at near-ties — llama.cpp's
    /// top-1/top-2 margin at every step where we differ is below 0.35 — and are held to the
    /// decisive steps.
    static let exactPrompts = [
        "def fibonacci(n):\n", "Water boils at a temperature of", "Monday, Tuesday, Wednesday,",
        "One, two, three, four,", "To make a cup of tea, first",
    ]

    /// Teacher-forced run over prompt + llama.cpp's continuation: on the exact prompts our
    /// argmax equals llama.cpp's token at every one of 64 steps (so free greedy decoding is
    /// identical), on the others at every decisive step; our logits for llama.cpp's top-5
    /// ids are within `tolerance` everywhere and `meanTolerance` on average per prompt.
    @Test func greedyContinuationsAndLogitsMatchLlamaCpp() throws {
        let model = try Support.model()
        let fixture = try Support.fixture("generation.json", as: GenerationFixture.self)
        #expect(fixture.cases.count >= 16)
        let ctx = InferenceContext(model: model, maxBatch: 32)
        var worst = 0.0
        for c in fixture.cases {
            #expect(model.tokenizer.encode(c.prompt) == c.prompt_ids)
            let steps = min(c.continuation.count, 64)
            #expect(steps >= 64, "fixture continuation for \(c.prompt.debugDescription) is shorter than 64 tokens")
            let tokens = c.prompt_ids + c.continuation.prefix(steps - 1)
            let cache = ctx.makeCache(capacity: tokens.count + 1)
            let batch = tokens.enumerated().map { i, t in BatchToken(cache: cache, token: t, position: i, wantsLogits: true) }
            let logits = try ctx.forward(batch)
            #expect(logits.count == tokens.count)
            let n = c.prompt_ids.count
            let exact = Self.exactPrompts.contains(c.prompt)
            let margins = Dictionary(uniqueKeysWithValues: c.positions.map { ($0.pos, $0.top[0][1] - $0.top[1][1]) })
            for step in 0..<steps {
                let pos = n - 1 + step
                guard exact || (margins[pos] ?? 0) > Self.decisiveMargin else { continue }
                let mine = Sampler.argmax(logits[pos])
                #expect(
                    mine == c.continuation[step], "prompt \(c.prompt.debugDescription) step \(step): ours \(mine), llama.cpp \(c.continuation[step])")
            }
            var total = 0.0
            var count = 0.0
            for p in c.positions where p.pos < logits.count {
                for pair in p.top {
                    let id = Int(pair[0])
                    let diff = abs(Double(logits[p.pos][id]) - pair[1])
                    worst = max(worst, diff)
                    total += diff
                    count += 1
                    #expect(
                        diff <= Self.tolerance,
                        "prompt \(c.prompt.debugDescription) pos \(p.pos) id \(id): ours \(logits[p.pos][id]), llama.cpp \(pair[1])")
                }
            }
            #expect(count > 0 && total / count <= Self.meanTolerance, "prompt \(c.prompt.debugDescription): mean logit difference \(total / count)")
        }
        print("golden: largest logit difference from llama.cpp \(worst)")
    }

    /// The generator (prefill in batches, then one token at a time) reproduces llama.cpp's
    /// greedy text, and batched decoding of several sequences gives the same tokens as
    /// decoding each alone.
    @Test func generatorAndBatchedDecodingMatch() throws {
        let model = try Support.model()
        let fixture = try Support.fixture("generation.json", as: GenerationFixture.self)
        let gen = Generator(model: model, maxBatch: 4)  // forces a multi-chunk prefill
        let c = try #require(fixture.cases.first { $0.prompt == Self.exactPrompts[0] })
        let result = try gen.generate(prompt: c.prompt, maxTokens: 64)
        #expect(result.tokens == Array(c.continuation.prefix(64)))
        #expect(result.text == c.pieces.prefix(64).joined())

        // Three sequences decoded together, 24 steps each.
        let cases = fixture.cases.filter { Self.exactPrompts.contains($0.prompt) }
        let ctx = InferenceContext(model: model, maxBatch: 16)
        var caches: [KVCache] = []
        var next: [Int32] = []
        for c in cases {
            let cache = ctx.makeCache(capacity: 128)
            let b = c.prompt_ids.enumerated().map { i, t in BatchToken(cache: cache, token: t, position: i, wantsLogits: i == c.prompt_ids.count - 1)
            }
            next.append(Sampler.argmax(try ctx.forward(b)[0]))
            caches.append(cache)
        }
        var produced = Array(repeating: [Int32](), count: cases.count)
        for _ in 0..<24 {
            for i in cases.indices { produced[i].append(next[i]) }
            let batch = cases.indices.map { i in BatchToken(cache: caches[i], token: next[i], position: caches[i].count, wantsLogits: true) }
            next = try ctx.forward(batch).map { Sampler.argmax($0) }
        }
        for (i, c) in cases.enumerated() {
            #expect(produced[i] == Array(c.continuation.prefix(24)), "sequence \(i) in a batch diverged")
        }
    }
    /// Past the 512-token window, sliding layers keep only a ring of recent keys: a sequence
    /// of 600 tokens fed 16 at a time (ring of 528 rows, wrapped) ends with exactly the logits
    /// of the same tokens in one batch through a cache that keeps every position.
    @Test func slidingLayersRingMatchesAFullCache() throws {
        let model = try Support.model()
        let sentence = model.tokenizer.encode("The quick brown fox jumps over the lazy dog, and then it runs away. ", addSpecial: false)
        let tokens = [model.tokenizer.bos] + (0..<100).flatMap { _ in sentence }.prefix(599)
        #expect(tokens.count == 600)

        let ring = InferenceContext(model: model, maxBatch: 16)
        let ringCache = ring.makeCache(capacity: tokens.count)
        #expect(ringCache.slots.contains(512 + 16), "sliding layers keep a ring")
        var last: [Float] = []
        var start = 0
        while start < tokens.count {
            let end = min(tokens.count, start + 16)
            let batch = (start..<end).map { BatchToken(cache: ringCache, token: tokens[$0], position: $0, wantsLogits: $0 == tokens.count - 1) }
            if let logits = try ring.forward(batch).last { last = logits }
            start = end
        }

        let full = InferenceContext(model: model, maxBatch: tokens.count)
        let fullCache = full.makeCache(capacity: tokens.count)
        #expect(fullCache.slots.allSatisfy { $0 == tokens.count }, "a batch as long as the sequence keeps every position")
        let reference = try full.forward(
            tokens.enumerated().map {
                BatchToken(cache: fullCache, token: $1, position: $0, wantsLogits: $0 == tokens.count - 1)
            })
        #expect(last == reference.last)
    }
    /// A forward pass refuses, before computing anything, tokens that do not continue their
    /// sequence (the ring keeps only what continuing tokens can see) and caches made for
    /// another model; the cache is left as it was.
    @Test func tokensMustContinueTheirSequenceOnTheirModel() throws {
        let model = try Support.model()
        let ctx = InferenceContext(model: model, maxBatch: 8)
        let cache = ctx.makeCache(capacity: 32)
        _ = try ctx.forward([0, 1, 2].map { BatchToken(cache: cache, token: model.tokenizer.bos, position: $0, wantsLogits: false) })
        #expect(cache.count == 3)
        for positions in [[2], [4], [3, 5], [0]] {
            #expect(throws: LocalInferenceError.self, "positions \(positions)") {
                try ctx.forward(positions.map { BatchToken(cache: cache, token: 818, position: $0, wantsLogits: true) })
            }
            #expect(cache.count == 3)
        }
        let path = try #require(LocalModelLocator.find(repoRoot: Support.repoRoot))
        let other = try Gemma3Model(path: path)
        let foreign = InferenceContext(model: other, maxBatch: 8).makeCache(capacity: 32)
        #expect(throws: LocalInferenceError.self) {
            try ctx.forward([BatchToken(cache: foreign, token: 818, position: 0, wantsLogits: true)])
        }
    }
}
