/// The SentencePiece ("llama" in GGUF) tokenizer, reproducing llama.cpp's `llm_tokenizer_spm`
/// byte for byte, because the model was trained on exactly those ids and the golden tests
/// compare against llama.cpp.
///
/// Encoding: user-defined tokens (Gemma has runs of spaces, newlines and tabs, and HTML tags)
/// are cut out of the text first, longest first; each remaining fragment has its spaces
/// replaced by ▁, is split into UTF-8 characters, and adjacent pairs whose concatenation is
/// in the vocabulary are merged, highest score first (leftmost on ties); pieces that are not
/// tokens fall back to `<0xXX>` byte tokens. BOS is prepended; no space prefix is added.
public struct SentencePieceTokenizer: Sendable {
    /// Token type codes from `tokenizer.ggml.token_type`.
    public enum TokenType: Int32, Sendable {
        case normal = 1
        case unknown = 2
        case control = 3
        case userDefined = 4
        case unused = 5
        case byte = 6
    }

    public let pieces: PieceTable
    public let scores: [Float]
    public let types: [TokenType]
    public let bos: Int32
    public let eos: Int32
    public let addBOS: Bool
    public let addSpacePrefix: Bool
    private let byteTokens: [Int32]
    /// Control, unknown and user-defined tokens, longest first: matched before SentencePiece
    /// runs (user-defined always; control and unknown only when parsing special tokens).
    private let specials: [(bytes: [UInt8], id: Int32, userDefined: Bool)]

    public var vocabularySize: Int { pieces.count }

    public init(gguf: GGUFFile) throws(LocalInferenceError) {
        let model = try gguf.string("tokenizer.ggml.model")
        guard model == "llama" else { throw .unsupportedTokenizer(model) }
        let pieces: GGUFStringArray
        switch gguf.metadata["tokenizer.ggml.tokens"] {
        case .strings(let table): pieces = table
        default: throw .missingMetadata(key: "tokenizer.ggml.tokens", expected: "an array of strings")
        }
        var scores = [Float](repeating: 0, count: pieces.count)
        if let s = gguf.metadata["tokenizer.ggml.scores"] {
            guard case .numbers(_, let values) = s else { throw .missingMetadata(key: "tokenizer.ggml.scores", expected: "an array of numbers") }
            guard values.count == pieces.count else { throw .corrupt("tokenizer.ggml.scores has \(values.count) entries for \(pieces.count) tokens") }
            for (i, v) in values.enumerated() { scores[i] = Float(v) }
        }
        var types = [TokenType](repeating: .normal, count: pieces.count)
        if let t = gguf.metadata["tokenizer.ggml.token_type"] {
            guard case .numbers(_, let values) = t else { throw .missingMetadata(key: "tokenizer.ggml.token_type", expected: "an array of integers") }
            guard values.count == pieces.count else {
                throw .corrupt("tokenizer.ggml.token_type has \(values.count) entries for \(pieces.count) tokens")
            }
            for (i, v) in values.enumerated() { types[i] = TokenType(rawValue: Int32(exactly: v) ?? 1) ?? .normal }
        }
        // llama.cpp forces end-of-generation-looking pieces to control type when a model
        // ships them as normal text (Gemma 3 has "</s>" as a normal token); mirror it so
        // the ids agree when a prompt contains one.
        let table = PieceTable(pieces)
        for eogText in ["</s>", "<end_of_turn>", "<|endoftext|>", "<|im_end|>", "<|eot_id|>"] {
            if let i = table.id(of: Array(eogText.utf8)).map(Int.init), types[i] != .control { types[i] = .control }
        }
        let bos = Int32(gguf.metadata["tokenizer.ggml.bos_token_id"]?.intValue ?? 1)
        let eos = Int32(gguf.metadata["tokenizer.ggml.eos_token_id"]?.intValue ?? 2)
        let addBOS = gguf.metadata["tokenizer.ggml.add_bos_token"]?.boolValue ?? true
        let addSpace = gguf.metadata["tokenizer.ggml.add_space_prefix"]?.boolValue ?? true
        try self.init(table: table, scores: scores, types: types, bos: bos, eos: eos, addBOS: addBOS, addSpacePrefix: addSpace)
    }

