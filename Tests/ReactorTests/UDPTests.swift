import XCTest
@testable import Reactor
