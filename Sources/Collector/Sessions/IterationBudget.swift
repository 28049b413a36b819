// IterationBudget: an amount of work allowed per loop iteration (handshakes,
// input bytes). Spending starts from zero again whenever the loop's
// iteration counter has moved on, so nothing has to reset it. Asked with the
// loop's time box (`hasRoom(on:)`), it also has no room once the iteration's
// time is spent, except for its first unit (IterationTimeBox): the budgets
// of the handshakes, their finishes and the input share one bound on time.
//
// Loop thread only, like the SessionManager that owns it.
import Reactor

struct IterationBudget {
    let limit: Int
    private var iteration: UInt = .max
    private var spent = 0

    init(limit: Int) { self.limit = limit }

    /// Whether anything is left in `iteration`.
    mutating func hasRoom(in iteration: UInt) -> Bool {
        roll(to: iteration)
        return spent < limit
    }

    /// Counts `amount` as spent in `iteration` (it may overshoot the limit).
    mutating func spend(_ amount: Int, in iteration: UInt) {
        roll(to: iteration)
        spent += amount
    }

    /// Whether anything is left in the loop's current iteration, in units
    /// and — after this budget's first unit — in the loop's time box.
    mutating func hasRoom(on loop: EventLoop) -> Bool {
        hasRoom(in: loop.iteration) && loop.timeBox.mayRun(after: spent)
    }

    private mutating func roll(to iteration: UInt) {
        if iteration != self.iteration {
            self.iteration = iteration
            spent = 0
        }
    }
}
