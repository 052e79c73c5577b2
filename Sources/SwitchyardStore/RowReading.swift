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
