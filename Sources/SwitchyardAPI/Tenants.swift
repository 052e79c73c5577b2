import SwitchyardCore

/// A tenant as listed: `{id, name}`.
public struct APITenant: Codable, Sendable, Equatable {
    public var id: String
    public var name: String

    public init(id: String, name: String) {
        self.id = id
        self.name = name
    }
}

/// `POST /v1/admin/tenants` (201): the tenant and its first API key, shown only here.
public struct APITenantCreated: Codable, Sendable, Equatable {
    public var tenant: APITenant
    public var apiKey: String

    public init(tenant: APITenant, apiKey: String) {
        self.tenant = tenant
        self.apiKey = apiKey
    }

    private enum CodingKeys: String, CodingKey {
        case tenant
        case apiKey = "api_key"
    }
}

/// `GET /v1/admin/tenants`.
public struct APITenantList: Codable, Sendable, Equatable {
    public var tenants: [APITenant]

    public init(tenants: [APITenant]) { self.tenants = tenants }
}

/// `POST /v1/admin/tenants/{tenant}/keys` (201): a new key, shown only here.
public struct APIKeyCreated: Codable, Sendable, Equatable {
    public var apiKey: String

    public init(apiKey: String) { self.apiKey = apiKey }

    private enum CodingKeys: String, CodingKey { case apiKey = "api_key" }
}

/// A tenant's settings; null means the server's default.
public struct APITenantSettings: Codable, Sendable, Equatable {
    public var gateThreshold: Double?
    public var egressAllow: [String]
    public var maxRunningSteps: Int?
    public var runsPerSecond: Double?
    public var runBurst: Int?

    public init(gateThreshold: Double?, egressAllow: [String], maxRunningSteps: Int?, runsPerSecond: Double?, runBurst: Int?) {
        self.gateThreshold = gateThreshold
        self.egressAllow = egressAllow
        self.maxRunningSteps = maxRunningSteps
        self.runsPerSecond = runsPerSecond
        self.runBurst = runBurst
    }

    private enum CodingKeys: String, CodingKey {
        case gateThreshold = "gate_threshold"
        case egressAllow = "egress_allow"
        case maxRunningSteps = "max_running_steps"
        case runsPerSecond = "runs_per_second"
        case runBurst = "run_burst"
    }
}

/// `GET /v1/admin/tenants/{tenant}`: `{"tenant": {id, name, settings}}`.
public struct APITenantDetail: Codable, Sendable, Equatable {
    public var tenant: Tenant

    /// The tenant with its settings.
    public struct Tenant: Codable, Sendable, Equatable {
        public var id: String
        public var name: String
        public var settings: APITenantSettings

        public init(id: String, name: String, settings: APITenantSettings) {
            self.id = id
            self.name = name
            self.settings = settings
        }
    }

    public init(tenant: Tenant) { self.tenant = tenant }
}

/// `PUT /v1/admin/tenants/{tenant}/gate|egress|limits`: the settings after the change.
public struct APITenantSettingsEnvelope: Codable, Sendable, Equatable {
    public var settings: APITenantSettings

    public init(settings: APITenantSettings) { self.settings = settings }
}

// MARK: - Requests

/// `POST /v1/admin/tenants {"name"}`.
public struct APICreateTenantRequest: Codable, Sendable, Equatable {
    public var name: String

    public init(name: String) { self.name = name }

    private enum CodingKeys: String, CodingKey { case name }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        guard let name = try? container.decode(String.self, forKey: .name) else {
            throw RequestRefusal("`name` (a string) is required")
        }
        self.name = name
    }
}

/// `PUT /v1/admin/tenants/{tenant}/gate {"threshold"}`: a number, or null for the default.
public struct APISetGateRequest: Codable, Sendable, Equatable {
    public var threshold: Double?

    public init(threshold: Double?) { self.threshold = threshold }

    private enum CodingKeys: String, CodingKey { case threshold }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        let refusal = RequestRefusal("`threshold` (a number from -1 to 1, or null for the server default) is required")
        guard let threshold = try container.tristate(Double.self, forKey: .threshold, refusal: refusal) else { throw refusal }
        self.threshold = threshold
    }
}

/// `PUT /v1/admin/tenants/{tenant}/egress {"allow": [entry]}`. The entries are
/// decoded as JSON values: each one that is not a string is reported by its index.
public struct APISetEgressRequest: Codable, Sendable, Equatable {
    public var allow: [JSONValue]

    public init(allow: [String]) { self.allow = allow.map(JSONValue.string) }

    private enum CodingKeys: String, CodingKey { case allow }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        guard let allow = try? container.decode([JSONValue].self, forKey: .allow) else {
            throw RequestRefusal("`allow` (a list of host names, IP addresses or CIDRs) is required")
        }
        self.allow = allow
    }
}

/// `PUT /v1/admin/tenants/{tenant}/limits`: each field absent (unchanged), null (the
/// server's default) or a positive number.
public struct APISetLimitsRequest: Codable, Sendable, Equatable {
    public var maxRunningSteps: Int??
    public var runsPerSecond: Double??
    public var runBurst: Int??

    public init(maxRunningSteps: Int?? = .none, runsPerSecond: Double?? = .none, runBurst: Int?? = .none) {
        self.maxRunningSteps = maxRunningSteps
        self.runsPerSecond = runsPerSecond
        self.runBurst = runBurst
    }

    private enum CodingKeys: String, CodingKey {
        case maxRunningSteps = "max_running_steps"
        case runsPerSecond = "runs_per_second"
        case runBurst = "run_burst"
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        // Stored as PostgreSQL integers (int4).
        func count(_ key: CodingKeys) throws -> Int?? {
            let refusal = RequestRefusal(
                "\(key.stringValue) must be a whole number from 1 to \(Int32.max), or null for the server's default",
                details: [APIProblem(path: key.stringValue, message: "expected a whole number from 1 to \(Int32.max), or null")])
            let value = try container.tristate(JSONValue.self, forKey: key, refusal: refusal)
            switch value {
            case .none: return .none
            case .some(.none), .some(.some(.null)): return .some(nil)
            case .some(.some(.int(let n))) where (1...Int(Int32.max)).contains(n): return .some(n)
            default: throw refusal
            }
        }
        // Checked in this order, so the first bad field is the one reported.
        maxRunningSteps = try count(.maxRunningSteps)
        runBurst = try count(.runBurst)
        let rateRefusal = RequestRefusal("runs_per_second must be a positive number, or null for the server's default")
        switch try container.tristate(JSONValue.self, forKey: .runsPerSecond, refusal: rateRefusal) {
        case .none: runsPerSecond = .none
        case .some(.none), .some(.some(.null)): runsPerSecond = .some(nil)
        case .some(.some(.int(let n))) where n > 0: runsPerSecond = .some(Double(n))
        case .some(.some(.double(let d))) where d > 0 && d.isFinite: runsPerSecond = .some(d)
        default: throw rateRefusal
        }
    }

    /// Only the fields being changed are sent; a double optional's inner nil is `null`.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        if let maxRunningSteps { try container.encode(maxRunningSteps, forKey: .maxRunningSteps) }
        if let runsPerSecond { try container.encode(runsPerSecond, forKey: .runsPerSecond) }
        if let runBurst { try container.encode(runBurst, forKey: .runBurst) }
    }
}
