import Foundation
import SwitchyardCore
import Testing

@Suite("Ids as text")
struct UUIDTextTests {
    @Test("lowercasedString is Foundation's uuidString in lower case, for 10,000 random ids and the extremes")
    func matchesFoundation() {
        var ids = (0..<10_000).map { _ in UUID() }
        ids.append(UUID(uuid: (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)))
        ids.append(UUID(uuid: (255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255)))
        for id in ids {
            #expect(id.lowercasedString == id.uuidString.lowercased())
        }
        #expect(UUID(uuidString: ids[0].lowercasedString) == ids[0])
    }
}
