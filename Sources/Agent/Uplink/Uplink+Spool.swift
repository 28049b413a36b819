// Uplink+Spool: the uplink's side of the disk spool (Spool).
//
//  - Write-through: the pump appends every new batch to the spool before
//    sending it (Uplink.pump), so an unacknowledged batch survives a crash.
//  - Spill: when a data item finds its queue full, and every spool interval
//    while no session is up, the queued data items become batches written
//    to the spool (not sent) — the queues never drop while the spool works.
//  - Replay: spooled batches above the window's last sequence are sent
//    before anything new, oldest first, one record read at a time.
//  - Acks and the Welcome's `acked_sequence` move the spool's marker.
//
// Thread: loop thread only.
import Reactor
import Wire

extension Uplink {
    enum SpillReason { case full, offline, shutdown }

    /// Spooled batches wait to be sent (above what the window holds).
    var spoolHasUnsent: Bool {
        guard let spool else { return false }
        return spool.hasBatch(after: max(window.lastSequence, replayedThrough))
    }

    /// The next spooled batch to send; nil (and the replay moved past the
    /// spool's end) when the rest cannot be read.
    func nextSpooledBatch() -> SpoolBatch? {
        guard let spool else { return nil }
        let after = max(window.lastSequence, replayedThrough)
        guard let b = spool.batch(after: after) else {
            replayedThrough = spool.lastSequence
            return nil
        }
        replayedThrough = b.sequence
        return b
    }

    /// Moves the queued data items into the spool as batches (records at
    /// the head go on the wire later — or, without a session, are dropped:
    /// status is made again). `.full` stops once both queues have room.
    func spill(reason: SpillReason) {
        guard let spool, spool.degraded == nil else { return }
        let limits = BatchEncoder.Limits(maxItems: min(batchItemLimit, 256), maxBytes: 16_000,
                                         maxNames: 256, maxNameBytes: 8 << 10)
        var batches = 0, items = 0
        while let next = queues.next {
            if reason == .full && queues.hasRoom(priority: true) && queues.hasRoom(priority: false) { break }
            guard next.isData else {
                if isEstablished && reason != .shutdown { break }
                _ = queues.pop()
                continue
            }
            let (taken, _) = BatchEncoder.takeBatch(from: &queues, limits: limits)
            guard !taken.isEmpty else { break }
            let (sequence, stored) = spool.append(taken, nowMs: Clock.wallMillis())
            if !stored {
                // Counted by the spool (disk full, or memory-only from now).
                Log.debug("spool: batch not stored", ["sequence": "\(sequence)", "items": "\(taken.count)"])
            }
            batches += 1
            items += taken.count
            if spool.degraded != nil { break }
        }
        if batches > 0 {
            Log.debug("spool: queued items written", ["batches": "\(batches)", "items": "\(items)",
                                                      "reason": "\(reason)"])
            if reason == .full { schedulePump() }
        }
    }

    /// The Welcome: the collector holds everything up to `acked`. Returns
    /// how many window batches that settled (the spool's marker moves too).
    func spoolWelcomed(ackedSequence acked: UInt64) -> Int {
        guard let spool, acked > 0 else { return 0 }
        if acked >= spool.nextSequence {
            Log.warn("spool: the collector holds sequences this spool never recorded; numbering above them",
                     ["acked": "\(acked)", "next": "\(spool.nextSequence)"])
            spool.raiseNextSequence(to: acked + 1)
        }
        spool.acknowledge(upTo: acked)
        let before = window.count
        window.advance(past: min(acked, spool.nextSequence - 1))
        replayedThrough = max(replayedThrough, window.acknowledged)
        return before - window.count
    }

    /// Spool upkeep every `spool_sync_interval_ms` (at least once a second
    /// when `spool_sync` is not `interval`): sync, marker, and — without a
    /// session — the queues written to disk.
    func spoolTick() {
        guard let spool else { return }
        if !isEstablished { spill(reason: .offline) }
        spool.tick()
    }

    func startSpoolTimer() {
        guard let spool, let t = spoolTimer, !t.isActive else { return }
        let s = spool.settings
        let period = s.sync == .interval ? Double(max(10, s.syncIntervalMs)) / 1000 : 1
        t.start(after: period, repeat: period)
    }

    /// Before exit: every queued data item into the spool, and the spool
    /// forced to disk. What the window holds is there already.
    public func spillForExit() {
        guard let spool else { return }
        spill(reason: .shutdown)
        spool.close()
    }

    /// The spool's figures for Status (none without a spool): depth in
    /// batches, bytes, the oldest unacknowledged batch's age, and the
    /// drops by cause (docs/AGENT.md, "Spool").
    public func spoolCounters(nowMs: Int64) -> [Counter] {
        guard let spool else { return [] }
        let c = spool.counters
        return [
            Counter("spool_batches", UInt64(spool.depth)),
            Counter("spool_bytes", UInt64(spool.bytes)),
            Counter("spool_oldest_age_ms", spool.oldestMs.map { UInt64(max(0, nowMs - $0)) } ?? 0),
            Counter("spool_written", c.written),
            Counter("spool_replayed", c.replayed),
            Counter("spool_corrupt", c.corrupt),
            Counter("spool_dropped_full", c.droppedFull),
            Counter("spool_dropped_disk_full", c.droppedDiskFull),
            Counter("spool_unwritten", c.unwritten),
            Counter("spool_write_failures", c.writeFailures),
        ]
    }
}
