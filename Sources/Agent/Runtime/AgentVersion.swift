// AgentVersion: the version the agent reports (`vigil-agent version`, the
// Hello, Status).
//
// Thread: any (a constant).

public enum AgentVersion {
    public static let current = "0.1.0"
}
