import Testing
@testable import SwitchyardGate