    public init(
        pieces: [[UInt8]], scores: [Float], types: [TokenType], bos: Int32, eos: Int32,
        addBOS: Bool = true, addSpacePrefix: Bool = false
    ) throws(LocalInferenceError) {
        var bytes: [UInt8] = []
        var starts: [Int32] = [0]
        for p in pieces {
            bytes += p
            starts.append(Int32(bytes.count))
        }
        try self.init(
            table: PieceTable(GGUFStringArray(bytes: bytes, starts: starts)), scores: scores, types: types,
            bos: bos, eos: eos, addBOS: addBOS, addSpacePrefix: addSpacePrefix)
    }

    init(
        table pieces: PieceTable, scores: [Float], types: [TokenType], bos: Int32, eos: Int32,
        addBOS: Bool, addSpacePrefix: Bool
    ) throws(LocalInferenceError) {
        guard pieces.count == scores.count, pieces.count == types.count, !pieces.isEmpty else {
            throw .invalidArgument("tokenizer tables differ in length")
        }
        guard (0..<Int32(pieces.count)).contains(bos), (0..<Int32(pieces.count)).contains(eos) else {
            throw .corrupt("BOS \(bos) or EOS \(eos) is outside the vocabulary of \(pieces.count)")
        }
        self.pieces = pieces
        self.scores = scores
        self.types = types
        self.bos = bos
        self.eos = eos
        self.addBOS = addBOS
        self.addSpacePrefix = addSpacePrefix
        let hex = Array("0123456789ABCDEF".utf8)
        var byteTokens = [Int32](repeating: -1, count: 256)
        for b in 0..<256 {
            let name: [UInt8] = Array("<0x".utf8) + [hex[b >> 4], hex[b & 15]] + Array(">".utf8)
            byteTokens[b] = pieces.id(of: name) ?? pieces.id(of: [UInt8(b)]) ?? -1
        }
        self.byteTokens = byteTokens
        var sp: [(bytes: [UInt8], id: Int32, userDefined: Bool)] = []
        for (i, t) in types.enumerated() where (t == .userDefined || t == .control || t == .unknown) && !pieces[i].isEmpty {
            sp.append((Array(pieces[i]), Int32(i), t == .userDefined))
        }
        sp.sort { $0.bytes.count != $1.bytes.count ? $0.bytes.count > $1.bytes.count : $0.id < $1.id }
        self.specials = sp
    }

    /// Token ids for `text`, with BOS first when the model asks for it (`addSpecial`).
    /// With `parseSpecial` (the default, as llama.cpp's tools and server), control tokens
    /// written in the text, such as `<start_of_turn>`, become those tokens; without it they
    /// are tokenized as plain text.
    public func encode(_ text: String, addSpecial: Bool = true, parseSpecial: Bool = true) -> [Int32] {
        encode(bytes: Array(text.utf8), addSpecial: addSpecial, parseSpecial: parseSpecial)
    }

    public func encode(bytes text: [UInt8], addSpecial: Bool = true, parseSpecial: Bool = true) -> [Int32] {
        var output: [Int32] = []
        if addSpecial && addBOS { output.append(bos) }
        var isPrevSpecial = true
        for fragment in partition(text, parseSpecial: parseSpecial) {
            switch fragment {
            case .token(let id):
                output.append(id)
                isPrevSpecial = true
            case .text(let range):
                var bytes: [UInt8] = []
                bytes.reserveCapacity(range.count * 3 + 3)
                if addSpacePrefix && isPrevSpecial { bytes += [0xE2, 0x96, 0x81] }
                for b in text[range] {
                    if b == 0x20 { bytes += [0xE2, 0x96, 0x81] } else { bytes.append(b) }
                }
                spm(bytes, into: &output)
                isPrevSpecial = false
            }
        }
        return output
    }

    private enum Fragment {
        case text(Range<Int>)
        case token(Int32)
    }

    /// Cuts special tokens out of the text, longest token first, leftmost occurrences first
    /// (llama.cpp's tokenizer_st_partition).
    private func partition(_ text: [UInt8], parseSpecial: Bool) -> [Fragment] {
        var fragments: [Fragment] = text.isEmpty ? [] : [.text(0..<text.count)]
        var present = [Bool](repeating: false, count: 256)
        for b in text { present[Int(b)] = true }
        for (needle, id, userDefined) in specials where (userDefined || parseSpecial) && present[Int(needle[0])] {
            if needle.count > text.count { continue }
            var next: [Fragment] = []
            next.reserveCapacity(fragments.count)
            for f in fragments {
                guard case .text(let range) = f, range.count >= needle.count else {
                    next.append(f)
                    continue
                }
                var start = range.lowerBound
                var i = range.lowerBound
                let last = range.upperBound - needle.count
                while i <= last {
                    if text[i] == needle[0] && matches(text, at: i, needle) {
                        if i > start { next.append(.text(start..<i)) }
                        next.append(.token(id))
                        i += needle.count
                        start = i
                    } else {
                        i += 1
                    }
                }
                if start < range.upperBound { next.append(.text(start..<range.upperBound)) }
            }
            fragments = next
        }
        return fragments
    }

