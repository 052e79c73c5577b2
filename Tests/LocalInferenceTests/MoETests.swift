import Foundation
import Testing

@testable import LocalInference

/// The DeepSeek MoE routing on hand-computed cases.
struct MoERoutingTests {
    func close(_ a: [ExpertChoice], _ b: [(Int, Float)], tol: Float = 1e-6) -> Bool {
        a.count == b.count && zip(a, b).allSatisfy { $0.expert == $1.0 && abs($0.weight - $1.1) <= tol }
    }

    @Test func softmaxGatingTopKNormalisationAndScaling() {
        // softmax(log [1, 2, 3, 4]) = [0.1, 0.2, 0.3, 0.4]
        let logits: [Float] = [1, 2, 3, 4].map { logf($0) }
        var r = MoERouting(expertCount: 4, expertsUsed: 2, gating: .softmax)
        #expect(close(MoE.route(logits: logits, bias: nil, routing: r), [(3, 0.4), (2, 0.3)]))
        r.normalizeWeights = true
        #expect(close(MoE.route(logits: logits, bias: nil, routing: r), [(3, 4.0 / 7), (2, 3.0 / 7)]))
        r.weightsScale = 2
        #expect(close(MoE.route(logits: logits, bias: nil, routing: r), [(3, 8.0 / 7), (2, 6.0 / 7)]))
        // scale 0 and 1 both mean "no scaling" (llama.cpp's convention)
        r.weightsScale = 0
        #expect(close(MoE.route(logits: logits, bias: nil, routing: r), [(3, 4.0 / 7), (2, 3.0 / 7)]))
    }

    @Test func sigmoidGatingIsPerExpert() {
        let logits: [Float] = [0, 2, -2, 1]
        let s: (Float) -> Float = { 1 / (1 + expf(-$0)) }
        var r = MoERouting(expertCount: 4, expertsUsed: 2, gating: .sigmoid)
        #expect(close(MoE.route(logits: logits, bias: nil, routing: r), [(1, s(2)), (3, s(1))]))
        r.normalizeWeights = true
        let sum = s(2) + s(1)
        #expect(close(MoE.route(logits: logits, bias: nil, routing: r), [(1, s(2) / sum), (3, s(1) / sum)]))
        // softmax on the same logits picks the same experts with different weights
        let soft = MoE.route(logits: logits, bias: nil, routing: MoERouting(expertCount: 4, expertsUsed: 2, gating: .softmax))
        let z = [0, 2, -2, 1].map { expf(Float($0)) }.reduce(0, +)
        #expect(close(soft, [(1, expf(2) / z), (3, expf(1) / z)]))
    }

    @Test func selectionBiasChangesTheChoiceButNotTheWeights() {
        let logits: [Float] = [0.4, 0.3, 0.2, 0.1]
        let r = MoERouting(expertCount: 4, expertsUsed: 2, gating: .sigmoid)
        let s: (Float) -> Float = { 1 / (1 + expf(-$0)) }
        #expect(close(MoE.route(logits: logits, bias: nil, routing: r), [(0, s(0.4)), (1, s(0.3))]))
        // bias lifts experts 3 and 2 above the others; their weights stay the unbiased sigmoid
        let biased = MoE.route(logits: logits, bias: [0, 0, 0.5, 1.0], routing: r)
        #expect(close(biased, [(3, s(0.1)), (2, s(0.2))]))
    }

