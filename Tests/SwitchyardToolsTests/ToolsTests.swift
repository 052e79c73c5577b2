import Testing
@testable import SwitchyardTools
