import SwitchyardCore

/// One model call as the ledger records it (`GET /v1/usage`). Money is a decimal
/// string: JSON numbers would invite floating point into billing.
public struct APILedgerRow: Codable, Sendable, Equatable {
    public var run: String
    public var step: String
    public var attempt: Int
    public var call: Int
    public var expert: String
    public var model: String
    public var promptTokens: Int
    public var cacheHitTokens: Int
    public var cacheMissTokens: Int
    public var completionTokens: Int
    public var reasoningTokens: Int
    /// Null when the model has no price.
    public var costUSD: String?
    public var priceID: String?
    /// False when the provider never reported usage: `cost_usd` is then the reservation.
    public var usageKnown: Bool

    public init(
        run: String, step: String, attempt: Int, call: Int, expert: String, model: String, promptTokens: Int, cacheHitTokens: Int,
        cacheMissTokens: Int, completionTokens: Int, reasoningTokens: Int, costUSD: String?, priceID: String?, usageKnown: Bool
    ) {
        self.run = run
        self.step = step
        self.attempt = attempt
        self.call = call
        self.expert = expert
        self.model = model
        self.promptTokens = promptTokens
        self.cacheHitTokens = cacheHitTokens
        self.cacheMissTokens = cacheMissTokens
        self.completionTokens = completionTokens
        self.reasoningTokens = reasoningTokens
        self.costUSD = costUSD
        self.priceID = priceID
        self.usageKnown = usageKnown
    }

    private enum CodingKeys: String, CodingKey {
        case run, step, attempt, call, expert, model
        case promptTokens = "prompt_tokens"
        case cacheHitTokens = "cache_hit_tokens"
        case cacheMissTokens = "cache_miss_tokens"
        case completionTokens = "completion_tokens"
        case reasoningTokens = "reasoning_tokens"
        case costUSD = "cost_usd"
        case priceID = "price_id"
        case usageKnown = "usage_known"
    }
}

/// `GET /v1/usage`: one page of ledger rows.
public struct APIUsagePage: Codable, Sendable, Equatable {
    public var calls: [APILedgerRow]
    public var nextCursor: String?

    public init(calls: [APILedgerRow], nextCursor: String?) {
        self.calls = calls
        self.nextCursor = nextCursor
    }

    private enum CodingKeys: String, CodingKey {
        case calls
        case nextCursor = "next_cursor"
    }
}

/// The figures of a cost group or a report's total. `unpriced_calls` are calls of
/// models without a price (not in `cost_usd`); `estimated_calls` are in `cost_usd` at
/// their upper-bound estimate. `key` is the group's dimension values (absent in a total).
public struct APICostFigures: Codable, Sendable, Equatable {
    public var key: [String: String]?
    public var calls: Int
    public var promptTokens: Int
    public var cacheHitTokens: Int
    public var cacheMissTokens: Int
    public var completionTokens: Int
    public var reasoningTokens: Int
    public var costUSD: String
    public var unpricedCalls: Int
    public var estimatedCalls: Int
    /// Of `calls`, those the `pro` expert answered; of `cost_usd`, what they cost. The
    /// server sums them with the rest, so `yard costs` need not ask again by expert.
    public var proCalls: Int
    public var proCostUSD: String

    public init(
        key: [String: String]?, calls: Int, promptTokens: Int, cacheHitTokens: Int, cacheMissTokens: Int, completionTokens: Int,
        reasoningTokens: Int, costUSD: String, unpricedCalls: Int, estimatedCalls: Int, proCalls: Int, proCostUSD: String
    ) {
        self.key = key
        self.calls = calls
        self.promptTokens = promptTokens
        self.cacheHitTokens = cacheHitTokens
        self.cacheMissTokens = cacheMissTokens
        self.completionTokens = completionTokens
        self.reasoningTokens = reasoningTokens
        self.costUSD = costUSD
        self.unpricedCalls = unpricedCalls
        self.estimatedCalls = estimatedCalls
        self.proCalls = proCalls
        self.proCostUSD = proCostUSD
    }