    @Test func groupLimitedRouting() {
        // 8 experts in 4 groups of 2, 2 groups kept. Sigmoid(0) = 0.5, so selection = 0.5 + bias.
        let bias: [Float] = [0.9, -0.5, 0.3, 0.25, 0.25, 0.2, 0.0, 0.0]
        // group scores (sum of each group's two best): 1.4, 1.55, 1.45, 1.0 -> groups 1 and 2
        let masked = MoE.maskGroups(zip([Float](repeating: 0.5, count: 8), bias).map { $0 + $1 }, groupCount: 4, groupsUsed: 2)
        #expect(masked[0] == -.infinity && masked[1] == -.infinity && masked[6] == -.infinity && masked[7] == -.infinity)
        #expect(abs(masked[2] - 0.8) < 1e-6 && abs(masked[5] - 0.7) < 1e-6)
        var r = MoERouting(expertCount: 8, expertsUsed: 2, gating: .sigmoid, normalizeWeights: true)
        // without groups the single best expert (0) wins
        #expect(MoE.route(logits: [Float](repeating: 0, count: 8), bias: bias, routing: r).map(\.expert) == [0, 2])
        r.groupCount = 4
        r.groupsUsed = 2
        let grouped = MoE.route(logits: [Float](repeating: 0, count: 8), bias: bias, routing: r)
        #expect(close(grouped, [(2, 0.5), (3, 0.5)]))
        // with one group kept, only group 1 (experts 2, 3) is selectable
        r.groupsUsed = 1
        #expect(MoE.route(logits: [Float](repeating: 0, count: 8), bias: bias, routing: r).map(\.expert) == [2, 3])
    }

    @Test func topKOrdersBestFirstAndBreaksTiesByIndex() {
        #expect(MoE.topK([0.1, 0.5, 0.5, 0.9, -1], 3) == [3, 1, 2])
        #expect(MoE.topK([1, 2], 5) == [1, 0])
    }

    @Test func normalisationClampsATinySum() {
        let r = MoERouting(expertCount: 2, expertsUsed: 1, gating: .sigmoid, normalizeWeights: true)
        // sigmoid(-30) ≈ 9.4e-14: divided by the clamp 2^-14, not by itself
        let w = MoE.route(logits: [-30, -40], bias: nil, routing: r)[0].weight
        #expect(w < 1e-8)
    }

    @Test func invalidRoutingIsAnError() {
        #expect(throws: LocalInferenceError.self) { try MoERouting(expertCount: 8, expertsUsed: 9).validate() }
        #expect(throws: LocalInferenceError.self) { try MoERouting(expertCount: 8, expertsUsed: 2, groupCount: 3, groupsUsed: 1).validate() }
        #expect(throws: LocalInferenceError.self) { try MoERouting(expertCount: 8, expertsUsed: 2, groupCount: 4, groupsUsed: 4).validate() }
        #expect(throws: LocalInferenceError.self) { try MoERouting(expertCount: 8, expertsUsed: 5, groupCount: 4, groupsUsed: 2).validate() }
        #expect(throws: Never.self) { try MoERouting(expertCount: 8, expertsUsed: 3, groupCount: 4, groupsUsed: 2).validate() }
    }
}

/// The MoE block's arithmetic (experts through the kernels, weighted sum, shared expert) on a
/// tiny F32 block, against a direct loop.
struct MoEBlockTests {
    final class Owned {
        var buffers: [UnsafeMutablePointer<Float>] = []
        func matrix(_ rows: Int, _ cols: Int, _ values: [Float]) -> WeightMatrix {
            let p = UnsafeMutablePointer<Float>.allocate(capacity: rows * cols)
            for i in 0..<(rows * cols) { p[i] = values[i] }
            buffers.append(p)
            return WeightMatrix(name: "m", type: .f32, data: UnsafeRawPointer(p), rows: rows, cols: cols)
        }
        deinit { for b in buffers { b.deallocate() } }
    }

