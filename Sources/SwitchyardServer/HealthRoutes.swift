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
            do throws(DatabaseError) {
                try await api.database.checkReachable(timeout: .seconds(2))
                return try JSONBody.reply(APIHealth(status: "ready"))
            } catch {
                return try JSONBody.reply(APIHealth(status: "unavailable", error: error.message), status: .serviceUnavailable)
            }
        }
    }
}
