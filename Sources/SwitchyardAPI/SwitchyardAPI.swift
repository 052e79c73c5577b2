/// # SwitchyardAPI: the HTTP API's bodies, defined once
///
/// Every JSON body that the server writes and `yard` reads (and the bodies `yard`
/// sends) is a `Codable`, `Sendable` struct here, grouped by resource: tenants, runs,
/// resources, secrets, metering and errors. The server encodes its responses from these
/// types (with ``WireEncoder``) and decodes requests into them; `yard` decodes the same
/// types, so a field renamed on one side fails to compile on the other. A test
/// (`WireContractTests`) validates an encoded value of every type against the schema
/// `docs/openapi.yaml` gives the response it is used for, so the document cannot drift
/// either.
///
/// Why hand-written types rather than swift-openapi-generator (which is mirrored): the
/// generator brings its own runtime, transport and server routing, which would replace
/// the Hummingbird routes, their middleware (authentication, the input hardening, the
/// 405 table) and the API's one error shape; and its generated names and nested
/// `Operations.*.Output` enums would leak into every route and command. Plain structs
/// with explicit `CodingKeys` keep the routes as they are and change only how bodies
/// are built. The module depends on Foundation and SwitchyardCore (for ``JSONValue``,
/// the free-form parts: run input and output, event data, stored specs).
///
/// Names carry the `API` prefix because the store has types of the same name
/// (`Tenant`, `RunEvent`, `LedgerRow`, `Budget`…) and no two types in different modules
/// share a name. Ids are lower-case UUID strings and times RFC 3339 strings, as sent.
public enum SwitchyardAPIModule {}