    @Test func weightedExpertsPlusSharedExpert() {
        let o = Owned()
        let e = 2
        let f = 2
        let ne = 3
        var rng = Xoshiro256(seed: 7)
        func rand(_ n: Int) -> [Float] { (0..<n).map { _ in Float(Double(rng.next() % 2000) / 1000 - 1) } }
        let experts = (0..<ne).map { _ in
            SwiGLUWeights(gate: o.matrix(f, e, rand(f * e)), up: o.matrix(f, e, rand(f * e)), down: o.matrix(e, f, rand(e * f)))
        }
        let shared = SwiGLUWeights(gate: o.matrix(f, e, rand(f * e)), up: o.matrix(f, e, rand(f * e)), down: o.matrix(e, f, rand(e * f)))
        let router = o.matrix(ne, e, [1, 0, 0, 1, -1, -1])
        let routing = MoERouting(expertCount: ne, expertsUsed: 2, gating: .softmax, normalizeWeights: true, weightsScale: 1.5)
        let ws = FeedForwardWorkspace(runner: ParallelRunner(threads: 2), maxBatch: 4, embd: e, hiddenSizes: [f], maxExperts: ne)
        let inputs: [[Float]] = [[0.5, -1], [2, 0.25], [-0.3, -0.7]]
        let acts = inputs.map { v -> ActivationBuffer in
            let a = ActivationBuffer(n: e)
            for i in 0..<e { a.f32[i] = v[i] }
            return a
        }
        defer { for a in acts { a.deallocate() } }
        let out = UnsafeMutablePointer<Float>.allocate(capacity: inputs.count * e)
        defer { out.deallocate() }

        func ffn(_ w: SwiGLUWeights, _ x: [Float]) -> [Float] {
            func mv(_ m: WeightMatrix, _ v: [Float]) -> [Float] {
                let p = m.data.assumingMemoryBound(to: Float.self)
                return (0..<m.rows).map { r in (0..<m.cols).reduce(Float(0)) { $0 + p[r * m.cols + $1] * v[$1] } }
            }
            let g = mv(w.gate, x)
            let u = mv(w.up, x)
            return mv(w.down, zip(g, u).map { $0 / (1 + expf(-$0)) * $1 })
        }
        for withShared in [false, true] {
            let m = MoEWeights(routing: routing, router: router, selectionBias: nil, experts: experts, shared: withShared ? shared : nil)
            let routes = ws.moe(m, acts, into: out)
            for (t, x) in inputs.enumerated() {
                let logits = [x[0], x[1], -x[0] - x[1]]
                let expectedRoute = MoE.route(logits: logits, bias: nil, routing: routing)
                #expect(routes[t] == expectedRoute)
                #expect(abs(expectedRoute.map(\.weight).reduce(0, +) - 1.5) < 1e-5)
                var expected = [Float](repeating: 0, count: e)
                for c in expectedRoute {
                    for (i, v) in ffn(experts[c.expert], x).enumerated() { expected[i] += c.weight * v }
                }
                if withShared { for (i, v) in ffn(shared, x).enumerated() { expected[i] += v } }
                for i in 0..<e { #expect(abs(out[t * e + i] - expected[i]) < 1e-5, "token \(t) shared \(withShared)") }
            }
        }
    }
}

// MARK: end to end

struct DeepSeek2Reference: Decodable {
    struct Case: Decodable {
        var ids: [Int32]
        var logits: [[Float]]
    }
    struct Greedy: Decodable {
        var prompt: [Int32]
        var continuation: [Int32]
    }
    struct Model: Decodable {
        var file: String
        var cases: [Case]
        var greedy: Greedy
        var min_routing_margin: Double
        var min_top1_margin: Double
    }
    var models: [String: Model]
}

struct LlamaCppReference: Decodable {
    struct Position: Decodable {
        var pos: Int
        var top: [[Double]]
    }
    /// `prompt`: the model's own prompt when it is not the file-wide one.
    struct Model: Decodable {
        var prompt: String?
        var prompt_ids: [Int32]
        var continuation: [Int32]
        var positions: [Position]
    }
    var prompt: String
    var models: [String: Model]
}

/// The synthetic DeepSeek-2 models of Scripts/make-synthetic-moe.py against the script's
/// independent NumPy (float64) forward pass.
///
/// Tolerance: the engine computes in fp32 what NumPy computes in fp64 from the same (F32/F16)
/// weights. Three layers of fp32 dot products of length ≤ 128 on O(1) activations leave the
/// logits (|logit| ≲ 10) a few 1e-6 from the exact values (measured 5.7e-6, 3.0e-6 and, with
/// YaRN, 6.9e-6, printed by the test), so 1e-4 leaves a 15× margin for other CPUs' libm and summation orders, while
/// any semantic slip (rope pairing, a wrong routing decision, a missing norm or shared expert)
/// moves logits by 0.1 or more. The
/// fixture records the smallest routing and top-1 margins (≥ 2.7e-3), far above fp32 noise, so
/// no expert choice or greedy token can flip by rounding.
struct DeepSeek2EndToEndTests {
    static let tolerance: Float = 1e-4
    /// The third is the V3 layout with YaRN RoPE scaling (factor 40 from 4096 positions,
    /// yarn_log_multiplier 0.0707), as real DeepSeek-V2/V3 files carry it. Its NumPy reference
    /// moves by up to 6.0 without YaRN and by 2.3 with YaRN's magnitudes but unscaled angles
    /// (printed by the script), so the tolerances below pin both the angles and the scales.
    static let names = ["deepseek2-v3-tiny", "deepseek2-lite-tiny", "deepseek2-v3-yarn-tiny"]

