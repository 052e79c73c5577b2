import PostgresNIO

extension AsyncSequence where Element == PostgresRow {
    /// The first row decoded as `columns`, or nil when there is none: for the many
    /// statements that return at most one row (a lookup by key, an `UPDATE … RETURNING`
    /// of one row, an aggregate), which would otherwise each loop over the rows.
    public func first<each Column: PostgresDecodable>(decoding columns: (repeat each Column).Type) async throws -> (repeat each Column)? {
        for try await row in self {
            return try row.decode((repeat each Column).self)
        }
        return nil
    }
}

/// The rows of a statement, all read: an `AsyncSequence` of `PostgresRow` like
/// PostgresNIO's row sequence, so that `.decode(…)` reads the same, but complete, so
/// that no connection stays leased while a caller walks it.
public struct PostgresRows: AsyncSequence, Sendable {
    public typealias Element = PostgresRow
    public let rows: [PostgresRow]

    public init(_ rows: [PostgresRow]) {
        self.rows = rows
    }

    public var isEmpty: Bool { rows.isEmpty }
    public var count: Int { rows.count }

    /// The rows, as PostgresNIO's `collect()` returns them.
    public func collect() -> [PostgresRow] { rows }

    public func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(base: rows.makeIterator())
    }

    public struct AsyncIterator: AsyncIteratorProtocol {
        var base: IndexingIterator<[PostgresRow]>
        public mutating func next() async -> PostgresRow? { base.next() }
    }
}
