// OutboundItem: what waits in the send queues — data items that travel in
// numbered, acknowledged DataBatches (aggregates, raw events, monitor runs),
// and records that travel alone (status, control answers).
//
// Items hold their names as text, not string-table ids: the table belongs
// to one session, while a batch may be re-sent on the next one. Ids are
// assigned when a batch is written to a session (`BatchEncoder`, which also
// knows each item's names and size bound on the wire).
//
// Thread: a value; queued and read on the loop thread.
import IPAPipeline
import MonitorRunners
import Wire

/// One entry of a send queue.
public enum OutboundItem: Sendable {
    /// Queue 1, batched.
    case aggregate(LatencyAggregate)
    /// Queue 2, batched.
    case event(ForwardedEvent)
    /// Queue 1, batched: one synthetic monitor run (its aggregates and
    /// MonitorResult items, see `BatchEncoder`).
    case monitorRun(MonitorRunResult)
    /// Queue 1, sent alone and not acknowledged (Status, ControlResponse).
    case record(Record)

    public var isData: Bool {
        if case .record = self { return false }
        return true
    }
}