    private enum CodingKeys: String, CodingKey {
        case key, calls
        case promptTokens = "prompt_tokens"
        case cacheHitTokens = "cache_hit_tokens"
        case cacheMissTokens = "cache_miss_tokens"
        case completionTokens = "completion_tokens"
        case reasoningTokens = "reasoning_tokens"
        case costUSD = "cost_usd"
        case unpricedCalls = "unpriced_calls"
        case estimatedCalls = "estimated_calls"
        case proCalls = "pro_calls"
        case proCostUSD = "pro_cost_usd"
    }

    /// Every figure; `key` only in a group.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        if let key { try container.encode(key, forKey: .key) }
        try container.encode(calls, forKey: .calls)
        try container.encode(promptTokens, forKey: .promptTokens)
        try container.encode(cacheHitTokens, forKey: .cacheHitTokens)
        try container.encode(cacheMissTokens, forKey: .cacheMissTokens)
        try container.encode(completionTokens, forKey: .completionTokens)
        try container.encode(reasoningTokens, forKey: .reasoningTokens)
        try container.encode(costUSD, forKey: .costUSD)
        try container.encode(unpricedCalls, forKey: .unpricedCalls)
        try container.encode(estimatedCalls, forKey: .estimatedCalls)
        try container.encode(proCalls, forKey: .proCalls)
        try container.encode(proCostUSD, forKey: .proCostUSD)
    }
}

/// `GET /v1/costs`: the groups and their total.
public struct APICostReport: Codable, Sendable, Equatable {
    public var groups: [APICostFigures]
    public var total: APICostFigures

    public init(groups: [APICostFigures], total: APICostFigures) {
        self.groups = groups
        self.total = total
    }
}

/// A tenant's monthly budget and this month's spend; `monthly_usd` and `on_budget`
/// are null when the tenant has no budget.
public struct APIBudget: Codable, Sendable, Equatable {
    public var monthlyUSD: String?
    public var onBudget: String?
    public var spentUSD: String
    public var reservedUSD: String
    /// The alert thresholds (50, 80, 100 %) passed this month.
    public var alerts: [Int]

    public init(monthlyUSD: String?, onBudget: String?, spentUSD: String, reservedUSD: String, alerts: [Int]) {
        self.monthlyUSD = monthlyUSD
        self.onBudget = onBudget
        self.spentUSD = spentUSD
        self.reservedUSD = reservedUSD
        self.alerts = alerts
    }

    private enum CodingKeys: String, CodingKey {
        case alerts
        case monthlyUSD = "monthly_usd"
        case onBudget = "on_budget"
        case spentUSD = "spent_usd"
        case reservedUSD = "reserved_usd"
    }
}

/// `GET /v1/budget`, `GET|PUT /v1/admin/tenants/{tenant}/budget`.
public struct APIBudgetEnvelope: Codable, Sendable, Equatable {
    public var budget: APIBudget

    public init(budget: APIBudget) { self.budget = budget }
}

/// `PUT /v1/admin/tenants/{tenant}/budget {"monthly_usd", "on_budget"?}`. The amount
/// is kept as sent (a decimal string) for the route to parse as money, and `on_budget`
/// as sent for the route to check after the amount (the first bad field is reported).
public struct APISetBudgetRequest: Codable, Sendable, Equatable {
    public var monthlyUSD: String
    public var onBudget: JSONValue?

    public init(monthlyUSD: String, onBudget: String?) {
        self.monthlyUSD = monthlyUSD
        self.onBudget = onBudget.map(JSONValue.string)
    }

