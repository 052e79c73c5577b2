/// The numbers the text model reads from a prompt, each scaled to about 0…1 so the fitted
/// weights are comparable and a strange prompt (a megabyte of digits) cannot run away with
/// the score. Extracted in one pass over the UTF-8 bytes, without Foundation, in a few
/// microseconds.
///
/// The list is the contract between this file, the fitted weights in `GateWeights.swift` and
/// `Scripts/gate/fit.py` (which reads `yard bench gate --features-out`): add features only at
/// the end, and refit.
public struct GateFeatures: Sendable, Hashable {
    /// Feature values in the order of `GateFeatures.names`.
    public var values: [Double]

    /// Stable names (for the feature dump and the fit script).
    public static let names: [String] = [
        "bias", "log_length", "words", "numbers", "math_symbols", "money_percent_fraction", "multi_step_words",
        "questions", "multiple_choice", "code_markers", "reasoning_words", "negations", "maths_words", "unit_words",
        "mean_word_length", "long_word_share", "sentences", "digit_share", "lines", "mc_x_log_length",
        "open_x_numbers", "open_x_log_length", "numbers_per_sentence", "statement_pairs",
    ]

    /// What a feature's contribution is called in a decision's reasons.
    static let labels: [String] = [
        "base rate", "prompt length", "word count", "numbers", "maths symbols", "money/percent/fraction", "multi-step wording",
        "questions", "multiple-choice shape", "code markers", "reasoning markers", "negations", "maths wording", "units",
        "word length", "long words", "sentences", "digit density", "lines", "long multiple-choice",
        "numbers in an open question", "length of an open question", "numbers per sentence", "paired statements",
    ]

    public static var count: Int { names.count }

    public subscript(name: String) -> Double? {
        Self.names.firstIndex(of: name).map { values[$0] }
    }

    public init(values: [Double]) {
        self.values = values
    }

    /// Extracts the features of `prompt`.
    public init(_ prompt: String) {
        self.init(prompt, keywords: KeywordTable.shared)
    }

    init(_ prompt: String, keywords: KeywordTable) {
        var scan = Scan()
        var text = prompt
        text.withUTF8 { bytes in scan.run(bytes, keywords: keywords) }
        values = scan.features()
    }
}

/// Keyword classes, looked up by a 64-bit FNV-1a hash of the lowercased ASCII word so that
/// scanning allocates nothing per word.
struct KeywordTable: Sendable {
    struct Classes: OptionSet, Sendable {
        let rawValue: UInt16
        static let multiStep = Classes(rawValue: 1 << 0)
        static let fraction = Classes(rawValue: 1 << 1)
        static let reasoning = Classes(rawValue: 1 << 2)
        static let negation = Classes(rawValue: 1 << 3)
        static let maths = Classes(rawValue: 1 << 4)
        static let code = Classes(rawValue: 1 << 5)
        static let units = Classes(rawValue: 1 << 6)
        static let statement = Classes(rawValue: 1 << 7)
    }

    static let maximumWordLength = 16
    let table: [UInt64: Classes]

    static let shared = KeywordTable()

