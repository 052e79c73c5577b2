import SwitchyardEngine
import SwitchyardExperts
import SwitchyardServer
import SwitchyardStore
import SwitchyardTools
import Testing

@Suite("Server configuration file")
struct ServerConfigurationTests {
    @Test("every documented key is read")
    func readsKeys() throws {
        let configuration = try ServerConfiguration.parse(
            """
            host: 0.0.0.0
            port: 9090
            database_url: postgres://u:p@db:5432/sy
            admin_key: secret
            engine: { concurrency: 8, lease: 10s, heartbeat: 2s, poll: 250ms, max_fan_out: 50 }
            experts:
              flash: { provider: scripted, script: a.yaml, model: m1 }
              pro: { provider: scripted, script: b.yaml }
            """, file: "c.yaml")
        #expect(configuration.host == "0.0.0.0")
        #expect(configuration.port == 9090)
        #expect(configuration.databaseURL == "postgres://u:p@db:5432/sy")
        #expect(configuration.adminKey == "secret")
        #expect(configuration.engine.concurrency == 8)
        #expect(configuration.engine.lease == .seconds(10))
        #expect(configuration.engine.heartbeatInterval == .seconds(2))
        #expect(configuration.engine.idlePoll == .milliseconds(250))
        #expect(configuration.engine.maxFanOut == 50)
        #expect(configuration.experts["flash"]?.model == "m1")
        #expect(configuration.experts["pro"]?.script == "b.yaml")
    }

    @Test(
        "an unknown key at any level is an error naming the key and its line",
        arguments: [
            ("prot: 1\n", "c.yaml:1: unknown key `prot`"),
            ("engine:\n  lese: 3s\n", "c.yaml:2: unknown key `engine.lese`"),
            ("experts:\n  flash: { provider: scripted, scrpt: x }\n", "c.yaml:2: unknown key `experts.flash.scrpt`"),
        ])
    func unknownKeys(yaml: String, message: String) {
        #expect {
            try ServerConfiguration.parse(yaml, file: "c.yaml")
        } throws: { error in
            (error as? ConfigurationError)?.message.hasPrefix(message) == true
        }
    }

    @Test("an unknown provider is an error naming the expert and the providers there are")
    func unknownProvider() {
        #expect {
            try ServerConfiguration.parse("experts:\n  flash: { provider: scriptd, script: s.yaml }\n", file: "c.yaml")
        } throws: { error in
            let message = (error as? ConfigurationError)?.message ?? ""
            return message.contains("experts.flash: unknown provider scriptd (expected openai, scripted or local)")
        }
    }

    @Test("the gate threshold, the egress allow list, fair-use limits and the default max_tokens are read")
    func runtimeKeys() throws {
        let configuration = try ServerConfiguration.parse(
            """
            engine: { default_max_tokens: 2048 }
            gate: { threshold: 0.1 }
            egress: { allow: ["127.0.0.1", "10.0.0.0/8", "kb.internal"] }
            limits: { runs_per_second: 5, run_burst: 10, max_running_steps: 3 }
            """, file: "c.yaml")
        #expect(configuration.engine.defaultMaxTokens == 2048)
        #expect(configuration.engine.gateThreshold == 0.1)
        #expect(configuration.egress == (try EgressPolicy(allowing: ["127.0.0.1", "10.0.0.0/8", "kb.internal"])))
        #expect(configuration.runsPerSecond == 5)
        #expect(configuration.runBurst == 10)
        #expect(configuration.engine.maxRunningStepsPerTenant == 3)
    }

    @Test("the database pool's deadlines, the shutdown grace, the step runtime bound and the event stream cap are read and applied")
    func robustnessKeys() throws {
        let configuration = try ServerConfiguration.parse(
            """
            engine: { shutdown_grace: 5s, max_step_runtime: 20m }
            database: { max_connections: 40, acquire_timeout: 2s, statement_timeout: 15s }
            limits: { event_streams: 8 }
            """, file: "c.yaml")
        #expect(configuration.engine.shutdownGrace == .seconds(5))
        #expect(configuration.engine.maxStepRuntime == .seconds(1200))
        #expect(configuration.engine.maxEventStreamsPerTenant == 8)
        let database = configuration.databasePool.applied(to: DatabaseConfiguration(host: "db", username: "u", password: nil, database: "sy"))
        #expect(database.maxConnections == 40)
        #expect(database.acquireTimeout == .seconds(2))
        #expect(database.statementTimeout == .seconds(15))
    }

    @Test(
        "bad values are refused",
        arguments: [
            "port: 70000\n", "engine: { lease: 10ms }\n", "engine: { concurrency: 0 }\n", "engine: { poll: soon }\n",
            "gate: { threshold: 2 }\n", "egress: { allow: [\"10.0.0.0/99\"] }\n", "limits: { runs_per_second: 0 }\n",
            "limits: { max_running_steps: 0 }\n",
            "engine: { default_max_tokens: 0 }\n", "gate: { treshold: 0.1 }\n",
            "database: { acquire_timeout: 1ms }\n", "database: { statement_timeout: 2h }\n", "database: { max_connections: 1 }\n",
            "database: { pool: 3 }\n", "limits: { event_streams: 0 }\n", "engine: { max_step_runtime: 10ms }\n",
            "engine: { shutdown_grace: never }\n",
        ])
    func badValues(yaml: String) {
        #expect(throws: ConfigurationError.self) { try ServerConfiguration.parse(yaml, file: "c.yaml") }
    }
}
