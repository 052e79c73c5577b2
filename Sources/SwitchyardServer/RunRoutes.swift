import Foundation
import Hummingbird
import SwitchyardAPI
import SwitchyardCore
import SwitchyardEngine
import SwitchyardStore

/// Runs: starting one (`POST /v1/workflows/{name}/runs`), listing, reading and
/// cancelling them, signals, feedback on a step, and the live event stream.
struct RunRoutes {
    let api: APIDependencies
    /// The longest `?wait=` honoured.
    static let maxWait = 300.0
    /// What `Retry-After` says when a tenant has too many streams open.
    static let streamRetrySeconds = 5

    func add(to group: RouterGroup<TenantRequestContext>) {
        group.post("workflows/:name/runs") { request, context in
            try await start(request, context: context)
        }
        group.get("runs") { request, context in
            try await list(request, context: context)
        }
        group.get("runs/:id") { _, context in
            let id = try Self.runID(context)
            guard let run = try await api.runs.run(id, tenant: context.tenant.id) else { throw APIError.notFound("run") }
            return try JSONBody.reply(APIRunEnvelope(run: Render.run(run)))
        }
        group.post("runs/:id/cancel") { _, context in
            let id = try Self.runID(context)
            guard let status = try await api.runs.cancel(id, tenant: context.tenant.id) else { throw APIError.notFound("run") }
            return try JSONBody.reply(APICancelResult(run: .init(id: Render.id(id), status: status)), status: .accepted)
        }
        group.post("runs/:id/signals/:signal") { request, context in
            try await signal(request, context: context)
        }
        group.post("runs/:id/steps/:step/feedback") { request, context in
            try await feedback(request, context: context)
        }
        group.get("runs/:id/events") { request, context in
            try await events(request, context: context)
        }
    }

    /// `POST /v1/workflows/{name}/runs[?wait=s]`: 202 with the run created, 200 with
    /// the run an `Idempotency-Key` already made or that finished within `wait`.
    private func start(_ request: Request, context: TenantRequestContext) async throws -> Response {
        let name = context.parameters.get("name") ?? ""
        let tenant = context.tenant.id
        let body = try await request.decode(as: APIStartRunRequest.self, context: context)
        let wait = try Self.waitSeconds(request)
        let idempotencyKey = request.headers[.init("Idempotency-Key")!]
        if let idempotencyKey, idempotencyKey.isEmpty || idempotencyKey.count > 255 {
            throw APIError.badRequest("Idempotency-Key must be 1-255 characters")
        }
        guard let (version, spec) = try await api.workflows.latest(tenant: tenant, name: name) else {
            throw APIError.notFound("workflow \(name)")
        }
        let input: JSONValue
        do {
            input = try spec.resolveInputs(.object(try body.inputObject()))
        } catch let refusal as RequestRefusal {
            throw APIError(.unprocessableContent, code: refusal.code, refusal.message)
        } catch let error as InputValidationError {
            throw APIError(.unprocessableContent, code: .invalidInput, error.description, details: Self.details(error))
        }
        // Only a valid request takes a token from the tenant's bucket.
        if case .limited(let wait) = try await api.runLimiter.acquire(tenant: tenant) {
            let seconds = max(1, Int(wait.inSeconds.rounded(.up)))
            var error = APIError(
                .tooManyRequests, code: .rateLimited, "this tenant is starting runs faster than its limit; retry after \(seconds) s")
            error.headers = [.retryAfter: String(seconds)]
            throw error
        }
        let trace = RunTrace(api.observability, request: request, tenant: tenant, workflow: name, version: version)
        let run: RunRecord
        let created: Bool
        do {
            (run, created) = try await api.runs.createRun(
                tenant: tenant, workflow: name, version: version, spec: spec, input: input, idempotencyKey: idempotencyKey,
                notify: api.shouldWakeOthers())
        } catch {
            trace.failed(error)
            throw error
        }
        trace.created(run.id, new: created)
        context.requestNote?.run = run.id
        if created { api.onRunCreated() }
        guard let wait, !run.status.isFinal else {
            return try JSONBody.reply(APIRunEnvelope(run: Render.run(run)), status: created ? .accepted : .ok)
        }
        // The run as it is when the wait ends: finished (200), or as far as it got.
        // The run exists from here: a database lost during the wait must not turn the
        // answer into a 503 that invites a retry (without a key, a second run).
        let now: RunRecord
        do {
            now = try await waitForFinish(run.id, tenant: tenant, seconds: wait) ?? run
        } catch  where Database.isUnavailable(error) {
            now = run
        }
        return try JSONBody.reply(APIRunEnvelope(run: Render.run(now)), status: now.status.isFinal || !created ? .ok : .accepted)
    }