    private func matches(_ text: [UInt8], at i: Int, _ needle: [UInt8]) -> Bool {
        for j in 1..<needle.count where text[i + j] != needle[j] { return false }
        return true
    }

    private struct Symbol {
        var start: Int
        var n: Int
        var prev: Int
        var next: Int
    }

    /// SentencePiece merging of one fragment (already ▁-escaped), as llm_tokenizer_spm_session.
    private func spm(_ text: [UInt8], into output: inout [Int32]) {
        guard !text.isEmpty else { return }
        var symbols: [Symbol] = []
        var offs = 0
        while offs < text.count {
            let len = min(Self.utf8Length(text[offs]), text.count - offs)
            let index = symbols.count
            offs += len
            symbols.append(Symbol(start: offs - len, n: len, prev: index - 1, next: offs == text.count ? -1 : index + 1))
        }
        var heap = BigramHeap()
        var revMerge: [[UInt8]: (Int, Int)] = [:]

        func tryAdd(_ left: Int, _ right: Int) {
            guard left >= 0, right >= 0 else { return }
            let s = symbols[left].start
            let piece = text[s..<(s + symbols[left].n + symbols[right].n)]
            guard let id = pieces.id(of: piece) else { return }
            heap.push((left: left, right: right, score: scores[Int(id)], size: piece.count))
            revMerge[Array(piece)] = (left, right)
        }

        for i in 1..<symbols.count { tryAdd(i - 1, i) }
        while let b = heap.pop() {
            let l = symbols[b.left]
            let r = symbols[b.right]
            if l.n == 0 || r.n == 0 || l.n + r.n != b.size { continue }
            symbols[b.left].n += r.n
            symbols[b.right].n = 0
            symbols[b.left].next = r.next
            if r.next >= 0 { symbols[r.next].prev = b.left }
            tryAdd(symbols[b.left].prev, b.left)
            tryAdd(b.left, symbols[b.left].next)
        }

        func resegment(_ index: Int) {
            let sym = symbols[index]
            let piece = Array(text[sym.start..<(sym.start + sym.n)])
            if let id = pieces.id(of: piece) {
                output.append(id)
                return
            }
            if let (l, r) = revMerge[piece] {
                resegment(l)
                resegment(r)
                return
            }
            for byte in piece {
                let id = byteTokens[Int(byte)]
                if id >= 0 { output.append(id) }
            }
        }
        var i = 0
        while i != -1 {
            resegment(i)
            i = symbols[i].next
        }
    }

    static func utf8Length(_ first: UInt8) -> Int {
        // As llama.cpp's unicode_len_utf8: by the high nibble; continuation bytes count as 1.
        let lookup: [Int] = [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4]
        return lookup[Int(first >> 4)]
    }

    // MARK: decoding

    /// The bytes a token stands for in output text: ▁ becomes a space, `<0xXX>` its byte;
    /// control and unknown tokens print nothing unless `special` (as llama.cpp's token_to_piece).
    public func pieceBytes(_ id: Int32, special: Bool = false) -> [UInt8] {
        guard id >= 0, Int(id) < pieces.count else { return [] }
        let piece = Array(pieces[Int(id)])
        switch types[Int(id)] {
        case .control, .unknown:
            return special ? piece : []
        case .userDefined:
            return piece
        case .normal:
            var out: [UInt8] = []
            out.reserveCapacity(piece.count)
            var i = 0
            while i < piece.count {
                if i + 2 < piece.count, piece[i] == 0xE2, piece[i + 1] == 0x96, piece[i + 2] == 0x81 {
                    out.append(0x20)
                    i += 3
                } else {
                    out.append(piece[i])
                    i += 1
                }
            }
            return out
        case .byte:
            // "<0xXX>"
            guard piece.count == 6, let v = UInt8(String(decoding: piece[3..<5], as: UTF8.self), radix: 16) else { return [] }
            return [v]
        case .unused:
            return []
        }
    }

