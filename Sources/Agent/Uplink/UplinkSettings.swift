// UplinkSettings: the uplink's tunables, from the configuration
// (`server_host`, `server_port`, `tcp_connection_timeout`, `tcp_so_timeout`,
// `net_send_max_bytes`, the queue sizes, `reconnect_interval_min`/`max`).
//
// Thread: a value; read on the loop thread.

/// The uplink's tunables, taken from the configuration.
public struct UplinkSettings: Equatable, Sendable {
    public var hosts: [String]
    public var port: UInt16
    /// Seconds for connect + handshake (`tcp_connection_timeout`).
    public var connectTimeout: Double
    /// Seconds of silence before a Ping (`tcp_so_timeout`).
    public var silenceTimeout: Double
    /// Bytes sealed per burst (`net_send_max_bytes`).
    public var sendMaxBytes: Int
    public var queue1Size: Int
    public var queue2Size: Int
    /// Seconds (`reconnect_interval_min`/`max`).
    public var reconnectMin: Double
    public var reconnectMax: Double

    public init(hosts: [String], port: UInt16, connectTimeout: Double = 5, silenceTimeout: Double = 60,
                sendMaxBytes: Int = 5 << 20, queue1Size: Int = 512, queue2Size: Int = 1024,
                reconnectMin: Double = 5, reconnectMax: Double = 10) {
        self.hosts = hosts
        self.port = port
        self.connectTimeout = connectTimeout
        self.silenceTimeout = silenceTimeout
        self.sendMaxBytes = sendMaxBytes
        self.queue1Size = queue1Size
        self.queue2Size = queue2Size
        self.reconnectMin = reconnectMin
        self.reconnectMax = reconnectMax
    }

    /// After `silenceTimeout` of silence a Ping goes out; the session is
    /// given up if nothing arrives within this many more seconds.
    public var pingGrace: Double { min(silenceTimeout, max(1, silenceTimeout / 2)) }
}