    private enum CodingKeys: String, CodingKey {
        case monthlyUSD = "monthly_usd"
        case onBudget = "on_budget"
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        switch try container.json(forKey: .monthlyUSD) {
        case .string(let text)?: monthlyUSD = text
        case .int?, .double?:
            throw RequestRefusal("monthly_usd must be a decimal string such as \"25.00\", not a JSON number (money is never floating point)")
        default: throw RequestRefusal("monthly_usd (a decimal string such as \"25.00\") is required")
        }
        onBudget = try container.json(forKey: .onBudget)
    }

    /// `on_budget` is sent only when chosen.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(monthlyUSD, forKey: .monthlyUSD)
        if let onBudget { try container.encode(onBudget, forKey: .onBudget) }
    }
}

/// A row of the price book, in the seed file's shape: USD per million tokens as
/// decimal strings, and optionally the peak-hour rates. The server always names a row;
/// a row `yard prices set` sends may leave `id` out (the server then says `MODEL@DATE`).
public struct APIPrice: Codable, Sendable, Equatable {
    public var id: String?
    public var model: String
    public var effectiveFrom: String
    public var inputCacheHit: String
    public var inputCacheMiss: String
    public var output: String
    public var peak: Peak?

    /// Peak-hour rates and the UTC windows they apply in.
    public struct Peak: Codable, Sendable, Equatable {
        public var windows: [Window]
        public var inputCacheHit: String
        public var inputCacheMiss: String
        public var output: String

        /// Days (`mon`…`sun`) and the UTC hours `[start_hour, end_hour)`.
        public struct Window: Codable, Sendable, Equatable {
            public var weekdays: [String]
            public var startHour: Int
            public var endHour: Int

            public init(weekdays: [String], startHour: Int, endHour: Int) {
                self.weekdays = weekdays
                self.startHour = startHour
                self.endHour = endHour
            }

            private enum CodingKeys: String, CodingKey {
                case weekdays
                case startHour = "start_hour"
                case endHour = "end_hour"
            }
        }

        public init(windows: [Window], inputCacheHit: String, inputCacheMiss: String, output: String) {
            self.windows = windows
            self.inputCacheHit = inputCacheHit
            self.inputCacheMiss = inputCacheMiss
            self.output = output
        }

        private enum CodingKeys: String, CodingKey {
            case windows, output
            case inputCacheHit = "input_cache_hit"
            case inputCacheMiss = "input_cache_miss"
        }
    }

    public init(
        id: String?, model: String, effectiveFrom: String, inputCacheHit: String, inputCacheMiss: String, output: String, peak: Peak?
    ) {
        self.id = id
        self.model = model
        self.effectiveFrom = effectiveFrom
        self.inputCacheHit = inputCacheHit
        self.inputCacheMiss = inputCacheMiss
        self.output = output
        self.peak = peak
    }

    private enum CodingKeys: String, CodingKey {
        case id, model, output, peak
        case effectiveFrom = "effective_from"
        case inputCacheHit = "input_cache_hit"
        case inputCacheMiss = "input_cache_miss"
    }

    /// `id` and `peak` are left out, not null, when a row has none: the price book's
    /// reader takes only the keys a row may have.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        if let id { try container.encode(id, forKey: .id) }
        try container.encode(model, forKey: .model)
        try container.encode(effectiveFrom, forKey: .effectiveFrom)
        try container.encode(inputCacheHit, forKey: .inputCacheHit)
        try container.encode(inputCacheMiss, forKey: .inputCacheMiss)
        try container.encode(output, forKey: .output)
        if let peak { try container.encode(peak, forKey: .peak) }
    }
}

/// `GET /v1/prices`: every row of the price book.
public struct APIPriceList: Codable, Sendable, Equatable {
    public var prices: [APIPrice]

    public init(prices: [APIPrice]) { self.prices = prices }
}

/// `POST /v1/admin/prices` (201): the row added.
public struct APIPriceEnvelope: Codable, Sendable, Equatable {
    public var price: APIPrice

    public init(price: APIPrice) { self.price = price }
}
