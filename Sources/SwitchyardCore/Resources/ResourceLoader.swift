import Yams

/// Bounds on what one YAML file may cost to load, so that a hostile
/// file is refused quickly and without using much memory.
public struct ResourceLimits: Sendable, Hashable {
    /// The largest file, in UTF-8 bytes.
    public var maxDocumentBytes: Int
    /// The deepest nesting of mappings and lists.
    public var maxDepth: Int
    /// The most aliases (`*name`) in a file, and the most alias expansions while
    /// reading it (an alias of a structure containing aliases counts each of them).
    public var maxAliases: Int
    /// The most steps in one workflow.
    public var maxStepsPerWorkflow: Int
    /// The most (non-empty) documents in one file.
    public var maxDocuments: Int
    /// The most YAML nodes in a file once aliases are expanded.
    public var maxNodes: Int

    public init(
        maxDocumentBytes: Int = 1 << 20, maxDepth: Int = 64, maxAliases: Int = 100, maxStepsPerWorkflow: Int = 1000,
        maxDocuments: Int = 200, maxNodes: Int = 1_000_000
    ) {
        self.maxDocumentBytes = maxDocumentBytes
        self.maxDepth = maxDepth
        self.maxAliases = maxAliases
        self.maxStepsPerWorkflow = maxStepsPerWorkflow
        self.maxDocuments = maxDocuments
        self.maxNodes = maxNodes
    }

    public static let `default` = ResourceLimits()
}

/// One problem found while loading or validating resources, with where it is.
public struct ValidationIssue: Sendable, Hashable, Codable, CustomStringConvertible {
    public var file: String
    /// 1-based line of the offending node (the key for unknown keys, the value for wrong values).
    public var line: Int
    /// 1-based column, counted in Unicode scalars as the YAML parser counts them.
    public var column: Int
    /// Where in the document: `steps[2].needs[0]`, `inputs.ticket.type`, or `""` for the document itself.
    public var path: String
    public var message: String

    public init(file: String, line: Int, column: Int, path: String, message: String) {
        self.file = file
        self.line = line
        self.column = column
        self.path = path
        self.message = message
    }

    public init(_ location: SourceLocation, path: String, message: String) {
        self.init(file: location.file, line: location.line, column: location.column, path: path, message: message)
    }

    public var location: SourceLocation { SourceLocation(file: file, line: line, column: column) }

    /// `file:line:column: path: message`, the format compilers use, so editors can jump to it.
    public var description: String {
        path.isEmpty ? "\(file):\(line):\(column): \(message)" : "\(file):\(line):\(column): \(path): \(message)"
    }
}

/// Why resources were refused: every problem found (up to 100), each with its location.
/// Nothing is stored when this is thrown.
public struct ResourceValidationError: Error, Sendable, CustomStringConvertible {
    public enum Code: String, Sendable {
        /// The text is not YAML at all; the issue carries the parser's position.
        case invalidYAML = "invalid_yaml"
        /// The YAML is fine but does not describe valid resources.
        case invalidResource = "invalid_resource"
    }

    public var code: Code
    /// A one-line summary suitable for an API error's `message`.
    public var message: String
    /// The problems, ordered by file and position.
    public var issues: [ValidationIssue]

    public init(code: Code, message: String, issues: [ValidationIssue]) {
        self.code = code
        self.message = message
        self.issues = issues
    }

    init(code: Code, issues: [ValidationIssue], total: Int? = nil) {
        let count = total ?? issues.count
        let summary: String
        if let first = issues.first {
            summary = count == 1 ? first.description : "\(count) problems; the first is \(first.description)"
        } else {
            summary = "invalid resources"
        }
        let shown = count > issues.count ? " (showing the first \(issues.count))" : ""
        self.init(code: code, message: summary + shown, issues: issues)
    }

    public var description: String {
        ([message] + (issues.count > 1 ? issues.map { "  " + $0.description } : [])).joined(separator: "\n")
    }
}

/// The resources a tenant already has stored, against which references in newly
/// applied documents are checked. Documents in the same batch count too, and win
/// over the catalog when they declare the same name.
public struct ResourceCatalog: Sendable {
    public var agents: [String: AgentSpec]
    public var tools: [String: ToolSpec]
    public var workflows: Set<String>

    public init(agents: [String: AgentSpec] = [:], tools: [String: ToolSpec] = [:], workflows: Set<String> = []) {
        self.agents = agents
        self.tools = tools
        self.workflows = workflows
    }

    public static let empty = ResourceCatalog()
}

/// Loads and validates YAML resource files.
///
/// `load` checks one file on its own: YAML syntax, limits, kinds, keys, types,
/// step graphs and templates. `validate` checks references between documents and
/// to the tenant's stored resources. Every problem is reported with file, line and
/// column, all of them at once (up to 100), and a file with any problem yields no
/// documents.
public struct ResourceLoader: Sendable {
    public var limits: ResourceLimits

