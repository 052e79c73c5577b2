import SwitchyardCore

/// A tenant's retention (`GET|PUT /v1/admin/tenants/{tenant}/retention`): what it set
/// (null: the server's default) and what applies, each written as `30d`, `12h` or
/// `forever`.
public struct APIRetention: Codable, Sendable, Equatable {
    /// How long the tenant's finished runs are kept, with their steps, events and signals.
    public var runs: String?
    /// How long their event logs are kept whole (then cut to the final event).
    public var events: String?
    public var effectiveRuns: String
    public var effectiveEvents: String

    public init(runs: String?, events: String?, effectiveRuns: String, effectiveEvents: String) {
        self.runs = runs
        self.events = events
        self.effectiveRuns = effectiveRuns
        self.effectiveEvents = effectiveEvents
    }

    private enum CodingKeys: String, CodingKey {
        case runs, events
        case effectiveRuns = "effective_runs"
        case effectiveEvents = "effective_events"
    }

    /// `runs` and `events` are always written, null when unset.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(runs, forKey: .runs)
        try container.encode(events, forKey: .events)
        try container.encode(effectiveRuns, forKey: .effectiveRuns)
        try container.encode(effectiveEvents, forKey: .effectiveEvents)
    }
}

/// `{"retention": {...}}`.
public struct APIRetentionEnvelope: Codable, Sendable, Equatable {
    public var retention: APIRetention

    public init(retention: APIRetention) { self.retention = retention }
}

/// `PUT /v1/admin/tenants/{tenant}/retention`: each field absent (unchanged), null (the
/// server's default), `forever`, or a retention of at least an hour (`30d`, `12h`).
public struct APISetRetentionRequest: Codable, Sendable, Equatable {
    public var runs: RetentionPeriod??
    public var events: RetentionPeriod??

    public init(runs: RetentionPeriod?? = .none, events: RetentionPeriod?? = .none) {
        self.runs = runs
        self.events = events
    }

    private enum CodingKeys: String, CodingKey { case runs, events }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        func period(_ key: CodingKeys) throws -> RetentionPeriod?? {
            let refusal = RequestRefusal(
                "\(key.stringValue) must be forever, a number of days like 30d, or a duration of at least 1h like 12h; null for the server's default",
                details: [APIProblem(path: key.stringValue, message: "expected forever, 30d, 12h or null")])
            switch try container.tristate(String.self, forKey: key, refusal: refusal) {
            case .none: return .none
            case .some(.none): return .some(nil)
            case .some(.some(let text)):
                guard let period = RetentionPeriod.parse(text), period.isValidSetting else { throw refusal }
                return .some(period)
            }
        }
        // In this order, so that the first bad field is the one reported.
        runs = try period(.runs)
        events = try period(.events)
    }

    /// Only the fields being changed are sent; a double optional's inner nil is `null`.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        if let runs { try container.encode(runs?.description, forKey: .runs) }
        if let events { try container.encode(events?.description, forKey: .events) }
    }
}

/// `POST /v1/admin/prune`: prune now, one tenant (`tenant`, an id) or all;
/// `older_than` replaces the runs' retention for this pass; `dry_run` only counts.
public struct APIPruneRequest: Codable, Sendable, Equatable {
    public var tenant: String?
    public var olderThan: TimeSpan?
    public var dryRun: Bool

    public init(tenant: String? = nil, olderThan: TimeSpan? = nil, dryRun: Bool = false) {
        self.tenant = tenant
        self.olderThan = olderThan
        self.dryRun = dryRun
    }

    private enum CodingKeys: String, CodingKey {
        case tenant
        case olderThan = "older_than"
        case dryRun = "dry_run"
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        let tenantRefusal = RequestRefusal(
            "tenant must be a tenant id (a UUID), or absent for every tenant", details: [APIProblem(path: "tenant", message: "expected a UUID")])
        tenant = try container.tristate(String.self, forKey: .tenant, refusal: tenantRefusal) ?? nil
        let ageRefusal = RequestRefusal(
            "older_than must be a number of days like 7d or a duration like 12h",
            details: [APIProblem(path: "older_than", message: "expected a duration like 7d or 12h")])
        switch try container.tristate(String.self, forKey: .olderThan, refusal: ageRefusal) {
        case .none, .some(.none): olderThan = nil
        case .some(.some(let text)):
            guard case .span(let span)? = RetentionPeriod.parse(text) else { throw ageRefusal }
            olderThan = span
        }
        let dryRefusal = RequestRefusal("dry_run must be true or false", details: [APIProblem(path: "dry_run", message: "expected a boolean")])
        dryRun = try container.tristate(Bool.self, forKey: .dryRun, refusal: dryRefusal).flatMap { $0 } ?? false
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        if let tenant { try container.encode(tenant, forKey: .tenant) }
        if let olderThan { try container.encode(RetentionPeriod.span(olderThan).description, forKey: .olderThan) }
        try container.encode(dryRun, forKey: .dryRun)
    }
}

/// `POST /v1/admin/prune`: what was deleted (or, with `dry_run`, would be).
public struct APIPruneResult: Codable, Sendable, Equatable {
    public var prune: Counts

    /// The pass's figures.
    public struct Counts: Codable, Sendable, Equatable {
        public var dryRun: Bool
        public var tenants: Int
        public var runs: Int
        public var steps: Int
        public var events: Int
        public var signals: Int
        /// Runs kept whose event logs were cut down to their final event.
        public var trimmedRuns: Int
        public var ledgerRows: Int

        public init(dryRun: Bool, tenants: Int, runs: Int, steps: Int, events: Int, signals: Int, trimmedRuns: Int, ledgerRows: Int) {
            self.dryRun = dryRun
            self.tenants = tenants
            self.runs = runs
            self.steps = steps
            self.events = events
            self.signals = signals
            self.trimmedRuns = trimmedRuns
            self.ledgerRows = ledgerRows
        }

        private enum CodingKeys: String, CodingKey {
            case dryRun = "dry_run"
            case tenants, runs, steps, events, signals
            case trimmedRuns = "trimmed_runs"
            case ledgerRows = "ledger_rows"
        }
    }

    public init(prune: Counts) { self.prune = prune }
}