    static func load(_ name: String) throws -> DeepSeek2Model {
        try DeepSeek2Model(path: Support.testsDir.appendingPathComponent("Fixtures/\(name).gguf").path)
    }

    static func maxDiff(_ a: [Float], _ b: [Float]) -> Float {
        zip(a, b).reduce(0) { max($0, abs($1.0 - $1.1)) }
    }

    @Test func configIsReadFromMetadata() throws {
        let v3 = try Self.load("deepseek2-v3-tiny").config
        #expect(v3.splitMLA && v3.qLoraRank == 48 && v3.kvLoraRank == 32 && v3.qkNopeDim == 16 && v3.qkRopeDim == 8 && v3.valueDim == 16)
        #expect(
            v3.routing
                == MoERouting(
                    expertCount: 8, expertsUsed: 3, gating: .sigmoid, groupCount: 4, groupsUsed: 2,
                    normalizeWeights: true, weightsScale: 2.5))
        #expect(v3.denseLeadingLayers == 1 && v3.sharedExpertCount == 1 && v3.vocabularySize == 298)
        let lite = try Self.load("deepseek2-lite-tiny").config
        #expect(!lite.splitMLA && lite.qLoraRank == 0)
        #expect(lite.routing == MoERouting(expertCount: 6, expertsUsed: 2, gating: .softmax, weightsScale: 1))
        // Without YaRN metadata the attention scale is exactly 1/sqrt(nope + rope).
        #expect(v3.yarn == nil && lite.yarn == nil)
        #expect(v3.attentionScale == 1 / Float(24).squareRoot())
        let yarnModel = try Self.load("deepseek2-v3-yarn-tiny").config
        let yarn = try #require(yarnModel.yarn)
        #expect(yarn.factor == 40 && yarn.originalContextLength == 4096 && yarnModel.contextLength == 163_840)
        #expect(abs(yarn.logMultiplier - 0.707) < 1e-6 && yarn.attentionFactor == 1)
    }