    /// Text for a sequence of ids (invalid UTF-8 is repaired with U+FFFD).
    public func decode(_ ids: [Int32]) -> String {
        var bytes: [UInt8] = []
        for id in ids { bytes += pieceBytes(id) }
        return String(decoding: bytes, as: UTF8.self)
    }
}

/// The vocabulary: every piece's bytes in one buffer, and an open-addressing hash index from
/// bytes to id. (262k pieces as separate arrays, plus a dictionary keyed by them, cost ~20 MB
/// of small heap blocks; this is ~5 MB.) A duplicated piece maps to its last id, as llama.cpp's
/// `token_to_id`, which is filled in id order.
public struct PieceTable: Sendable, RandomAccessCollection {
    private let storage: GGUFStringArray
    /// Ids + 1 (0 = empty), a power of two at least twice the vocabulary.
    private let slots: [Int32]
    private let mask: Int

    init(_ storage: GGUFStringArray) {
        self.storage = storage
        var size = 16
        while size < storage.count * 2 { size <<= 1 }
        mask = size - 1
        var slots = [Int32](repeating: 0, count: size)
        for i in 0..<storage.count {
            var h = Self.hash(storage[i]) & mask
            while slots[h] != 0 {
                if storage[Int(slots[h]) - 1].elementsEqual(storage[i]) { break }
                h = (h + 1) & mask
            }
            slots[h] = Int32(i + 1)
        }
        self.slots = slots
    }

    public var startIndex: Int { 0 }
    public var endIndex: Int { storage.count }
    public subscript(i: Int) -> ArraySlice<UInt8> { storage[i] }

    /// The id of the piece with exactly these bytes.
    public func id<Bytes: Collection<UInt8>>(of piece: Bytes) -> Int32? {
        var h = Self.hash(piece) & mask
        while slots[h] != 0 {
            let id = Int(slots[h]) - 1
            if storage[id].elementsEqual(piece) { return Int32(id) }
            h = (h + 1) & mask
        }
        return nil
    }

    /// FNV-1a.
    private static func hash<Bytes: Collection<UInt8>>(_ bytes: Bytes) -> Int {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in bytes { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
        return Int(truncatingIfNeeded: h ^ (h >> 29))
    }
}

/// Turns token bytes into text as they stream, holding back an incomplete UTF-8 sequence
/// (a character split across byte tokens) until its last byte arrives.
public struct StreamingDetokenizer: Sendable {
    private var pending: [UInt8] = []
    public init() {}

    public mutating func append(_ bytes: [UInt8]) -> String {
        pending += bytes
        // Find the longest prefix that does not end inside a UTF-8 sequence.
        var cut = pending.count
        var i = pending.count - 1
        var back = 0
        while i >= 0 && back < 4 {
            let b = pending[i]
            if b & 0xC0 == 0x80 {
                i -= 1
                back += 1
                continue
            }
            let need = b >= 0xF0 ? 4 : b >= 0xE0 ? 3 : b >= 0xC0 ? 2 : 1
            if need > pending.count - i { cut = i }
            break
        }
        let out = String(decoding: pending[0..<cut], as: UTF8.self)
        pending.removeFirst(cut)
        return out
    }

    public mutating func flush() -> String {
        defer { pending = [] }
        return String(decoding: pending, as: UTF8.self)
    }
}

/// A binary max-heap of bigrams: highest score first, then smallest left index (llama.cpp's order).
private struct BigramHeap {
    private var items: [(left: Int, right: Int, score: Float, size: Int)] = []

    private static func before(_ a: (left: Int, right: Int, score: Float, size: Int), _ b: (left: Int, right: Int, score: Float, size: Int)) -> Bool {
        a.score > b.score || (a.score == b.score && a.left < b.left)
    }

    mutating func push(_ b: (left: Int, right: Int, score: Float, size: Int)) {
        items.append(b)
        var i = items.count - 1
        while i > 0 {
            let p = (i - 1) / 2
            guard Self.before(items[i], items[p]) else { break }
            items.swapAt(i, p)
            i = p
        }
    }

    mutating func pop() -> (left: Int, right: Int, score: Float, size: Int)? {
        guard let top = items.first else { return nil }
        let last = items.removeLast()
        if !items.isEmpty {
            items[0] = last
            var i = 0
            while true {
                let l = 2 * i + 1
                let r = l + 1
                var m = i
                if l < items.count && Self.before(items[l], items[m]) { m = l }
                if r < items.count && Self.before(items[r], items[m]) { m = r }
                if m == i { break }
                items.swapAt(i, m)
                i = m
            }
        }
        return top
    }
}