    /// At most this many issues are reported for one call.
    public static let maxIssues = 100

    public init(limits: ResourceLimits = .default) {
        self.limits = limits
    }

    /// Parses every document in `text` (named `file` in messages) into resources.
    public func load(_ text: String, file: String) throws(ResourceValidationError) -> [ResourceDocument] {
        func fail(_ code: ResourceValidationError.Code, _ line: Int, _ column: Int, _ message: String) -> ResourceValidationError {
            ResourceValidationError(code: code, issues: [ValidationIssue(file: file, line: line, column: column, path: "", message: message)])
        }
        let size = text.utf8.count
        if size > limits.maxDocumentBytes {
            throw fail(.invalidResource, 1, 1, "the file is \(size) bytes; the limit is \(limits.maxDocumentBytes) bytes")
        }
        do {
            try YAMLPreScan(limits: limits).scan(text)
        } catch {
            throw fail(.invalidResource, error.line, error.column, error.message)
        }

        let source = SourceText(text)
        let issues = IssueCollector(file: file)
        var builder = YAMLTreeBuilder(limits: limits)
        var roots: [YNode] = []
        do {
            let parser = try Parser(yaml: text, encoding: .utf8)
            while let root = try parser.nextRoot() {
                let node = try builder.build(root)
                if node.isEmptyDocument { continue }
                roots.append(node)
                if roots.count > limits.maxDocuments {
                    throw fail(
                        .invalidResource, node.line, node.column,
                        "the file has more than \(limits.maxDocuments) documents; split it into several files")
                }
            }
        } catch let error as ResourceValidationError {
            throw error
        } catch let error as YAMLTreeBuilder.LimitExceeded {
            throw fail(.invalidResource, error.line, error.column, error.message)
        } catch let error as YamlError {
            let (line, column, message) = Self.describe(error)
            throw fail(.invalidYAML, line, column, message)
        } catch {
            throw fail(.invalidYAML, 1, 1, "the file could not be read as YAML: \(error)")
        }
        for problem in builder.problems {
            issues.add(line: problem.line, column: problem.column, path: "", problem.message)
        }

        var documents: [ResourceDocument] = []
        var seen: [String: SourceLocation] = [:]
        let separators = source.documentSeparatorLines()
        for root in roots {
            let decoder = DocumentDecoder(file: file, source: source, issues: issues, limits: limits)
            guard let resource = decoder.decode(root) else { continue }
            let key = "\(resource.kind.rawValue)/\(resource.name)"
            let nameLocation = decoder.locations["name"] ?? SourceLocation(file: file, line: root.line, column: root.column)
            if let first = seen[key] {
                issues.add(
                    line: nameLocation.line, column: nameLocation.column, path: "name",
                    "duplicate \(resource.kind.rawValue) '\(resource.name)': already defined at line \(first.line)")
                continue
            }
            seen[key] = nameLocation
            let (startLine, slice) = source.documentSlice(containingLine: root.line, separators: separators)
            documents.append(
                ResourceDocument(
                    source: slice, location: SourceLocation(file: file, line: startLine, column: 1), resource: resource,
                    locations: decoder.locations))
        }
        if let error = issues.error(code: .invalidResource) { throw error }
        return documents
    }

    /// Checks references between `documents` and to `catalog`: agents and tools used
    /// by steps, tools used by agents (stored or built in), child workflows.
    public func validate(_ documents: [ResourceDocument], catalog: ResourceCatalog) throws(ResourceValidationError) {
        let issues = IssueCollector(file: documents.first?.location.file ?? "")
        CrossReferenceValidator(documents: documents, catalog: catalog, issues: issues).run()
        if let error = issues.error(code: .invalidResource) { throw error }
    }

    /// `load` followed by `validate`.
    public func loadAndValidate(_ text: String, file: String, catalog: ResourceCatalog) throws(ResourceValidationError) -> [ResourceDocument] {
        let documents = try load(text, file: file)
        try validate(documents, catalog: catalog)
        return documents
    }

    /// Loads several files as one batch: each file is read on its own (problems keep
    /// their file names), then references are checked across all of them, so a
    /// workflow may use an agent from another file of the same batch.
    public func loadAndValidate(files: [(name: String, text: String)], catalog: ResourceCatalog) throws(ResourceValidationError) -> [ResourceDocument]
    {
        var documents: [ResourceDocument] = []
        var failures: [ResourceValidationError] = []
        for file in files {
            do {
                documents += try load(file.text, file: file.name)
            } catch {
                failures.append(error)
            }
        }
        if let first = failures.first {
            guard failures.count > 1 else { throw first }
            let issues = failures.flatMap(\.issues)
            let code: ResourceValidationError.Code = failures.contains { $0.code == .invalidYAML } ? .invalidYAML : .invalidResource
            let shown = Array(issues.prefix(Self.maxIssues))
            throw ResourceValidationError(
                code: code, message: "\(issues.count) problems in \(failures.count) files; the first is \(shown[0].description)", issues: shown)
        }
        try validate(documents, catalog: catalog)
        return documents
    }

