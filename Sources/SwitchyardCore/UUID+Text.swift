import Foundation

extension UUID {
    /// The canonical lower-case text form (8-4-4-4-12) in which the API, logs, spans and
    /// template variables show ids. Formatted here rather than by
    /// `uuidString.lowercased()`, which formats through `sprintf` and then copies: ids
    /// are formatted for every step's log metadata and `run` variable.
    public var lowercasedString: String {
        withUnsafeBytes(of: uuid) { bytes in
            String(unsafeUninitializedCapacity: 36) { text in
                var count = 0
                for (index, byte) in bytes.enumerated() {
                    if index == 4 || index == 6 || index == 8 || index == 10 {
                        text[count] = UInt8(ascii: "-")
                        count += 1
                    }
                    text[count] = UUIDText.digit(byte >> 4)
                    text[count + 1] = UUIDText.digit(byte & 0x0F)
                    count += 2
                }
                return count
            }
        }
    }
}

private enum UUIDText {
    static func digit(_ value: UInt8) -> UInt8 {
        value < 10 ? UInt8(ascii: "0") + value : UInt8(ascii: "a") + value - 10
    }
}
