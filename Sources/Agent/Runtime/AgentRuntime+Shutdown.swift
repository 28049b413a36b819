// Shutdown (SIGTERM, SIGINT): stop receiving, close the open aggregation
// window so its counts are not lost, and keep the session running until
// the queues are empty and every batch is acknowledged — for at most
// `drainSeconds` — then exit 0. What could not be delivered in time is
// logged with its counts — or, with a disk spool, kept there: queued items
// are written to it at once (and again at exit), and without a session the
// agent exits as soon as they are. A second signal exits at once.
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
        notify?.stopping(status: "draining: \(uplink.queues.count) queued, \(uplink.window.count) batches unacknowledged")
        receiver.close()
        statsd.close()
        captureStartMs = 0
        flushWindow()
        // Runs in flight are cancelled (exec children terminated and reaped);
        // results already queued still drain.
        monitors?.shutdown()
        uplink.spillForExit()
        if uplink.spool != nil && !uplink.isEstablished {
            Log.info("\(reason): queued data written to the spool; exiting", [
                "spool_batches": "\(uplink.spool!.depth)", "uplink": "\(uplink.state)",
            ])
            finishShutdown(timedOut: false)
            return
        }
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
        uplink.spillForExit()
        if let spool = uplink.spool, !uplink.isDrained {
            Log.info("exiting; unacknowledged data kept in the spool", [
                "spool_batches": "\(spool.depth)", "spool_bytes": "\(spool.bytes)", "uplink": "\(uplink.state)",
            ])
            exit(0)
        }
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
