import Testing

@testable import SwitchyardCore

@Suite struct MapInnerStepTests {
    @Test func aWaitInsideAMapIsRejectedWhereItIsWritten() throws {
        let yaml = """
            kind: Workflow
            name: w
            steps:
              - id: each
                map:
                  over: "{{ inputs.items }}"
                  step: { wait_for: approval }
            inputs:
              items: { type: array }
            """
        let error = try #require(loadError(yaml))
        let found = try #require(issue(error, "a wait parks a whole step"))
        #expect((found.line, found.column) == (7, 15))
    }

    @Test func mapsDoNotNest() throws {
        let yaml = """
            kind: Workflow
            name: w
            steps:
              - id: each
                map:
                  over: "{{ inputs.items }}"
                  step:
                    map: { over: "{{ item }}", step: { transform: x } }
            inputs:
              items: { type: array }
            """
        let found = try #require(issue(loadError(yaml), "maps do not nest"))
        #expect(found.line == 8)
    }
}