    init() {
        let lists: [(Classes, [String])] = [
            (
                .multiStep,
                [
                    "then", "after", "each", "every", "remaining", "rest", "total", "twice", "times", "more", "less", "per",
                    "left", "double", "triple", "average", "difference", "altogether", "combined", "remainder", "spend",
                    "spends", "spent", "earn", "earns", "costs", "cost", "buys", "sells", "gives", "initially", "later",
                    "how", "many", "much", "than", "if", "instead", "respectively", "week", "weekly",
                ]
            ),
            (
                .fraction,
                [
                    "half", "third", "thirds", "quarter", "quarters", "percent", "percentage", "fraction", "twice", "ratio", "rate", "discount",
                    "interest", "profit",
                ]
            ),
            (
                .reasoning,
                [
                    "why", "explain", "prove", "proof", "statement", "argument", "implies", "therefore", "assume", "suppose", "must",
                    "valid", "conclusion", "premise", "infer", "inference", "because", "hence", "thus", "which", "following", "best",
                    "most", "likely", "consider",
                ]
            ),
            (.negation, ["not", "except", "never", "least", "none", "incorrect", "false", "cannot", "neither", "nor", "without", "unlikely"]),
            (
                .maths,
                [
                    "equation", "solve", "function", "integer", "integers", "prime", "probability", "derivative", "integral", "matrix",
                    "polynomial", "sqrt", "log", "sum", "product", "value", "x", "y", "n", "f", "g", "degree", "group", "ring", "field",
                    "mod", "modulo", "root", "roots", "vector", "linear", "graph", "area", "volume", "radius", "angle", "triangle",
                    "circle", "expression", "variable", "calculate", "compute", "evaluate", "number", "numbers",
                ]
            ),
            (
                .code,
                [
                    "def", "return", "class", "int", "void", "print", "code", "program", "algorithm", "python", "java", "var", "let", "func",
                    "import", "array", "loop", "null",
                ]
            ),
            (
                .units,
                [
                    "hours", "hour", "minutes", "minute", "days", "day", "weeks", "months", "month", "years", "year", "miles", "mile",
                    "km", "meters", "feet", "inches", "pounds", "dollars", "dollar", "cents", "cups", "liters", "gallons", "kg", "grams",
                    "seconds", "mph", "pages", "pieces",
                ]
            ),
            (.statement, ["statement", "statements", "true", "false"]),
        ]
        var table: [UInt64: Classes] = [:]
        for (classes, words) in lists {
            for word in words {
                table[Self.hash(Array(word.utf8)), default: []].insert(classes)
            }
        }
        self.table = table
    }

    static func hash(_ bytes: [UInt8]) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in bytes {
            hash = (hash ^ UInt64(byte | 0x20)) &* 0x0000_0100_0000_01b3
        }
        return hash
    }
}

/// The single pass over the prompt's bytes.
struct Scan {
    var bytes = 0
    var words = 0
    var letters = 0
    var longWords = 0
    var numbers = 0
    var digits = 0
    var mathSymbols = 0
    var moneyPercent = 0
    var questions = 0
    var codeMarkers = 0
    var sentences = 0
    var lines = 1
    var choiceLines = 0
    var classCounts = [Int](repeating: 0, count: 8)

    mutating func run(_ text: UnsafeBufferPointer<UInt8>, keywords: KeywordTable) {
        bytes = text.count
        var index = 0
        var lineStart = true
        while index < text.count {
            if lineStart {
                countChoiceLine(text, at: index)
                lineStart = false
            }
            let byte = text[index]
            if Self.isLetter(byte) {
                index = readWord(text, from: index, keywords: keywords)
            } else if Self.isDigit(byte) {
                index = readNumber(text, from: index)
            } else {
                lineStart = countSymbol(text, at: index)
                index += 1
            }
        }
    }

    /// "A. …", "B) …", "(C) …" at the start of a line: a multiple-choice option.
    @inline(__always)
    private mutating func countChoiceLine(_ text: UnsafeBufferPointer<UInt8>, at index: Int) {
        let count = text.count
        var probe = index
        while probe < count, text[probe] == 0x20 { probe += 1 }
        if probe < count, text[probe] == 0x28 { probe += 1 }  // "("
        if probe + 1 < count, (0x41...0x48).contains(text[probe]), text[probe + 1] == 0x2E || text[probe + 1] == 0x29 {
            choiceLines += 1
        }
    }

    /// A word: its length and, through its FNV-1a hash of lower-cased letters, the
    /// keyword classes it belongs to. Returns the index after it.
    @inline(__always)
    private mutating func readWord(_ text: UnsafeBufferPointer<UInt8>, from start: Int, keywords: KeywordTable) -> Int {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        var index = start
        while index < text.count, Self.isLetter(text[index]) {
            hash = (hash ^ UInt64(text[index] | 0x20)) &* 0x0000_0100_0000_01b3
            index += 1
        }
        let length = index - start
        words += 1
        letters += length
        if length >= 9 { longWords += 1 }
        if length <= KeywordTable.maximumWordLength, let classes = keywords.table[hash] {
            var bit = 0
            var raw = classes.rawValue
            while raw != 0 {
                if raw & 1 == 1 { classCounts[bit] += 1 }
                raw >>= 1
                bit += 1
            }
        }
        return index
    }

