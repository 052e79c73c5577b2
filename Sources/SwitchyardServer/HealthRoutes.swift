import Hummingbird
import SwitchyardAPI
import SwitchyardStore

/// `GET /healthz` (the process answers) and `GET /readyz` (the database answers too).
struct HealthRoutes {
    let api: APIDependencies

    func add(to router: Router<AppRequestContext>) {
        router.get("healthz") { _, _ in
            try JSONBody.reply(APIHealth(status: "ok"))
        }
        router.get("readyz") { _, _ in
            let failure: DatabaseError?
            do throws(DatabaseError) {
                try await api.database.checkReachable(timeout: .seconds(2))
                failure = nil
            } catch {
                failure = error
            }
            guard let failure else { return try JSONBody.reply(APIHealth(status: "ready")) }
            return try JSONBody.reply(APIHealth(status: "unavailable", error: failure.message), status: .serviceUnavailable)
        }
    }
}
