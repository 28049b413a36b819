// UplinkDelegate: what the uplink tells its owner (the runtime) — sessions
// established and lost, records for the owner, acknowledgements.
//
// Thread: loop thread; every call comes from a loop callback.
import Wire

/// What the uplink tells its owner, on the loop thread.
public protocol UplinkDelegate: AnyObject {
    /// A session was established. Session-setup records go out with
    /// `sendNow` from here (they precede anything queued).
    func uplinkEstablished(_ uplink: Uplink, welcome: Welcome)
    /// A record for the owner: Patterns, PatternsUnchanged, ControlRequest,
    /// Schedule… (Ack, Ping, Pong and Error are handled inside).
    func uplink(_ uplink: Uplink, received record: Record)
    /// A session ended or an attempt failed. `roundFailed`: every host of
    /// the list failed in a row and a backoff wait began.
    func uplinkDisconnected(_ uplink: Uplink, reason: String, roundFailed: Bool)
    /// Batches were acknowledged.
    func uplinkAcknowledged(_ uplink: Uplink)
}
