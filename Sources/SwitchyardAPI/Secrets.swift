/// `PUT /v1/secrets/{name} {"value"}`.
public struct APIPutSecretRequest: Codable, Sendable, Equatable {
    public var value: String

    public init(value: String) { self.value = value }

    private enum CodingKeys: String, CodingKey { case value }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        guard let value = try? container.decode(String.self, forKey: .value) else {
            throw RequestRefusal("`value` (a string) is required")
        }
        self.value = value
    }
}

/// `PUT /v1/secrets/{name}` (201 created, 200 replaced): `{"secret": {name, created}}`.
public struct APISecretPutResult: Codable, Sendable, Equatable {
    public var secret: Secret

    /// The secret's name and whether it is new; never its value.
    public struct Secret: Codable, Sendable, Equatable {
        public var name: String
        public var created: Bool

        public init(name: String, created: Bool) {
            self.name = name
            self.created = created
        }
    }

    public init(secret: Secret) { self.secret = secret }
}

/// A stored secret as listed: its name and when it was last set.
public struct APISecretSummary: Codable, Sendable, Equatable {
    public var name: String
    public var updatedAt: String?

    public init(name: String, updatedAt: String?) {
        self.name = name
        self.updatedAt = updatedAt
    }

    private enum CodingKeys: String, CodingKey {
        case name
        case updatedAt = "updated_at"
    }
}

/// `GET /v1/secrets`.
public struct APISecretList: Codable, Sendable, Equatable {
    public var secrets: [APISecretSummary]

    public init(secrets: [APISecretSummary]) { self.secrets = secrets }
}