    /// A number ("1,000" and "3.5" are one). Returns the index after it.
    @inline(__always)
    private mutating func readNumber(_ text: UnsafeBufferPointer<UInt8>, from start: Int) -> Int {
        numbers += 1
        var index = start
        while index < text.count {
            let current = text[index]
            if Self.isDigit(current) {
                digits += 1
                index += 1
            } else if current == 0x2C || current == 0x2E, index + 1 < text.count, Self.isDigit(text[index + 1]) {
                index += 1
            } else {
                break
            }
        }
        return index
    }

    /// Any other byte: symbols of maths, money, questions, code and sentence ends.
    /// Returns whether it starts a new line.
    @inline(__always)
    private mutating func countSymbol(_ text: UnsafeBufferPointer<UInt8>, at index: Int) -> Bool {
        let count = text.count
        switch text[index] {
        case 0x0A:
            lines += 1
            return true
        case 0x3D, 0x5E, 0x2B, 0x2A, 0x2F, 0x3C, 0x3E, 0x5C:  // = ^ + * / < > backslash
            mathSymbols += 1
        case 0x2D:  // "-" between spaces or digits reads as minus
            if index > 0, index + 1 < count, text[index - 1] == 0x20 || Self.isDigit(text[index - 1]),
                text[index + 1] == 0x20 || Self.isDigit(text[index + 1])
            {
                mathSymbols += 1
            }
        case 0x24, 0x25:  // $ %
            moneyPercent += 1
        case 0x3F:  // ?
            questions += 1
            sentences += 1
        case 0x7B, 0x7D, 0x3B, 0x60:  // { } ; `
            codeMarkers += 1
        case 0x2E, 0x21:  // . !
            if index + 1 == count || text[index + 1] == 0x20 || text[index + 1] == 0x0A { sentences += 1 }
        case 0xCF, 0xE2:  // lead bytes of π, √, ∑, ∫, ≤, ≥ …: maths notation
            mathSymbols += 1
        default:
            break
        }
        return false
    }

    static func isLetter(_ byte: UInt8) -> Bool { (byte | 0x20) >= 0x61 && (byte | 0x20) <= 0x7A }
    static func isDigit(_ byte: UInt8) -> Bool { byte >= 0x30 && byte <= 0x39 }

    func features() -> [Double] {
        func capped(_ value: Double, _ scale: Double, _ cap: Double) -> Double { min(value / scale, cap) }
        let multipleChoice: Double = choiceLines >= 2 ? 1 : 0
        let open = 1 - multipleChoice
        let logLength = gateLog2(1 + Double(bytes)) / 10
        let numberFeature = capped(Double(numbers), 10, 3)
        let sentenceCount = max(sentences, 1)
        let statements = Double(classCounts[7])
        return [
            1,
            logLength,
            capped(Double(words), 100, 5),
            numberFeature,
            capped(Double(mathSymbols), 10, 3),
            capped(Double(moneyPercent + classCounts[1]), 5, 2),
            capped(Double(classCounts[0]), 10, 3),
            capped(Double(questions), 3, 1),
            multipleChoice,
            capped(Double(codeMarkers), 10, 2),
            capped(Double(classCounts[2]), 10, 2),
            capped(Double(classCounts[3]), 5, 2),
            capped(Double(classCounts[4]), 10, 2),
            capped(Double(classCounts[6]), 5, 2),
            words == 0 ? 0 : min(Double(letters) / Double(words) / 10, 2),
            words == 0 ? 0 : Double(longWords) / Double(words),
            capped(Double(sentences), 10, 3),
            bytes == 0 ? 0 : Double(digits) / Double(bytes),
            capped(Double(lines), 10, 3),
            multipleChoice * logLength,
            open * numberFeature,
            open * logLength,
            capped(Double(numbers) / Double(sentenceCount), 5, 2),
            capped(statements, 4, 2),
        ]
    }
}

/// log2 without Foundation.
@inline(__always)
func gateLog2(_ x: Double) -> Double {
    guard x > 0 else { return 0 }
    // x = m · 2^e with m in [1, 2); log2(m) by a short series on ln.
    let exponent = Double(x.exponent)
    let mantissa = x.significand
    let t = (mantissa - 1) / (mantissa + 1)
    let t2 = t * t
    let ln = 2 * t * (1 + t2 / 3 + t2 * t2 / 5 + t2 * t2 * t2 / 7 + t2 * t2 * t2 * t2 / 9)
    return exponent + ln / 0.693_147_180_559_945_3
}