    static func describe(_ error: YamlError) -> (Int, Int, String) {
        switch error {
        case .scanner(let context, let problem, let mark, _), .parser(let context, let problem, let mark, _),
            .composer(let context, let problem, let mark, _):
            var message = "invalid YAML: \(problem)"
            if let context { message += " (\(context.text) at line \(context.mark.line), column \(context.mark.column))" }
            return (mark.line, mark.column, message)
        case .duplicatedKeysInMapping(let duplicates, let context):
            let keys = duplicates.sorted().map { "'\($0)'" }.joined(separator: ", ")
            return (context.mark.line, context.mark.column, "duplicate key \(keys) in a mapping")
        case .reader(let problem, let offset, _, let yaml):
            if let offset {
                let prefix = yaml.prefix(offset)
                let line = prefix.reduce(1) { $1 == "\n" ? $0 + 1 : $0 }
                let column = prefix.reversed().prefix { $0 != "\n" }.count + 1
                return (line, column, "invalid YAML: \(problem)")
            }
            return (1, 1, "invalid YAML: \(problem)")
        default:
            return (1, 1, "invalid YAML: \(error)")
        }
    }
}

/// Collects issues for one call, keeping at most ``ResourceLoader/maxIssues``.
final class IssueCollector {
    let file: String
    private(set) var issues: [ValidationIssue] = []
    private(set) var total = 0

    init(file: String) { self.file = file }

    func add(_ issue: ValidationIssue) {
        total += 1
        if issues.count < ResourceLoader.maxIssues { issues.append(issue) }
    }

    func add(line: Int, column: Int, path: String, _ message: String) {
        add(ValidationIssue(file: file, line: line, column: column, path: path, message: message))
    }

    func add(_ location: SourceLocation, path: String, _ message: String) {
        add(ValidationIssue(location, path: path, message: message))
    }

    func error(code: ResourceValidationError.Code) -> ResourceValidationError? {
        guard !issues.isEmpty else { return nil }
        let sorted = issues.enumerated().sorted { a, b in
            (a.element.file, a.element.line, a.element.column, a.offset) < (b.element.file, b.element.line, b.element.column, b.offset)
        }.map(\.element)
        return ResourceValidationError(code: code, issues: sorted, total: total)
    }
}

/// The raw text of a file, split into lines, for document slices and exact columns.
struct SourceText {
    let text: String
    /// UTF-8 offset of the start of each line (line 1 at index 0).
    let lineStarts: [Int]

    init(_ text: String) {
        self.text = text
        var starts = [0]
        for (i, byte) in text.utf8.enumerated() where byte == UInt8(ascii: "\n") { starts.append(i + 1) }
        lineStarts = starts
    }

    var lineCount: Int { lineStarts.count }

    /// The text of 1-based `line`, without its line break.
    func line(_ line: Int) -> Substring {
        guard line >= 1, line <= lineStarts.count else { return "" }
        let utf8 = text.utf8
        let start = utf8.index(utf8.startIndex, offsetBy: lineStarts[line - 1])
        let endOffset = line < lineStarts.count ? lineStarts[line] - 1 : utf8.count
        var end = utf8.index(utf8.startIndex, offsetBy: endOffset)
        if end > start, utf8[utf8.index(before: end)] == UInt8(ascii: "\r") { end = utf8.index(before: end) }
        return text[start..<end]
    }

    /// Lines that start with a `---` or `...` document marker.
    func documentSeparatorLines() -> [Int] {
        var result: [Int] = []
        for n in 1...lineCount {
            let l = line(n)
            guard l.hasPrefix("---") || l.hasPrefix("...") else { continue }
            let rest = l.dropFirst(3)
            if rest.isEmpty || rest.first == " " || rest.first == "\t" { result.append(n) }
        }
        return result
    }

    /// The text of the document whose root node starts on `line`: from the line after
    /// the preceding `---` (or the file's start) to the line before the next marker.
    func documentSlice(containingLine rootLine: Int, separators: [Int]) -> (startLine: Int, text: String) {
        var start = 1
        if let before = separators.last(where: { $0 <= rootLine }) {
            start = before == rootLine ? before : before + 1
        }
        let end = separators.first(where: { $0 > rootLine }).map { $0 - 1 } ?? lineCount
        guard start <= end else { return (start, "") }
        let utf8 = text.utf8
        let from = utf8.index(utf8.startIndex, offsetBy: lineStarts[start - 1])
        let to = end < lineStarts.count ? utf8.index(utf8.startIndex, offsetBy: lineStarts[end]) : utf8.endIndex
        return (start, String(text[from..<to]))
    }
}