    /// llama.cpp's YaRN numbers for deepseek2, by hand. Factor 40, 8 rope dims from 4096
    /// positions at base 10,000: correction dims floor(1.31) = 1 and ceil(2.81) = 3, so pairs
    /// 0 and 1 keep their angles, pair 2 is half interpolated, pair 3 fully. With a log
    /// multiplier (real DeepSeek files) the rotation is unscaled and kq_scale gains
    /// (1 + 0.1 · 0.707 · ln 40)²; without one both q_pe and k_pe are scaled by
    /// 1 + 0.1 · ln 40 and kq_scale by its square, as llama.cpp does.
    @Test func yarnFactorsFollowLlamaCpp() {
        let withLog = YaRNScaling(
            factor: 40, originalContextLength: 4096, ropeDimensions: 8, ropeBase: 10_000,
            logMultiplierMetadata: 0.0707, attentionFactor: 1)
        #expect(withLog.extrapolationMix == [1, 1, 0.5, 0])
        #expect(withLog.frequencyScale == 1 / Float(40))
        #expect(abs(withLog.rotationScale - 1) < 1e-6)
        #expect(abs(withLog.attentionMScale - (1 + 0.0707 * logf(40))) < 1e-5)
        let noLog = YaRNScaling(
            factor: 40, originalContextLength: 4096, ropeDimensions: 8, ropeBase: 10_000,
            logMultiplierMetadata: 0, attentionFactor: 1)
        #expect(abs(noLog.rotationScale - (1 + 0.1 * logf(40))) < 1e-5)
        #expect(abs(noLog.attentionMScale - (1 + 0.1 * logf(40))) < 1e-5)
        // rope.scaling.attn_factor multiplies the rotation.
        let halved = YaRNScaling(
            factor: 40, originalContextLength: 4096, ropeDimensions: 8, ropeBase: 10_000,
            logMultiplierMetadata: 0.0707, attentionFactor: 0.5)
        #expect(abs(halved.rotationScale - 0.5) < 1e-6)
    }

    @Test(arguments: names)
    func promptLogitsMatchNumPy(_ name: String) throws {
        let ref = try Support.fixture("deepseek2-reference.json", as: DeepSeek2Reference.self).models[name]!
        #expect(ref.min_routing_margin > 1e-4 && ref.min_top1_margin > 1e-3)
        let ctx = DeepSeek2Context(model: try Self.load(name), maxBatch: 5)  // chunks the longer prompts
        var worst: Float = 0
        for c in ref.cases {
            let cache = ctx.makeCache(capacity: c.ids.count)
            let batch = c.ids.enumerated().map { DeepSeek2BatchToken(cache: cache, token: $1, position: $0, wantsLogits: true) }
            let logits = try ctx.forward(batch)
            #expect(logits.count == c.logits.count)
            for (got, want) in zip(logits, c.logits) { worst = max(worst, Self.maxDiff(got, want)) }
        }
        print("\(name): max |Swift - NumPy| over all prompt logits = \(worst)")
        #expect(worst < Self.tolerance)
    }

    @Test(arguments: names)
    func incrementalDecodingWithTheCacheMatches(_ name: String) throws {
        let ref = try Support.fixture("deepseek2-reference.json", as: DeepSeek2Reference.self).models[name]!
        let ctx = DeepSeek2Context(model: try Self.load(name))
        // Two sequences decoded in lockstep, one token of each per forward pass.
        let a = ref.cases[0]
        let b = ref.cases[2]
        let ca = ctx.makeCache(capacity: a.ids.count)
        let cb = ctx.makeCache(capacity: b.ids.count)
        var worst: Float = 0
        for pos in 0..<max(a.ids.count, b.ids.count) {
            var batch: [DeepSeek2BatchToken] = []
            var want: [[Float]] = []
            if pos < a.ids.count {
                batch.append(.init(cache: ca, token: a.ids[pos], position: pos, wantsLogits: true))
                want.append(a.logits[pos])
            }
            if pos < b.ids.count {
                batch.append(.init(cache: cb, token: b.ids[pos], position: pos, wantsLogits: true))
                want.append(b.logits[pos])
            }
            for (got, w) in zip(try ctx.forward(batch), want) { worst = max(worst, Self.maxDiff(got, w)) }
        }
        #expect(ca.count == a.ids.count && cb.count == b.ids.count)
        #expect(worst < Self.tolerance)
    }

    @Test(arguments: names)
    func greedyGenerationIsDeterministicAndMatchesNumPy(_ name: String) throws {
        let ref = try Support.fixture("deepseek2-reference.json", as: DeepSeek2Reference.self).models[name]!
        let model = try Self.load(name)
        let first = try DeepSeek2Context(model: model, threads: 1).greedy(prompt: ref.greedy.prompt, maxTokens: ref.greedy.continuation.count)
        let second = try DeepSeek2Context(model: model, threads: 2).greedy(prompt: ref.greedy.prompt, maxTokens: ref.greedy.continuation.count)
        #expect(first == ref.greedy.continuation)
        #expect(first == second)
    }

