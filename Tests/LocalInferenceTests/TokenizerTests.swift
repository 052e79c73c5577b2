import Testing

@testable import LocalInference

@Suite struct TokenizerTests {
    /// A toy vocabulary: merges follow scores, not order; unknown bytes fall back to <0xXX>.
    static func toy() throws -> SentencePieceTokenizer {
        var pieces: [String] = ["<pad>", "<eos>", "<bos>", "<unk>"]
        var types: [SentencePieceTokenizer.TokenType] = [.control, .control, .control, .unknown]
        for b in 0..<256 {
            pieces.append("<0x" + String(b, radix: 16, uppercase: true).leftPad(2) + ">")
            types.append(.byte)
        }
        let normal = ["▁", "a", "b", "c", "ab", "bc", "abc", "▁a", "▁ab", "▁abc", "é"]
        pieces += normal
        types += normal.map { _ in .normal }
        pieces.append("\n\n")
        types.append(.userDefined)
        var scores = [Float](repeating: 0, count: pieces.count)
        func score(_ p: String, _ s: Float) { if let i = pieces.firstIndex(of: p) { scores[i] = s } }
        score("ab", -1)
        score("bc", -0.5)
        score("abc", -2)
        score("▁a", -3)
        score("▁ab", -4)
        score("▁abc", -5)
        return try SentencePieceTokenizer(pieces: pieces.map { Array($0.utf8) }, scores: scores, types: types, bos: 2, eos: 1)
    }

    @Test func mergesByScoreAndFallsBackToBytes() throws {
        let t = try Self.toy()
        func id(_ s: String) -> Int32 { t.pieces.id(of: Array(s.utf8))! }
        // "abc": bc (-0.5) beats ab (-1), then a+bc = "abc" exists → one token.
        #expect(t.encode("abc") == [2, id("abc")])
        // " a": ▁ + a merge.
        #expect(t.encode(" a") == [2, id("▁a")])
        // "d" is not in the vocabulary: byte fallback 0x64.
        #expect(t.encode("d") == [2, Int32(4 + 0x64)])
        // "ü" (two bytes) falls back to two byte tokens; "é" is a token.
        #expect(t.encode("üé") == [2, Int32(4 + 0xC3), Int32(4 + 0xBC), id("é")])
        // User-defined tokens are cut out first.
        #expect(t.encode("a\n\nb") == [2, id("a"), id("\n\n"), id("b")])
        #expect(t.encode("", addSpecial: true) == [2])
        #expect(t.encode("a", addSpecial: false) == [id("a")])
        // Control tokens are parsed by default, and are plain text without parseSpecial.
        #expect(t.encode("a<eos>") == [2, id("a"), 1])
        #expect(t.encode("a<eos>", parseSpecial: false).count > 3)
    }

    @Test func decodesPiecesBytesAndSplitCharacters() throws {
        let t = try Self.toy()
        #expect(t.decode(t.encode(" abc d üé\n\n")) == " abc d üé\n\n")
        var stream = StreamingDetokenizer()
        #expect(stream.append([0xC3]) == "")
        #expect(stream.append([0xBC, 0x41]) == "üA")
        #expect(stream.append([0xF0, 0x9F]) == "")
        #expect(stream.append([0x98, 0x80]) == "😀")
        #expect(stream.flush() == "")
    }

    /// Identical ids to llama.cpp's `llama-tokenize` for every fixture text.
    @Test func goldenTokenIDs() throws {
        let model = try Support.model()
        let fixture = try Support.fixture("tokenizer.json", as: TokenizerFixture.self)
        #expect(fixture.cases.count >= 20)
        for c in fixture.cases {
            #expect(model.tokenizer.encode(c.text) == c.ids, "text \(c.text.debugDescription)")
        }
    }

    /// Decoding llama.cpp's ids gives back the text (ids carry no lossy normalisation here).
    @Test func goldenRoundTrip() throws {
        let model = try Support.model()
        let fixture = try Support.fixture("tokenizer.json", as: TokenizerFixture.self)
        // Control tokens print nothing and a literal ▁ prints as a space (as in llama.cpp).
        for c in fixture.cases where !c.text.contains("<start_of_turn>") && !c.text.contains("▁") {
            #expect(model.tokenizer.decode(c.ids) == c.text, "text \(c.text.debugDescription)")
        }
    }
}

extension String {
    func leftPad(_ n: Int) -> String { String(repeating: "0", count: max(0, n - count)) + self }
}