    /// `GET /v1/runs?status&workflow&limit&cursor`: run summaries, newest first.
    private func list(_ request: Request, context: TenantRequestContext) async throws -> Response {
        let query = request.uri.queryParameters
        var status: RunStatus?
        if let text = query.get("status") {
            guard let parsed = RunStatus(rawValue: text) else {
                throw APIError.badRequest("status must be one of \(RunStatus.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            status = parsed
        }
        var limit = 50
        if let text = query.get("limit") {
            guard let parsed = Int(text), (1...500).contains(parsed) else { throw APIError.badRequest("limit must be an integer from 1 to 500") }
            limit = parsed
        }
        var cursor: RunCursor?
        if let text = query.get("cursor"), !text.isEmpty {
            guard let parsed = RunCursor(token: text) else { throw APIError.badRequest("cursor is not one this server gave out") }
            cursor = parsed
        }
        let page = try await api.runs.list(tenant: context.tenant.id, status: status, workflow: query.get("workflow"), limit: limit, after: cursor)
        return try JSONBody.reply(APIRunList(runs: page.runs.map { Render.run($0, withSteps: false) }, nextCursor: page.next?.token))
    }

    /// `POST /v1/runs/{id}/signals/{name} {"data"}`: delivers a signal once.
    private func signal(_ request: Request, context: TenantRequestContext) async throws -> Response {
        let id = try Self.runID(context)
        let name = context.parameters.get("signal") ?? ""
        guard !name.isEmpty, name.count <= 128 else { throw APIError.badRequest("a signal name is 1-128 characters") }
        guard !name.hasPrefix("__") else { throw APIError.badRequest("signal names starting with __ are reserved for the engine") }
        let data = try await request.decode(as: APISignalRequest.self, context: context).data
        guard let delivery = try await api.runs.signal(id, tenant: context.tenant.id, name: name, data: data) else {
            throw APIError.notFound("run")
        }
        switch delivery {
        case .delivered(let resumed):
            if !resumed.isEmpty { api.onRunCreated() }
            return try JSONBody.reply(APISignalResult(signal: name, resumedSteps: resumed), status: .accepted)
        case .duplicate:
            throw APIError(.conflict, code: .signalExists, "the run already received a \(name) signal")
        case .runFinished(let status):
            throw APIError(.conflict, code: .runFinished, "the run is already \(status.rawValue)")
        }
    }

    /// `POST /v1/runs/{id}/steps/{step}/feedback {"good": true|false}`: an explicit
    /// verdict on a model step's answer, which the gate learns from.
    private func feedback(_ request: Request, context: TenantRequestContext) async throws -> Response {
        let id = try Self.runID(context)
        let step = context.parameters.get("step") ?? ""
        let good = try await request.decode(as: APIFeedbackRequest.self, context: context).good
        switch try await api.gateHistory.feedback(tenant: context.tenant.id, run: id, step: step, good: good) {
        case .notFound:
            throw APIError.notFound("step \(step) of run \(id.lowercasedString)")
        case .notFinished(let status):
            throw APIError(.conflict, code: .stepNotFinished, "step \(step) is \(status); feedback applies to finished model steps")
        case .notAModelStep:
            throw APIError(.unprocessableContent, code: .notAModelStep, "step \(step) did not call a model, so there is nothing to learn")
        case .recorded(let expert, let learned):
            return try JSONBody.reply(
                APIFeedbackResult(feedback: .init(run: Render.id(id), step: step, good: good, expert: expert, learned: learned)))
        }
    }

    /// `GET /v1/runs/{id}/events`: the run's events as Server-Sent Events, from after
    /// `Last-Event-ID` or `?after=`, live until the run ends.
    private func events(_ request: Request, context: TenantRequestContext) async throws -> Response {
        let id = try Self.runID(context)
        let tenant = context.tenant.id
        guard try await api.runs.status(of: id, tenant: tenant) != nil else { throw APIError.notFound("run") }
        var lastID: Int64 = 0
        let positions: [(String, String?)] = [
            ("Last-Event-ID", request.headers[.init("Last-Event-ID")!]),
            ("after", request.uri.queryParameters.get("after").map { String($0) }),
        ]
        for (name, text) in positions {
            guard let text else { continue }
            guard let seq = Int64(text.trimmingCharacters(in: .whitespaces)), seq >= 0 else {
                throw APIError.badRequest("\(name) must be an event sequence number (a non-negative integer)")
            }
            lastID = max(lastID, seq)
        }
        let subscription: RunEventFeed.Subscription
        do {
            subscription = try await api.events.subscribe(run: id, tenant: tenant)
        } catch RunEventFeed.SubscribeError.tooManyStreams(let limit) {
            var error = APIError(
                .tooManyRequests, code: .tooManyStreams,
                "this tenant already has \(limit) event streams open on this server; close one, or retry after \(Self.streamRetrySeconds) s")
            error.headers = [.retryAfter: String(Self.streamRetrySeconds)]
            throw error
        }
        let followed = Self.wantsDeltas(request) ? api.deltas : nil
        let deltas = followed?.subscribe(run: id)
        if let followed { await followed.announce(run: id) }
        let stream = EventStream(
            run: id, tenant: tenant, after: lastID, runs: api.runs, subscription: subscription, deltas: deltas, heartbeat: api.eventHeartbeat)
        let body = ResponseBody { writer in
            try await stream.write(to: &writer)
        }
        return Response(status: .ok, headers: [.contentType: "text/event-stream", .cacheControl: "no-cache"], body: body)
    }

    static func wantsDeltas(_ request: Request) -> Bool {
        guard let value = request.uri.queryParameters.get("deltas") else { return false }
        return ["1", "true", "yes"].contains(value.lowercased())
    }

    static func runID(_ context: TenantRequestContext) throws -> UUID {
        // A malformed id answers exactly as an unknown one does.
        guard let id = UUID(uuidString: context.parameters.get("id") ?? "") else { throw APIError.notFound("run") }
        return id
    }

    static func waitSeconds(_ request: Request) throws -> Double? {
        guard let text = request.uri.queryParameters.get("wait") else { return nil }
        guard let seconds = Double(text), seconds >= 0, seconds <= maxWait else {
            throw APIError.badRequest("wait must be a number of seconds from 0 to \(Int(maxWait))")
        }
        return seconds
    }

    static func details(_ error: InputValidationError) -> [APIProblem] {
        error.details.map { APIProblem(path: $0.path, message: $0.message) }
    }

    /// Polls the run until it is final or the time is up; the poll interval grows from
    /// 2 ms so short runs answer fast without hammering the database for long ones.
    func waitForFinish(_ id: UUID, tenant: UUID, seconds: Double) async throws -> RunRecord? {
        let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
        var interval = Duration.milliseconds(2)
        while ContinuousClock.now < deadline {
            if let status = try await api.runs.status(of: id, tenant: tenant), status.isFinal {
                return try await api.runs.run(id, tenant: tenant)
            }
            try await Task.sleep(for: min(interval, deadline - ContinuousClock.now))
            interval = min(interval * 2, .milliseconds(100))
        }
        return try await api.runs.run(id, tenant: tenant)
    }
}