    /// llama.cpp itself (top-5 logits recorded by the script with LLAMA_GOLDEN set). llama.cpp
    /// rounds activations to fp16 for F16 weights and inside flash attention, so it differs
    /// from exact arithmetic by up to ~8e-3 here (NumPy vs llama.cpp: 4.4e-3, 3.0e-3, and 7.7e-3
    /// on the YaRN model's longer 45-position prompt); 2e-2 allows for that.
    @Test(arguments: names)
    func topLogitsMatchLlamaCpp(_ name: String) throws {
        let ref = try Support.fixture("deepseek2-llama-cpp.json", as: LlamaCppReference.self).models[name]!
        let model = try Self.load(name)
        let ctx = DeepSeek2Context(model: model)
        let all = try Support.fixture("deepseek2-llama-cpp.json", as: LlamaCppReference.self)
        #expect(model.tokenizer.encode(ref.prompt ?? all.prompt) == ref.prompt_ids)
        let ids = ref.prompt_ids + ref.continuation
        let cache = ctx.makeCache(capacity: ids.count)
        let logits = try ctx.forward(ids.enumerated().map { .init(cache: cache, token: $1, position: $0, wantsLogits: true) })
        var worst: Double = 0
        for p in ref.positions {
            #expect(Sampler.argmax(logits[p.pos]) == Int32(p.top[0][0]))
            for pair in p.top { worst = max(worst, abs(Double(logits[p.pos][Int(pair[0])]) - pair[1])) }
        }
        print("\(name): max |Swift - llama.cpp| over top-5 logits = \(worst)")
        #expect(worst < 2e-2)
    }

    /// The first keys a deepseek2 config reads, so that a test fails on the next one.
    static let leadingMetadata: [(String, GGUFBuilder.Value)] = [
        ("general.architecture", .string("deepseek2")),
        ("deepseek2.embedding_length", .u32(64)),
        ("deepseek2.block_count", .u32(1)),
        ("deepseek2.attention.head_count", .u32(4)),
        ("deepseek2.attention.layer_norm_rms_epsilon", .f32(1e-6)),
    ]

    @Test func missingMetadataIsAClearError() throws {
        let bytes = GGUFBuilder.file(metadata: Self.leadingMetadata, tensors: [])
        let gguf = try GGUFFile(file: MappedFile(bytes: bytes))
        #expect(throws: LocalInferenceError.missingMetadata(key: "deepseek2.attention.kv_lora_rank", expected: "an integer (MLA latent size)")) {
            try DeepSeek2Config(gguf: gguf)
        }
        let gemma = try GGUFFile(file: MappedFile(bytes: GGUFBuilder.file(metadata: [("general.architecture", .string("gemma3"))], tensors: [])))
        #expect(throws: LocalInferenceError.unsupportedArchitecture("gemma3")) { try DeepSeek2Config(gguf: gemma) }
    }

    /// RoPE scalings other than YaRN are refused by name rather than silently ignored.
    @Test func otherRopeScalingsAreAClearError() throws {
        let bytes = GGUFBuilder.file(
            metadata: Self.leadingMetadata + [
                ("deepseek2.attention.kv_lora_rank", .u32(32)),
                ("deepseek2.rope.dimension_count", .u32(8)),
                ("deepseek2.attention.key_length", .u32(24)),
                ("deepseek2.attention.value_length", .u32(16)),
                ("deepseek2.rope.scaling.type", .string("linear")),
                ("deepseek2.rope.scaling.factor", .f32(2)),
            ], tensors: [])
        let gguf = try GGUFFile(file: MappedFile(bytes: bytes))
        #expect(throws: LocalInferenceError.unsupportedFeature(architecture: "deepseek2", feature: "linear RoPE scaling (factor 2.0)")) {
            try DeepSeek2Config(gguf: gguf)
        }
    }
}
