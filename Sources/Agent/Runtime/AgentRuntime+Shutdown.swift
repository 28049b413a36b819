// Shutdown (SIGTERM, SIGINT): stop receiving, close the open aggregation
// window so its counts are not lost, and keep the session running until
// the queues are empty and every batch is acknowledged — for at most
// `drainSeconds` — then exit 0. What could not be delivered in time is
// logged with its counts. A second signal exits at once.
//
// Thread: loop thread (the signal watchers and a drain timer).
import Reactor

extension AgentRuntime {
    public static let drainSeconds = 5.0

    public func beginShutdown(reason: String) {
        if draining {
            Log.warn("second \(reason): exiting without waiting for the drain")
            finishShutdown(timedOut: true)
            return
        }
        draining = true
        receiver.close()
        statsd.close()
        captureStartMs = 0
        flushWindow()
        // Runs in flight are cancelled (exec children terminated and reaped);
        // results already queued still drain.
        monitors?.shutdown()
        let deadline = Clock.monotonic() + AgentRuntime.drainSeconds
        Log.info("\(reason): draining the queues before exit", [
            "queued": "\(uplink.queues.count)", "unacknowledged_batches": "\(uplink.window.count)",
            "uplink": "\(uplink.state)", "limit_s": "\(Int(AgentRuntime.drainSeconds))",
        ])
        let timer = TimerWatcher(loop: loop) { [unowned self] t in
            if self.uplink.isDrained {
                self.finishShutdown(timedOut: false)
            } else if Clock.monotonic() >= deadline {
                self.finishShutdown(timedOut: true)
            }
        }
        drainTimer = timer
        timer.start(after: 0, repeat: 0.02)
    }

    private func finishShutdown(timedOut: Bool) {
        if timedOut && !uplink.isDrained {
            Log.warn("exiting with data not delivered", [
                "queued_items": "\(uplink.queues.count)", "unacknowledged_batches": "\(uplink.window.count)",
                "unacknowledged_items": "\(uplink.window.pending.reduce(0) { $0 + $1.items })",
                "uplink": "\(uplink.state)",
            ])
        } else {
            Log.info("drained; exiting", ["items_acked": "\(uplink.window.acknowledgedItems)"])
        }
        exit(0)
    }
}
